"""Read a piece of ink that holds several digits (touching, overlapping) as a sequence: a small CNN with a CTC head.

Cutting touching digits apart before reading them fails where people write quickly: a
cut through two overlapping digits leaves neither whole. The sequence reader instead
looks along the whole piece, a column at a time, and says which digit it sees where
(Graves et al., 2006, connectionist temporal classification); nothing is cut until the
digits are known, and each digit's box comes from the frames where it was read.

It is trained on strings composed from MNIST's training digits and, for PEN_SHARE of
them, digits drawn in OpenCV's Hershey stroke fonts (``pen_digits``): MNIST's scanned
digits alone left the reader misreading numbers written with a pen, whose strokes are
smoother and more even than any in MNIST. Each digit is augmented as the digit model's
are (rotation, scale, bending, stroke width) and set side by side with gaps from an
overlap of a third of a digit to half a digit apart, with scribbles and loose strokes
(``data.outliers``) read as "?" so that a letter is not forced into digits:

    python -m mnist_core.sequence --seed 1     # writes mnist_core/sequence.pt as committed, a few CPU minutes
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import MNIST, augment, load_mnist, outliers
from .preprocess import PICTURE_STEPS, STROKE_RANGE, Digit, Preprocessed, digit_from_ink, stroke_width

HEIGHT = 28  # the reader's input height: digits scaled to INK_HEIGHT, as MNIST fits them to 20x20
INK_HEIGHT = 20
PAD = 4  # pixels of background around the ink, as in MNIST's 28x28
STRIDE = 2  # input columns per output frame: a narrow 1 squeezed against its neighbour still gets two frames
BLANK, UNKNOWN = 0, 11  # CTC's blank, and "?": ink that is no digit; digit d is label d + 1
LABELS = 12
GAPS = (-0.35, 0.5)  # space between neighbours, in digit widths: a third overlapping to half a digit apart
TOUCHING = 0.6  # share of training strings whose digits all touch or overlap
UNKNOWN_SHARE = 0.1  # share of training strings that are a scribble, read "?"
PEN_SHARE = 0.3  # share of training digits drawn in a stroke font rather than taken from MNIST
# OpenCV's single-stroke fonts, each also in italics: a pen's even line, in the shapes of printed digits
HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
PEN_WIDTHS = (6, 10, 14)  # pixels, on glyphs about 60 pixels high
SLANTS = (-0.3, -0.1, 0.1, 0.3)  # horizontal shear: writing leans either way
LEAD = 0.2  # of the spacing between two digits read: how far into the next digit its left edge lies
WIDER = 1.0  # a piece wider than its height may hold several digits, and is read again
WEIGHTS = Path(__file__).with_name("sequence.pt")


class SequenceReader(nn.Module):
    """(N, 1, 28, W) in [-1, 1] -> (N, W / 2, LABELS) logits: one frame per two columns."""

    def __init__(self) -> None:
        super().__init__()

        def block(inputs: int, outputs: int) -> list[nn.Module]:
            return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, 16),
            nn.MaxPool2d(2),  # 14 x W/2
            *block(16, 32),
            nn.MaxPool2d((2, 1)),  # 7 x W/2
            *block(32, 48),
            nn.Conv2d(48, 64, (7, 1)),  # the column's whole height: 1 x W/2
            nn.ReLU(),
        )
        self.context = nn.Sequential(  # a frame sees about a digit and a half either side
            nn.Conv1d(64, 64, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(64, 64, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(64, LABELS, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.context(self.features(x).squeeze(2)).transpose(1, 2)


def line_input(ink: np.ndarray, normalise_strokes: bool = True) -> tuple[np.ndarray, float, int]:
    """A piece's ink (uint8 or float 0..255, light on black) as the reader's input: (28, W) float32 in [-1, 1].

    Cropped to the ink, strokes brought into MNIST's width for the height (as the digit
    model's preprocessing does for one digit), scaled to INK_HEIGHT high, PAD around.
    Returns the input, the scale from the ink's pixels to the input's, and the ink's
    first column, so frames map back to the piece.
    """
    rows, cols = np.nonzero(ink > 0)
    top, left = int(rows.min()), int(cols.min())
    cropped = np.asarray(ink[top : rows.max() + 1, left : cols.max() + 1], dtype=np.float32)
    if normalise_strokes:
        relative = stroke_width(cropped > 127) / cropped.shape[0]
        low, high = STROKE_RANGE
        radius = round(abs(relative - min(max(relative, low), high)) * cropped.shape[0] / 2)
        if radius:
            morph = cv2.dilate if relative < low else cv2.erode
            grown = morph(np.pad(cropped, radius), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
            rows, cols = np.nonzero(grown > 0)
            if len(rows):
                cropped = np.asarray(grown[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1], np.float32)
                left += int(cols.min()) - radius
    scale = INK_HEIGHT / cropped.shape[0]
    width = max(1, round(cropped.shape[1] * scale))
    resized = cv2.resize(cropped, (width, INK_HEIGHT), interpolation=cv2.INTER_AREA)
    line = np.pad(resized, PAD) / 127.5 - 1
    return line.astype(np.float32), scale, left


@dataclass
class Read:
    """One digit of a piece as the reader saw it: the label, its probabilities over 0-9 at the frame where it
    was read, and the columns of the piece (start, stop) it takes."""

    digit: int  # 0-9, or -1 for "?"
    probabilities: list[float]
    columns: tuple[int, int]


def decode(frames: torch.Tensor) -> list[tuple[int, int, int]]:
    """Greedy CTC decoding of (T, LABELS) logits: each label read, with the first and last frame of its run."""
    best = frames.argmax(1).tolist()
    runs: list[tuple[int, int, int]] = []
    for t, label in enumerate(best):
        if label == BLANK:
            continue
        if runs and runs[-1][0] == label and runs[-1][2] == t - 1:
            runs[-1] = (label, runs[-1][1], t)
        else:
            runs.append((label, t, t))
    return runs


def cuts(reads: list[float], columns: np.ndarray) -> list[int]:
    """Where to part neighbouring digits read at columns ``reads`` of a piece whose ink per column is ``columns``.

    The reader names a digit as its left edge comes into view, a little before it, so
    the cut before a digit is looked for just after where it was read (LEAD of the
    spacing), at the faintest column of ink nearby; the first and last digits reach the
    piece's ends.
    """
    bounds = [0]
    for a, b in itertools.pairwise(reads):
        target, reach = b + LEAD * (b - a), max(1, round((b - a) / 4))
        lo = max(bounds[-1] + 1, round(target) - reach)
        hi = min(len(columns) - 1, round(target) + reach + 1)
        bounds.append(lo + int(np.argmin(columns[lo:hi])) if hi > lo else min(round(target), len(columns) - 1))
    return [*bounds, len(columns)]


def read(model: SequenceReader, ink: np.ndarray) -> list[Read]:
    """The digits of one piece of ink (uint8, light on black, cropped to the piece), left to right."""
    line, scale, left = line_input(ink)
    with torch.inference_mode():
        frames = model(torch.from_numpy(line)[None, None])[0]
    runs = decode(frames)
    if not runs:
        return []
    probabilities = frames.softmax(1)
    # A frame covers STRIDE input columns; back in the piece's columns, less the padding.
    where = [((first + last + 1) / 2 * STRIDE - PAD) / scale + left for _, first, last in runs]
    bounds = cuts(where, ink.sum(axis=0, dtype=np.float64))
    reads = []
    for (label, first, last), start, stop in zip(runs, bounds, bounds[1:]):
        frame = first + int(probabilities[first : last + 1, label].argmax())
        digits = probabilities[frame, 1:UNKNOWN]
        reads.append(Read(label - 1 if label != UNKNOWN else -1, (digits / digits.sum()).tolist(), (start, stop)))
    return reads


@lru_cache(maxsize=1)
def reader(path: Path | None = None) -> SequenceReader:
    """The reader saved at ``path``, by default the committed one; loaded once (its weights are float16, to keep
    the package small)."""
    model = SequenceReader()
    state = torch.load(path or WEIGHTS, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def reread(prepared: Preprocessed, model: SequenceReader) -> tuple[Preprocessed, list[Read | None]]:
    """The digits of ``prepared`` with every piece wider than one digit read by ``model`` instead of cut by columns.

    Returns the digits so made (each from the columns its label was read in, so a box per
    digit) and, for each digit, the reader's Read, or None where the cut digit was kept: a
    piece no wider than one digit, or one the reader found nothing in.
    """
    digits: list[Digit] = []
    reads: list[Read | None] = []
    pieces = []
    for piece in prepared.pieces:
        height, width = piece.ink.shape
        found = read(model, piece.ink) if width > WIDER * height else []
        parts = [_columns(piece.ink, r.columns) for r in found]
        made = [digit_from_ink(p, piece.offset, piece.scale, prepared.size) if p.any() else None for p in parts]
        if not found or any(d is None for d in made):
            kept = prepared.digits[piece.first : piece.first + piece.count]
            pieces.append(replace(piece, first=len(digits)))
            digits.extend(kept)
            reads.extend([None] * len(kept))
            continue
        pieces.append(replace(piece, first=len(digits), count=len(found)))
        digits.extend(replace(d, line=piece.line) for d in made if d is not None)
        reads.extend(found)
    steps = {k: v for k, v in prepared.steps.items() if k in PICTURE_STEPS}
    if len(digits) == 1:
        steps.update(digits[0].steps)
    return replace(prepared, digits=digits, steps=steps, pieces=pieces), reads


def _columns(ink: np.ndarray, columns: tuple[int, int]) -> np.ndarray:
    part = np.zeros_like(ink)
    part[:, columns[0] : columns[1]] = ink[:, columns[0] : columns[1]]
    return part


def _glyph(image: torch.Tensor) -> np.ndarray:
    """A 28x28 image's ink 0..1, cropped to its inked columns."""
    ink = (image[0].numpy() + 1) / 2
    cols = np.nonzero(ink.max(axis=0) > 0.1)[0]
    return ink[:, cols.min() : cols.max() + 1] if len(cols) else ink[:, 13:15]


