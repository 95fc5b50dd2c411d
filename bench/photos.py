"""What people bring, read by a model: accuracy by kind on the generated set, "not a digit" scores compared, latency.

Prints, for tests/photo_digits.py's set: the accuracy on photos (by ink), canvas
drawings, whole numbers (digits apart, and touching or overlapping by up to a third; both also
as cut by columns alone, without the sequence reader),
digits cropped close (and MNIST's 28x28), photos under a shadow edge of every softness,
and pages of 2-5 lines (lines counted and read right), the share of non-digits flagged, and the share of MNIST
test digits refused; then, at the same share of held-out MNIST digits refused (0.5%),
how many non-digit pieces each candidate score flags (ood.py's sum of three distances,
each of them alone, the first of which was the score before, the Mahalanobis distance
on the penultimate features, the energy score and the top softmax probability); then
p50/p95 of preprocess + predict for a canvas (each call another generated canvas: the
pen width sets the cost), a 12-megapixel phone JPEG, a photo of a 5-digit number, of a
6-digit number whose digits touch, and of a page of 5 lines.

    python bench/photos.py            # on a quiet machine: the latency targets are for an idle CPU
    python bench/photos.py --checkpoint checkpoints/run-20250101-120000.pt --repeats 20
    python bench/photos.py --latency-only --repeats 100
    python bench/photos.py --touching-seeds 9,100,200,201,300,301   # touching numbers on six seeds
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections import defaultdict
from pathlib import Path
from unittest.mock import patch

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from photo_digits import canvases, non_digits, numbers, pages, photos, shadowed, tight_crops

from mnist_core import sequence
from mnist_core.checkpoints import Checkpoint, load_checkpoint
from mnist_core.data import load_mnist
from mnist_core.embed import hidden_layer, penultimate
from mnist_core.inference import features_and_logits
from mnist_core.ood import PARTS, DigitScore
from mnist_core.places import default_checkpoint
from mnist_core.predict import NO_DIGIT, NOT_A_DIGIT, digit_score, predict


def _gaussian_distance(train: torch.Tensor, labels: torch.Tensor):
    means = torch.stack([train[labels == d].mean(0) for d in range(10)])
    centred = (train - means[labels]).double()
    covariance = centred.T @ centred / len(centred)
    covariance += 1e-3 * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=torch.float64)
    precision = torch.linalg.inv(covariance).float()

    def distance(features: torch.Tensor) -> torch.Tensor:
        diff = features[:, None] - means[None]
        return torch.einsum("nch,hk,nck->nc", diff, precision, diff).min(1).values

    return distance


def compare_scores(checkpoint: Checkpoint, score: DigitScore, pieces: torch.Tensor) -> None:
    data = load_mnist(verify=False)
    train, val = data.validation_indices(checkpoint.train_config.val_size, checkpoint.train_config.seed)
    fit = train[:20000]
    model = checkpoint.model
    penultimate_distance = _gaussian_distance(
        torch.from_numpy(penultimate(model, data.train_images[fit])), data.train_labels[fit]
    )

    def scores(images: torch.Tensor) -> dict[str, torch.Tensor]:
        maps, logits = features_and_logits(model, images)
        parts = score.parts(maps)
        return {
            "the sum of the three below (used)": score.scaled(parts),
            **{f"{name} alone": parts[:, i] for i, name in enumerate(PARTS)},
            "Mahalanobis, penultimate features": penultimate_distance(torch.from_numpy(hidden_layer(model, maps))),
            "energy (-logsumexp of logits)": -torch.logsumexp(logits, 1),
            "top softmax probability": -logits.softmax(1).max(1).values,
        }

    held_out, test, odd = scores(data.train_images[val]), scores(data.test_images), scores(pieces)
    print(f"\n'not a digit' scores, threshold at 0.5% of {len(val)} held-out MNIST digits:")
    for name in held_out:
        threshold = torch.quantile(held_out[name], 0.995)
        flagged = (odd[name] > threshold).float().mean().item()
        refused = (test[name] > threshold).float().mean().item()
        print(f"  {name:<45} non-digit pieces flagged {flagged:6.1%}   MNIST test refused {refused:.2%}")


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def latency(checkpoint, repeats: int) -> None:
    def timed(sources: list) -> tuple[float, float]:
        predict(sources[0], checkpoint)  # warm-up
        times = []
        for i in range(repeats):
            started = time.perf_counter()
            predict(sources[i % len(sources)], checkpoint)
            times.append(time.perf_counter() - started)
        return float(np.percentile(times, 50)) * 1000, float(np.percentile(times, 95)) * 1000

    drawings = [np.asarray(c.image) for c in canvases(repeats)]  # each its own pen (6-40 px), size and place
    photo = next(s.image for s in photos(20) if s.image.width * s.image.height > 8e6).convert("RGB")
    photo = photo.resize((4000, 3000))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=88)
    jpeg = buffer.getvalue()
    five = next(s.image for s in numbers(40) if len(s.label) == 5)
    six = next(s.image for s in numbers(40, seed=7, gap=(-0.2, 0.0)) if len(s.label) == 6)
    page = next(s.image for s in pages(20, seed=8) if len(s.label.split()) == 5)
    five_jpeg, six_jpeg, page_jpeg = (_jpeg(image) for image in (five, six, page))
    print("\npreprocess + predict, one image (ms):")
    for name, sources, target in (
        (f"320x320 canvases (RGBA arrays, {len(drawings)})", drawings, 10),
        ("12-megapixel phone JPEG (4000x3000 bytes)", [jpeg], 80),
        (f"photo of a 5-digit number ({five.width}x{five.height} JPEG)", [five_jpeg], 150),
        (f"photo of a 6-digit touching number ({six.width}x{six.height} JPEG)", [six_jpeg], 150),
        (f"photo of a 5-line page ({page.width}x{page.height} JPEG)", [page_jpeg], 400),
    ):
        p50, p95 = timed(sources)
        print(f"  {name:<52} p50 {p50:6.1f}  p95 {p95:6.1f}  (target p95 <= {target})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help=f"model to measure (default: {default_checkpoint()})"
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per input (default: 20)")
    parser.add_argument("--count", type=int, default=100, help="generated images per kind (default: 100)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads; one image is too little work to share (default: 1)"
    )
    parser.add_argument("--latency-only", action="store_true", help="skip the accuracy part, print only latency")
    parser.add_argument(
        "--touching-seeds",
        type=lambda text: [int(seed) for seed in text.split(",")],
        default=[9],
        help="seeds of the sets of touching numbers, comma-separated, each printed on its own (default: 9)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().split()[0]} (on {torch.get_num_threads()} torch threads)")
    if args.latency_only:
        latency(checkpoint, args.repeats)
        return

    by_kind = defaultdict(list)
    per_seed = [numbers(args.count // 2, seed=seed, gap=(-0.2, 0.0)) for seed in args.touching_seeds]
    touching = [s for one_seed in per_seed for s in one_seed]
    sample_sets = (photos(args.count), canvases(args.count), numbers(args.count // 2), touching)
    for sample_set in (*sample_sets, tight_crops(args.count, seed=10), shadowed(args.count, seed=11)):
        for s, p in zip(sample_set, predict([s.image for s in sample_set], checkpoint)):
            by_kind[s.kind].append(p.number == s.label)
            by_kind[s.kind.split()[0] + " (all)"].append(p.number == s.label)
    if len(per_seed) > 1:
        size = args.count // 2
        for i, seed in enumerate(args.touching_seeds):
            by_kind[f"touching number, seed {seed}"] = by_kind["touching number"][i * size : (i + 1) * size]
    lined = pages(args.count // 4, seed=12, lines=(2, 5))
    for s, p in zip(lined, predict([s.image for s in lined], checkpoint)):
        written = s.label.split()
        by_kind["page: lines counted right"].append(len(p.lines) == len(written))
        if len(p.lines) == len(written):
            by_kind["page: lines read right"].extend(a == b for a, b in zip(p.lines, written))
    for kind, results in sorted(by_kind.items()):
        print(f"  {kind:<28} {np.mean(results):6.1%} of {len(results)}")
    with patch.object(sequence, "WIDER", float("inf")):  # no piece read again: the digits as cut by columns
        for name, sample_set in (("apart", sample_sets[2]), ("touching", touching)):
            predictions = predict([s.image for s in sample_set], checkpoint)
            right = [p.number == s.label for s, p in zip(sample_set, predictions)]
            print(f"  {'number ' + name + ', cut only':<28} {np.mean(right):6.1%} of {len(right)}")
    odd = non_digits(args.count)
    predictions = predict([s.image for s in odd], checkpoint)
    flagged = [p.error in (NOT_A_DIGIT, NO_DIGIT) or "?" in (p.number or "") for p in predictions]
    print(f"  {'not a digit, flagged':<28} {np.mean(flagged):6.1%} of {len(odd)}")
    data = load_mnist(verify=False)
    score = digit_score(checkpoint)
    if score is not None:
        refused = (~score.is_digit(features_and_logits(checkpoint.model, data.test_images)[0])).float().mean()
        print(f"  {'MNIST test digits refused':<28} {refused.item():6.2%} of {len(data.test_images)}")
        pieces = torch.stack([r.image for p in predictions for r in p.digits])
        compare_scores(checkpoint, score, pieces)
    latency(checkpoint, args.repeats)


if __name__ == "__main__":
    main()
