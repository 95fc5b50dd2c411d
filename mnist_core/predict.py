"""Read digits and numbers from images: preprocess each one, then a single forward pass for all their digits.

Each digit found is also asked whether it is a digit at all (``ood.DigitScore``), so a
letter or a smiley is reported as "not a digit" instead of getting a confident guess.
A piece of ink wider than it is high, which may be digits that touch, is read again
by the sequence reader (``sequence``), which parts it where it read each digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np
import torch

from . import sequence
from .checkpoints import Checkpoint, load_checkpoint
from .data import is_downloaded, load_mnist
from .images import ImageError, ImageSource
from .inference import features_and_logits
from .model import CNN
from .ood import DigitScore, fit_digit_score
from .places import default_checkpoint
from .preprocess import MAX_LINES, Box, Preprocessed, preprocess
from .sequence import Read

NO_DIGIT = "no digit found"
NOT_A_DIGIT = "not a digit"
TOO_MANY_LINES = (
    f"more than {MAX_LINES} lines of digits, or digits too small to read: crop the picture to {MAX_LINES} lines"
)


@dataclass
class DigitReading:
    """One digit of an image: what it most looks like, and whether it looks like a digit at all."""

    digit: int  # the most likely digit, even when is_digit is False (then it is only the closest)
    probabilities: list[float]  # 10 floats summing to 1
    box: Box  # x0, y0, x1, y1 in the image's own pixels
    is_digit: bool
    image: torch.Tensor  # the (1, 28, 28) model input
    steps: dict[str, np.ndarray]  # "cropped", "20x20", "28x28"
    line: int = 0  # which line of the picture, from the top


@dataclass
class Prediction:
    """What one image says.

    ``number`` is the digits left to right, "?" for a piece that does not look like a
    digit; None when nothing was read. A picture of several lines has each in ``lines``,
    top to bottom, and ``number`` is them joined by a space; ``digits`` are in that order.
    ``digit``, ``probabilities`` and ``image`` are the digit's when exactly one digit was
    read; for a single piece that is not a digit,
    ``probabilities`` are still given (its closest digit) and ``error`` says "not a digit".
    """

    digit: int | None
    probabilities: list[float] | None
    image: torch.Tensor | None
    steps: dict[str, np.ndarray]  # preprocessing's images, for display
    number: str | None = None
    digits: list[DigitReading] = field(default_factory=list)
    error: str | None = None  # NO_DIGIT, NOT_A_DIGIT or TOO_MANY_LINES
    size: tuple[int, int] = (0, 0)  # the image's width and height in pixels, which the boxes refer to
    lines: list[str] = field(default_factory=list)  # each line's reading, top to bottom


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> Checkpoint:
    """Loading costs more than predicting, so checkpoints are kept; the file's mtime is part of the key,
    so a checkpoint retrained under the same name is read again."""
    return load_checkpoint(path)


def _checkpoint(checkpoint: str | Path | Checkpoint | None) -> Checkpoint:
    if isinstance(checkpoint, Checkpoint):
        return checkpoint
    path = Path(checkpoint or default_checkpoint()).resolve()
    mtime_ns = path.stat().st_mtime_ns if path.is_file() else 0  # a missing file fails in load_checkpoint
    return _load(path, mtime_ns)


@lru_cache(maxsize=8)
def _fitted(path: Path, mtime_ns: int, model: CNN, val_size: int, seed: int) -> DigitScore | None:
    """The digit score of a checkpoint saved without one: fitted once on MNIST (seconds), None without MNIST."""
    if not is_downloaded():
        return None
    return fit_digit_score(model, load_mnist(verify=False), val_size, seed)


def digit_score(checkpoint: Checkpoint) -> DigitScore | None:
    """The checkpoint's stored digit score, or one fitted on demand (cached) for older checkpoints."""
    if checkpoint.digit_score is not None:
        return DigitScore.from_dict(checkpoint.digit_score)
    mtime_ns = checkpoint.path.stat().st_mtime_ns if checkpoint.path.is_file() else 0
    config = checkpoint.train_config
    return _fitted(checkpoint.path.resolve(), mtime_ns, checkpoint.model, config.val_size, config.seed)


