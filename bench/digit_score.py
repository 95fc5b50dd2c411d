"""What fitting the "not a digit" score costs at the end of every training run, by preset; and what each way of
scoring flags, with the default model (--figures).

The fit's cost does not depend on what the weights learned, so each preset's model is
measured freshly initialised (seeded): no training needed, and the three presets take
under a minute. Extra memory is the peak resident size while fitting, sampled every
millisecond, minus the size just before (data and model already loaded), in the last
fit: the first also pages in the libraries it calls (oneDNN kernels, LAPACK), 100 to
170 MB more, which a training run has already paid for. The stored score's size is what it adds
to the checkpoint.

With --figures it prints, for the default model, each score's share of generated
letters and symbols flagged (tests/not_digits.py, a third shaped like digits; seeds 10
and 12 developed on, 20 not), and of digits refused: MNIST's test set, tight crops,
canvases and photos (tests/photo_digits.py). Every score's threshold is the value
REJECT_RATE of held-out training digits exceed, as the stored score's is.

    python bench/digit_score.py                      # quick, default and best
    python bench/digit_score.py --presets quick --repeats 3
    python bench/digit_score.py --figures --count 100
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from not_digits import letters, tight_digits
from photo_digits import canvases, photos

from mnist_core.checkpoints import load_checkpoint
from mnist_core.data import MNIST, load_mnist
from mnist_core.inference import features_and_logits
from mnist_core.model import CNN
from mnist_core.ood import PARTS, REJECT_RATE, WEIGHTS, DigitScore, fit_digit_score
from mnist_core.places import default_checkpoint
from mnist_core.predict import digit_score
from mnist_core.preprocess import preprocess
from mnist_core.train import PRESETS

Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (maps, logits) -> (N,), higher: less like a digit


def _scorers(score: DigitScore) -> dict[str, Scorer]:
    """The stored score, the distances alone (the score before it had a line between digits and letters), the
    line alone, and two softmax scores (Hendrycks and Gimpel, 2017; Liu et al., 2020)."""
    median, high = score.scale[:, 0], score.scale[:, 1]
    weights = torch.tensor(WEIGHTS)

    def weighted(keep: list[int]) -> Scorer:
        return lambda maps, logits: ((score.parts(maps) - median) / (high - median) * weights)[:, keep].sum(dim=1)

    distances = list(range(len(PARTS) - 1))
    return {
        "distances and line (stored)": weighted([*distances, len(PARTS) - 1]),
        "distances alone (before)": weighted(distances),
        "line alone": weighted([len(PARTS) - 1]),
        "top softmax probability": lambda maps, logits: -logits.softmax(dim=1).max(dim=1).values,
        "energy": lambda maps, logits: -torch.logsumexp(logits, dim=1),
    }


def figures(count: int, data: MNIST) -> None:
    checkpoint = load_checkpoint(default_checkpoint())
    score = digit_score(checkpoint)
    assert score is not None, "no digit score: is MNIST downloaded?"
    _, val_index = data.validation_indices(checkpoint.train_config.val_size, checkpoint.train_config.seed)
    held_out = features_and_logits(checkpoint.model, data.train_images[val_index])
    test = features_and_logits(checkpoint.model, data.test_images)
    accuracy = (test[1].argmax(dim=1) == data.test_labels).float().mean().item()
    print(f"default model: MNIST test accuracy {accuracy:.2%}")
    sets = {
        "letters, seed 10 (flagged)": letters(count, 10),
        "letters, seed 12 (flagged)": letters(count, 12),
        "letters, seed 20 (flagged)": letters(count, 20),
        "tight crops, seed 21 (refused)": tight_digits(count, 21),
        "canvases, seed 1 (refused)": canvases(count, 1),
        "photos, seed 0 (refused)": photos(count, 0),
    }
    pieces = {name: [preprocess(s.image).digits for s in samples] for name, samples in sets.items()}
    for approach, scorer in _scorers(score).items():
        threshold = torch.quantile(scorer(*held_out), 1 - REJECT_RATE)
        row = [f"MNIST test refused {(scorer(*test) > threshold).float().mean().item():.2%}"]
        for name, images in pieces.items():
            found = [torch.stack([d.tensor for d in digits]) for digits in images if digits]
            refused = (scorer(*features_and_logits(checkpoint.model, torch.cat(found))) > threshold).tolist()
            counted, start = [], 0
            for digits in images:  # an image counts when any piece is refused; a letter also when none is found
                counted.append(any(refused[start : start + len(digits)]) or (not digits and "letters" in name))
                start += len(digits)
            row.append(f"{name} {sum(counted) / len(counted):.0%}")
        print(f"  {approach}: " + ", ".join(row))


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _peak_while(work):
    """Run ``work()``; return its result and the peak resident size above the size before it started."""
    before, peak, done = _resident_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _resident_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
    return result, max(peak[0], _resident_bytes()) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS), help="presets to fit")
    parser.add_argument(
        "--repeats", type=int, default=2, help="fits per preset; the fastest time is printed (default: 2)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2, as training uses)")
    parser.add_argument("--figures", action="store_true", help="print what each score flags instead of fit costs")
    parser.add_argument("--count", type=int, default=100, help="images per generated set, with --figures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_mnist(verify=False)
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().split()[0]} (on {torch.get_num_threads()} torch threads)")
    if args.figures:
        figures(args.count, data)
        return
    for name in args.presets:
        model_config, train_config = PRESETS[name]
        torch.manual_seed(0)
        model = CNN(model_config).eval()
        seconds, extra = [], 0
        for _ in range(args.repeats):
            start = time.perf_counter()
            fit = partial(fit_digit_score, model, data, train_config.val_size, train_config.seed)
            score, peak = _peak_while(fit)
            seconds.append(time.perf_counter() - start)
            extra = peak
        stored = io.BytesIO()
        torch.save(score.to_dict(), stored)
        print(
            f"  {name:<8} fit {min(seconds):5.2f} s   extra peak memory {extra / 2**20:6.0f} MB"
            f"   stored score {stored.tell() / 2**20:5.2f} MB"
        )


if __name__ == "__main__":
    main()