@lru_cache(maxsize=1)
def pen_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Every digit in every Hershey font, pen width and slant, made MNIST-like as a picture's digit is:
    images (N, 1, 28, 28) in [-1, 1] and labels (N,).

    The fonts' zero is slashed, which nobody writes by hand; their capital O stands in for it.
    """
    images, labels = [], []
    for digit, font, italic, width, slant in itertools.product(
        range(10), HERSHEY_FONTS, (0, cv2.FONT_ITALIC), PEN_WIDTHS, SLANTS
    ):
        ink = np.zeros((200, 200), np.uint8)
        cv2.putText(ink, "O" if digit == 0 else str(digit), (50, 150), font | italic, 3.0, 255, width, cv2.LINE_AA)
        shear = np.array([[1, slant, -100 * slant], [0, 1, 0]], np.float32)  # about the glyph's middle row
        made = digit_from_ink(np.asarray(cv2.warpAffine(ink, shear, (200, 200))), (0, 0), 1.0, (200, 200))
        if made is not None:
            images.append(made.tensor)
            labels.append(digit)
    return torch.stack(images), torch.tensor(labels)


def compose(
    data: MNIST, count: int, generator: torch.Generator, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[list[int]]]:
    """``count`` training strings from MNIST's training digits and pen digits: each a (28, W) input and its labels.

    Strings of 1-7 digits; most touch or overlap (TOUCHING), the rest mix gaps; a few
    are one scribble or loose strokes, stretched wide, labelled "?".
    """
    lengths = rng.integers(1, 8, count)
    total = int(lengths.sum())
    picks = torch.randint(len(data.train_labels), (total,), generator=generator)
    images, labels = data.train_images[picks], data.train_labels[picks]  # copies, so replacing some is safe
    pen_images, pen_labels = pen_digits()
    pen = torch.rand(total, generator=generator) < PEN_SHARE
    pen_picks = torch.randint(len(pen_labels), (int(pen.sum()),), generator=generator)
    images[pen], labels[pen] = pen_images[pen_picks], pen_labels[pen_picks]
    digits = augment(images, generator, labels)
    odd = outliers(digits[: max(3, count // 4)], generator)[: 2 * max(1, count // 12)]  # zigzags and strokes only
    inputs, targets, start = [], [], 0
    for n in lengths:
        glyphs = [_glyph(d) for d in digits[start : start + n]]
        target = (labels[start : start + n] + 1).tolist()
        start += n
        if rng.random() < UNKNOWN_SHARE:
            scribble = _glyph(odd[int(rng.integers(len(odd)))])
            stretch = rng.uniform(1, 3)
            glyphs = [cv2.resize(scribble, (max(2, round(scribble.shape[1] * stretch)), HEIGHT))]
            target = [UNKNOWN]
        low, high = (GAPS[0], 0.05) if rng.random() < TOUCHING else GAPS
        widths = [g.shape[1] for g in glyphs]
        typical = max(float(np.median(widths)), 8.0)
        lefts = [0]
        for w in widths[:-1]:
            lefts.append(lefts[-1] + max(w + round(rng.uniform(low, high) * typical), 2))
        canvas = np.zeros((HEIGHT, max(x + w for x, w in zip(lefts, widths))), np.float32)
        for x, g in zip(lefts, glyphs):
            canvas[:, x : x + g.shape[1]] = np.maximum(canvas[:, x : x + g.shape[1]], g)
        inputs.append(line_input(canvas * 255, normalise_strokes=False)[0])
        targets.append(target)
    return inputs, targets


def _batch(inputs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs padded on the right with background to one width, and each one's frame count."""
    width = max(i.shape[1] for i in inputs)
    width += -width % STRIDE
    batch = torch.full((len(inputs), 1, HEIGHT, width), -1.0)
    for k, i in enumerate(inputs):
        batch[k, 0, :, : i.shape[1]] = torch.from_numpy(i)
    return batch, torch.tensor([i.shape[1] // STRIDE for i in inputs])


def train_reader(
    steps: int = 4000, batch_size: int = 32, seed: int = 0, out: Path = WEIGHTS, log_every: int = 100
) -> SequenceReader:
    """Train the sequence reader from scratch on composed training strings (``compose``) and save it to ``out``.

    Every draw comes from ``seed``, so a run is reproducible on one machine.
    """
    torch.manual_seed(seed)
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    data = load_mnist(verify=False)
    model = SequenceReader()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    started = time.process_time()
    model.train()
    for step in range(1, steps + 1):
        inputs, targets = compose(data, batch_size, generator, rng)
        batch, frames = _batch(inputs)
        log_probs = F.log_softmax(model(batch), dim=2).transpose(0, 1)  # (T, N, LABELS), as CTCLoss wants
        flat = torch.tensor([label for t in targets for label in t])
        loss = ctc(log_probs, flat, frames, torch.tensor([len(t) for t in targets]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % log_every == 0 or step == steps:
            cpu = time.process_time() - started
            print(f"step {step}/{steps}  CTC loss {loss.item():.3f}  CPU {cpu:.0f} s", flush=True)
    model.eval()
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, out)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description="train the sequence reader for touching digits")
    parser.add_argument("--steps", type=int, default=4000, help="training steps of 32 strings (default: 4000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same reader (default: 0)")
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="where the weights go (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small batches: a second thread mostly waits
    train_reader(args.steps, seed=args.seed, out=args.out)


if __name__ == "__main__":
    main()