def _judged(
    probabilities: list[list[float]],
    scores: list[float],
    threshold: float,
    reads: list[Read | None],
    parted: list[range],
) -> list[tuple[list[float], bool]]:
    """Each digit's probabilities, and whether it looks like a digit: its score at most ``threshold``.

    A digit the sequence reader also read is read by both: their probabilities multiplied,
    and "?" where the reader saw no digit. Where the reader parted one piece of ink into
    several digits (``parted``, each such piece's digits), the piece is judged as a whole:
    each cut holds bits of its neighbours, a picture nobody wrote, which the classifier and
    the score see worse than the reader did, seeing each digit in its place. Its digits are
    then the reader's, and digits where the reader saw no "?" in the piece and the cuts'
    mean score passes.
    """
    judged = []
    for probs, value, seen in zip(probabilities, scores, reads):
        ok = value <= threshold
        if seen is not None:
            both = np.asarray(seen.probabilities) * np.asarray(probs)
            probs, ok = (both / both.sum()).tolist(), ok and seen.digit >= 0
        judged.append((probs, ok))
    for piece in parted:
        theirs = [cast(Read, reads[i]) for i in piece]
        whole = all(r.digit >= 0 for r in theirs) and np.mean([scores[i] for i in piece]) <= threshold
        judged[piece.start : piece.stop] = [(r.probabilities, bool(whole)) for r in theirs]
    return judged


def _parted(prepared: list[Preprocessed], reads: list[Read | None]) -> list[range]:
    """Which of all the pictures' digits come from one piece the sequence reader parted into several."""
    parted, start = [], 0
    for p in prepared:
        for piece in p.pieces:
            digits = range(start + piece.first, start + piece.first + piece.count)
            if len(digits) > 1 and all(reads[i] is not None for i in digits):
                parted.append(digits)
        start += len(p.digits)
    return parted


def _read(prepared: list[Preprocessed], reads: list[Read | None], checkpoint: Checkpoint) -> list[Prediction]:
    """Each digit read by the model, and by the sequence reader where it read it too (``reads``, ``_judged``)."""
    digits = [d for p in prepared for d in p.digits]
    readings: list[DigitReading] = []
    if digits:
        features, logits = features_and_logits(checkpoint.model, torch.stack([d.tensor for d in digits]))
        score = digit_score(checkpoint)
        scores = score.scores(features).tolist() if score is not None else [0.0] * len(digits)
        threshold = score.threshold if score is not None else float("inf")
        judged = _judged(logits.softmax(dim=1).tolist(), scores, threshold, reads, _parted(prepared, reads))
        for d, (probs, ok) in zip(digits, judged):
            readings.append(DigitReading(int(np.argmax(probs)), probs, d.box, ok, d.tensor, d.steps, d.line))
    predictions, start = [], 0
    for p in prepared:
        mine = readings[start : start + len(p.digits)]
        start += len(p.digits)
        if not mine:
            error = TOO_MANY_LINES if p.crowded else NO_DIGIT
            predictions.append(Prediction(None, None, None, p.steps, error=error, size=p.size))
        elif not any(r.is_digit for r in mine):
            single = mine[0] if len(mine) == 1 else None
            closest = single.probabilities if single else None
            predictions.append(Prediction(None, closest, None, p.steps, None, mine, NOT_A_DIGIT, p.size))
        else:
            lines = ["".join(str(r.digit) if r.is_digit else "?" for r in mine if r.line == k) for k in range(p.lines)]
            one = mine[0] if len(mine) == 1 else None
            predictions.append(
                Prediction(
                    one.digit if one else None,
                    one.probabilities if one else None,
                    one.image if one else None,
                    p.steps,
                    " ".join(lines),
                    mine,
                    size=p.size,
                    lines=lines,
                )
            )
    return predictions


def predict(
    images: ImageSource | Sequence[ImageSource], checkpoint: str | Path | Checkpoint | None = None
) -> list[Prediction]:
    """One Prediction per image, in order; ``images`` is one image or a list or tuple of them.

    An image may be anything ``preprocess`` accepts, of one digit or of a number. One in
    which no digit is found gets a Prediction with digit and number None rather than a
    guess. An image that cannot be read at all raises ImageError (for a list, the message
    says which one), and a bad checkpoint raises CheckpointError. ``checkpoint`` None
    means the default model.
    """
    loaded = _checkpoint(checkpoint)
    batch = list(images) if isinstance(images, (list, tuple)) else [cast(ImageSource, images)]
    prepared = []
    for number, image in enumerate(batch, start=1):
        try:
            prepared.append(preprocess(image))
        except ImageError as exc:
            if len(batch) == 1:
                raise
            raise ImageError(f"image {number}: {exc}") from exc
    model = sequence.reader()
    reread = [sequence.reread(p, model) for p in prepared]
    return _read([p for p, _ in reread], [r for _, reads in reread for r in reads], loaded)
