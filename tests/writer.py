"""A synthetic writer: one person's handwriting, which the default model misreads often, drawn from a seed.

The hand leans far to the right, writes thick, crosses its 7s, gives its 1s a long flag
and a foot, leaves its 4s open at the top, draws 9s with a straight stem and a small
head, and 2s with a loop at the bottom; each stroke lands a little off, as a hand's do, so
no two samples are the same. Pictures are canvases like the Draw page's (dark ink on
white), read through ``preprocess`` as the page reads them.
"""

from __future__ import annotations

import numpy as np
import torch
from custom_digits import _arc, _draw_strokes
from PIL import Image

from mnist_core.preprocess import preprocess

Strokes = list[list[tuple[float, float]]]
# This writer's shapes, where they differ from the common skeletons (a box 0..1 high, x right, y down).
HAND: dict[int, Strokes] = {
    0: [_arc(0.4, 0.5, 0.35, 0.5, 0, 360), [(-0.05, 1.05), (0.85, -0.05)]],  # slashed
    1: [[(0.0, 0.12), (0.6, 0.0), (0.6, 1.0)]],  # a flag almost as long as a 7's bar
    2: [[*_arc(0.4, 0.3, 0.33, 0.3, 190, 400), (0.1, 0.95), *_arc(0.2, 0.85, 0.12, 0.12, 270, 630), (0.85, 0.95)]],
    3: [[(0.05, 0.0), (0.75, 0.0), (0.35, 0.4), *_arc(0.4, 0.7, 0.35, 0.3, 270, 510)]],  # a flat top
    4: [[(0.1, 0.0), *_arc(0.35, 0.45, 0.25, 0.2, 180, 90), (0.65, 0.65)], [(0.65, 0.0), (0.65, 1.0)]],  # open, round
    5: [[(0.3, 0.02), (0.85, 0.0)], [(0.3, 0.05), *_arc(0.45, 0.62, 0.38, 0.38, 235, 520)]],  # the bar apart
    6: [[(0.65, 0.0), *_arc(0.65, 0.6, 0.55, 0.6, 260, 180), *_arc(0.4, 0.75, 0.3, 0.25, 180, 510)]],  # a long neck
    7: [[(0.0, 0.1), (0.05, 0.0), (0.8, 0.0), (0.3, 1.0)], [(0.25, 0.5), (0.75, 0.5)]],  # crossed
    8: [_arc(0.4, 0.22, 0.2, 0.22, 0, 360), _arc(0.4, 0.74, 0.3, 0.26, 0, 360)],  # two rings, apart
    9: [_arc(0.45, 0.22, 0.25, 0.2, 0, 360), [(0.7, 0.22), (0.7, 0.85), *_arc(0.45, 0.85, 0.25, 0.15, 0, 160)]],
}
SLANT = -0.35  # how far the top leans right of the bottom, in digit heights: this hand leans back


def draw(digit: int, rng: np.random.Generator) -> Image.Image:
    """One digit in this hand on a 280x280 white canvas."""
    slant = SLANT + rng.normal(0, 0.05)
    height = rng.uniform(150, 200)
    # The lean takes the top up to 0.4 heights left of the bottom: the digit starts that far in.
    left, top = rng.uniform(0.4 * height + 10, 250 - 0.8 * height), rng.uniform(30, 280 - height - 30)
    strokes = []
    for stroke in HAND[digit]:
        points = np.array(stroke) + rng.normal(0, 0.03, 2) + rng.normal(0, 0.004, (len(stroke), 2))
        x = points[:, 0] * 0.8 + slant * (1 - points[:, 1])
        strokes.append(np.stack([left + height * x, top + height * points[:, 1]], axis=1))
    image = Image.new("L", (280, 280), 255)
    _draw_strokes(image, strokes, int(rng.integers(26, 34)), 0)
    return image


def writer_digits(per_digit: int, seed: int) -> tuple[list[Image.Image], list[int]]:
    """``per_digit`` pictures of each digit in this hand, digits in turn."""
    rng = np.random.default_rng(seed)
    labels = [d for _ in range(per_digit) for d in range(10)]
    return [draw(d, rng) for d in labels], labels


def model_inputs(pictures: list[Image.Image]) -> torch.Tensor:
    """The 28x28 each picture becomes, as the Draw page reads it: (N, 1, 28, 28) in [-1, 1]."""
    return torch.stack([preprocess(p).digits[0].tensor for p in pictures])


def number_picture(digits: str, seed: int) -> Image.Image:
    """A number in this hand: its digits' canvases side by side, as one picture."""
    rng = np.random.default_rng(seed)
    picture = Image.new("L", (320 * len(digits), 280), 255)
    for place, digit in enumerate(digits):
        picture.paste(draw(int(digit), rng), (320 * place, 0))
    return picture
