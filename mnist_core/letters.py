"""Letters and symbols as MNIST-like images, drawn from fonts every install has: what "not a digit" learns from.

Distances to digits alone still let a B pass as an 8 and a Z as a 2. Letters are the
non-digits people most often bring, so the "not a digit" score (``ood``) draws a line
between digits and many letters, written as a pen would: OpenCV's Hershey fonts are
single-stroke (plotter) alphabets, eight faces, upright and italic, drawn at any pen
width; Pillow's built-in scalable font adds filled outlines. Both come with the package's
own dependencies, so any checkpoint's score can be fitted anywhere, and neither is a
font the tests draw their letters with.

Characters a careful reader could not tell from a digit either are left out: O and o,
and the single strokes I, l, |, /, !, brackets and parentheses, which are a 0 or a 1 as
often written; drawing the line past a plain ring would refuse 0s.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .data import augment, normalize

CHARACTERS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz#$%&@?+*=<>\\{}~^"
HERSHEY_FACES = tuple(range(8))  # cv2.FONT_HERSHEY_SIMPLEX .. cv2.FONT_HERSHEY_SCRIPT_COMPLEX
HERSHEY_PENS = (2, 5, 9)  # pen widths at HEIGHT pixels tall: fine, ballpoint-like and felt pen
OUTLINE_PENS = (0, 3)  # Pillow's stroke width around the filled glyph
HEIGHT = 80  # pixels a glyph is drawn at, before it is fitted to MNIST's 20x20 box
BOX, SIZE = 20, 28


def _hershey(character: str, face: int, pen: int) -> np.ndarray:
    scale = cv2.getFontScaleFromHeight(face, HEIGHT, pen)
    canvas = np.zeros((3 * HEIGHT, 3 * HEIGHT), np.uint8)
    cv2.putText(canvas, character, (HEIGHT // 2, 2 * HEIGHT), face, scale, 255, pen, cv2.LINE_AA)
    return canvas


def _outline(character: str, pen: int) -> np.ndarray:
    glyph = Image.new("L", (3 * HEIGHT, 3 * HEIGHT), 0)
    font = ImageFont.load_default(size=HEIGHT)
    ImageDraw.Draw(glyph).text((HEIGHT // 2, HEIGHT // 2), character, fill=255, font=font, stroke_width=pen)
    return np.asarray(glyph)


def _mnist_like(ink: np.ndarray) -> np.ndarray | None:
    """Cropped, fitted to 20x20 keeping the aspect ratio, centre of mass at (14, 14): MNIST's own recipe."""
    rows, cols = np.nonzero(ink)
    if len(rows) == 0:
        return None
    cropped = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = BOX / max(cropped.shape)
    size = (max(1, round(cropped.shape[1] * scale)), max(1, round(cropped.shape[0] * scale)))
    fitted = np.asarray(Image.fromarray(cropped).resize(size, Image.Resampling.LANCZOS))
    moments = cv2.moments(fitted)
    if moments["m00"] == 0:
        return None
    top = min(max(round(SIZE / 2 - moments["m01"] / moments["m00"]), 0), SIZE - fitted.shape[0])
    left = min(max(round(SIZE / 2 - moments["m10"] / moments["m00"]), 0), SIZE - fitted.shape[1])
    out = np.zeros((SIZE, SIZE), np.uint8)
    out[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    return out


@cache
def letters() -> torch.Tensor:
    """Every character of CHARACTERS in every face and pen, normalized (N, 1, 28, 28); the same on every machine."""
    drawn = [
        _hershey(c, face | italic, pen)
        for c in CHARACTERS
        for face in HERSHEY_FACES
        for italic in (0, cv2.FONT_ITALIC)
        for pen in HERSHEY_PENS
    ]
    drawn += [_outline(c, pen) for c in CHARACTERS for pen in OUTLINE_PENS]
    images = [image for image in map(_mnist_like, drawn) if image is not None]
    return normalize(torch.from_numpy(np.stack(images)))


def written_letters(count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``count`` letters and symbols drawn at random from ``letters()``, each rotated, sheared, bent and
    thickened as ``data.augment`` does digits, so that no two batches show the same glyph the same way."""
    bank = _bank(device)
    chosen = bank[torch.randint(len(bank), (count,), generator=generator, device=device)]
    return augment(chosen, generator)


@cache
def _bank(device: torch.device) -> torch.Tensor:
    return letters().to(device)
