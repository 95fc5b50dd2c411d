"""Explanation and map speed: each attribution method per image, and the 2-D maps of the 10,000 test images.

Targets (2 CPU cores): saliency and Grad-CAM <= 50 ms per image, integrated gradients
<= 200 ms, occlusion <= 1 s, UMAP of 10k images <= 60 s. A single image is what the
Draw page waits for; batched is the cost per image in a batch of 20. UMAP's numba code
compiles on its first call in a process ("cold"), so it runs twice in a fresh process.

    python bench/explain.py
    python bench/explain.py --skip-umap
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

from mnist_core import embed, explain
from mnist_core.checkpoints import load_checkpoint
from mnist_core.data import load_mnist

UMAP_TWICE = """
import sys, time
import numpy as np
from mnist_core import embed
features = np.load(sys.argv[1])
for name in ("cold", "warm"):
    started = time.perf_counter()
    points = embed.project(features, "umap")
    print(name, time.perf_counter() - started, flush=True)
labels = np.load(sys.argv[2])
print("agreement", embed.neighbour_agreement(points, labels), flush=True)
"""


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint to explain (default: default.pt)")
    parser.add_argument("--repeats", type=int, default=10, help="single-image timings per method (median reported)")
    parser.add_argument("--skip-umap", action="store_true", help="leave out UMAP (half a minute)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's; 1 is faster on a busy machine)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_checkpoint(args.checkpoint).model
    data = load_mnist()
    print(f"torch threads {torch.get_num_threads()}, load {load()}")
    images, labels = data.test_images[:20], data.test_labels[:20]
    for method in explain.METHODS:
        explain.attribute(model, images[:1], labels[:1], method)  # warm-up
        single = []
        for i in range(args.repeats):
            started = time.perf_counter()
            explain.attribute(model, images[i : i + 1], labels[i : i + 1], method)
            single.append(time.perf_counter() - started)
        started = time.perf_counter()
        explain.attribute(model, images, labels, method)
        batched = (time.perf_counter() - started) / len(images)
        print(
            f"{method:>22}: one image median {statistics.median(single) * 1e3:7.1f} ms, "
            f"batched {batched * 1e3:7.1f} ms per image  (load {load()})"
        )

    started = time.perf_counter()
    features = embed.penultimate(model, data.test_images)
    print(f"penultimate features of 10,000 images: {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    points = embed.project(features, "pca")
    print(
        f"PCA of 10,000: {time.perf_counter() - started:.2f} s, "
        f"5-NN label agreement {embed.neighbour_agreement(points, data.test_labels.numpy()):.3f}"
    )
    if args.skip_umap:
        return
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        np.save(f"{folder}/features.npy", features)
        np.save(f"{folder}/labels.npy", data.test_labels.numpy())
        print(f"UMAP of 10,000 in a fresh process (load {load()}):", flush=True)
        out = subprocess.run(
            [sys.executable, "-c", UMAP_TWICE, f"{folder}/features.npy", f"{folder}/labels.npy"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    for line in out.splitlines():
        name, value = line.split()
        print(f"  {name}: {float(value):.3f}" + (" s" if name != "agreement" else " (5-NN label agreement)"))
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
