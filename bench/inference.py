"""Inference speed: single-image latency, batch throughput, test-set evaluation, data load, memory.

The single-image figure is what the Draw page waits for: ``predict`` on one 320x320
RGBA canvas (black ink on white, as the canvas returns it), preprocessing included.
The canvases are MNIST test digits drawn large, so the work is realistic and the
predictions can be checked against their labels.

    python bench/inference.py
    python bench/inference.py --checkpoint checkpoints/run-20250101-120000.pt --images 500
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_core.checkpoints import load_checkpoint
from mnist_core.data import load_mnist, to_pixels
from mnist_core.evaluate import evaluate
from mnist_core.inference import predict_probabilities
from mnist_core.places import default_checkpoint
from mnist_core.predict import predict

CANVAS = 320  # the Draw page's canvas, in pixels


def canvas_from_digit(pixels: np.ndarray) -> np.ndarray:
    """A 28x28 MNIST digit (white ink on black) as the canvas would return it: 320x320 RGBA, black on white."""
    large = np.asarray(Image.fromarray(pixels).resize((CANVAS, CANVAS), Image.Resampling.BILINEAR))
    ink = 255 - large
    return np.dstack([ink, ink, ink, np.full_like(ink, 255)])


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", type=Path, default=default_checkpoint(), help="model to measure (default: the default model)"
    )
    parser.add_argument(
        "--images",
        type=int,
        default=300,
        help="canvas images for the single-image latency, at least 200 (default: 300)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="repetitions of the load and evaluation timings; the median is reported (default: 5)",
    )
    args = parser.parse_args()
    if args.images < 200:
        parser.error("--images must be at least 200, so that p95 rests on at least 10 samples")

    print(f"load average at start {os.getloadavg()[0]:.2f}; checkpoint {args.checkpoint}")
    load_times = timed(load_mnist, args.repeats)
    data = load_mnist()
    print(
        f"data load (load_mnist, SHA-256 verified): median {statistics.median(load_times):.3f} s, "
        f"first {load_times[0]:.3f} s, best {min(load_times):.3f} s"
    )

    model = load_checkpoint(args.checkpoint).model
    eval_times = timed(lambda: evaluate(model, data.test_images, data.test_labels), args.repeats)
    accuracy = evaluate(model, data.test_images, data.test_labels).accuracy
    print(
        f"test-set evaluation (10,000 images): median {statistics.median(eval_times):.3f} s, "
        f"best {min(eval_times):.3f} s, accuracy {accuracy:.4f}"
    )

    batch = data.test_images[:1000]
    batch_times = timed(lambda: predict_probabilities(model, batch), args.repeats)
    print(
        f"batch throughput (forward pass, batches of 128): {len(batch) / statistics.median(batch_times):,.0f} images/s"
    )

    pixels = to_pixels(data.test_images[: args.images])
    canvases = [canvas_from_digit(p) for p in pixels]
    labels = data.test_labels[: args.images].tolist()
    for canvas in canvases[:10]:  # first calls build caches and oneDNN kernels
        predict([canvas], checkpoint=args.checkpoint)
    latencies, correct = [], 0
    for canvas, label in zip(canvases, labels):
        started = time.perf_counter()
        result = predict([canvas], checkpoint=args.checkpoint)[0]
        latencies.append(time.perf_counter() - started)
        correct += result.digit == label
    print(
        f"single-image prediction ({CANVAS}x{CANVAS} canvas, preprocessing + forward pass, {len(canvases)} images): "
        f"p50 {percentile(latencies, 50) * 1000:.1f} ms, p95 {percentile(latencies, 95) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms; {correct}/{len(canvases)} read correctly"
    )

    started = time.perf_counter()
    predict(canvases, checkpoint=args.checkpoint)
    print(
        f"batch prediction ({len(canvases)} canvases in one call, preprocessing included): "
        f"{len(canvases) / (time.perf_counter() - started):,.0f} images/s"
    )

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS high-water mark of this process): {peak_mb:.0f} MB")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
