"""Explanations: can a map be trusted, and how fast; the network view; the 2-D maps of the 10,000 test images.

Trust, per method, on 100 test images (10 of each digit): the sanity check of Adebayo et
al. (2018), Spearman's rank correlation of the trained model's maps with a randomized
model's (below 0.5 passes; of the maps and of their absolute values), and faithfulness,
the target's mean probability while its ink is erased most-supporting pixels first,
against a random order of the same ink (lower is more faithful). Then how much a
contrast ("why 4 and not 9") differs from the plain map: its rank correlation with it.

Speed targets (2 CPU cores): a new method or target for a drawing <= 300 ms (one map,
or a contrast's two; the page caches each map, so coming back costs nothing), the
network view (every stage and its pictures, and one filter's slide) <= 500 ms, UMAP of
10k images <= 60 s. Batched is the cost per image in a batch of 20. UMAP's numba code
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
from pathlib import Path

import torch

from mnist_core import embed, explain, network, projection
from mnist_core.checkpoints import load_checkpoint
from mnist_core.data import load_mnist
from mnist_core.model import CNN

UMAP_TWICE = """
import sys, time
import numpy as np
from mnist_core import projection
features = np.load(sys.argv[1])
for name in ("cold", "warm"):
    started = time.perf_counter()
    points = projection.project(features, "umap")
    print(name, time.perf_counter() - started, flush=True)
labels = np.load(sys.argv[2])
print("agreement", projection.neighbour_agreement(points, labels), flush=True)
"""


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


def trust(model: CNN, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Sanity (trained against randomized weights), faithfulness (deletion) and contrast, per method."""
    index = torch.cat([(labels == d).nonzero().flatten()[:10] for d in range(10)])
    images, labels = images[index], labels[index]
    torch.manual_seed(0)
    randomized = CNN(model.config).eval()
    fours = images[labels == 4]
    print(f"trust, on {len(images)} test images (10 of each digit); the contrast on their ten 4s, against 9:")
    for method in explain.METHODS:
        trained = explain.attribute(model, images, labels, method)
        random = explain.attribute(randomized, images, labels, method)
        sanity = explain.rank_correlation(trained, random).mean().item()
        absolute = explain.rank_correlation(trained.abs(), random.abs()).mean().item()
        faithful = explain.deletion(model, images, labels, trained).mean().item()
        baseline = explain.deletion(model, images, labels, None).mean().item()
        four = torch.full((len(fours),), 4)
        why = explain.attribute(model, fours, four, method)
        why_not = explain.attribute(model, fours, four, method, against=torch.full((len(fours),), 9))
        contrast = explain.rank_correlation(why, why_not).mean().item()
        print(
            f"{method:>22}: sanity Spearman {sanity:+.2f} (absolute values {absolute:+.2f}); "
            f"erased by the map {faithful:.3f} vs random ink {baseline:.3f}; why 4 vs why 4 not 9 {contrast:+.2f}"
        )


def network_view(checkpoint, images: torch.Tensor, repeats: int) -> None:
    """The Network page's work for a new drawing: every stage, its pictures, and one slide."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dashboard"))
    import network_view as view  # the page's own picture code (its caches need Streamlit's runtime: called bare)

    timings = []
    for i in range(repeats):
        started = time.perf_counter()
        stages = network.stages(checkpoint.model, images[i : i + 1])
        for stage in stages:
            if stage.name not in ("logits", "softmax"):
                view.picture(stage)
        network.slide(checkpoint.model, images[i], 1, 0, 7, 7)
        timings.append(time.perf_counter() - started)
    print(
        f"network view (stages, pictures, a slide): median {statistics.median(timings) * 1e3:.1f} ms  (load {load()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint to explain (default: default.pt)")
    parser.add_argument("--repeats", type=int, default=10, help="single-image timings per method (median reported)")
    parser.add_argument("--skip-umap", action="store_true", help="leave out UMAP (half a minute)")
    parser.add_argument("--skip-trust", action="store_true", help="leave out the sanity and faithfulness checks")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's; 1 is faster on a busy machine)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    checkpoint = load_checkpoint(args.checkpoint)
    model = checkpoint.model
    data = load_mnist()
    print(f"torch threads {torch.get_num_threads()}, load {load()}")
    if not args.skip_trust:
        trust(model, data.test_images, data.test_labels)
    images, labels = data.test_images[:20], data.test_labels[:20]
    for method in explain.METHODS:
        explain.attribute(model, images[:1], labels[:1], method)  # warm-up
        single, contrast = [], []
        for i in range(args.repeats):
            started = time.perf_counter()
            explain.attribute(model, images[i : i + 1], labels[i : i + 1], method)
            single.append(time.perf_counter() - started)
            started = time.perf_counter()
            explain.attribute(model, images[i : i + 1], labels[i : i + 1], method, against=(labels[i : i + 1] + 1) % 10)
            contrast.append(time.perf_counter() - started)
        started = time.perf_counter()
        explain.attribute(model, images, labels, method)
        batched = (time.perf_counter() - started) / len(images)
        print(
            f"{method:>22}: one image median {statistics.median(single) * 1e3:6.1f} ms "
            f"(p90 {statistics.quantiles(single, n=10)[-1] * 1e3:6.1f}), a contrast "
            f"{statistics.median(contrast) * 1e3:6.1f} ms, batched {batched * 1e3:6.1f} ms per image  (load {load()})"
        )
    network_view(checkpoint, images, args.repeats)

    started = time.perf_counter()
    features = embed.penultimate(model, data.test_images)
    print(f"penultimate features of 10,000 images: {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    points = projection.project(features, "pca")
    print(
        f"PCA of 10,000: {time.perf_counter() - started:.2f} s, "
        f"5-NN label agreement {projection.neighbour_agreement(points, data.test_labels.numpy()):.3f}"
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
