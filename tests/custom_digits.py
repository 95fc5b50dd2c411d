"""A seeded set of digits that look nothing like MNIST, to test that preprocessing reads what users bring.

MNIST's own test set only says how well the model reads MNIST. Users bring canvas
drawings and photos of paper, so this set varies everything preprocessing has to undo:
font glyphs and pen strokes (polyline skeletons of each digit), size, position, pen
thickness, a small rotation and slant, both polarities, transparent canvases, uneven
light, noise and blur. The same seed gives the same images on every machine: the fonts
are named file by file (``fonts.py``), with Pillow's own font, which ships with Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from fonts import DEJAVU, FREEFONT, LIBERATION, font
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Plain fonts whose digits are shaped like handwritten ones (no slashed zeros, no monospace).
FONT_FILES = (
    f"{DEJAVU}/DejaVuSans.ttf",
    f"{DEJAVU}/DejaVuSans-Bold.ttf",
    f"{DEJAVU}/DejaVuSans-Oblique.ttf",
    f"{DEJAVU}/DejaVuSerif.ttf",
    f"{LIBERATION}/LiberationSans-Regular.ttf",
    f"{LIBERATION}/LiberationSans-Bold.ttf",
    f"{LIBERATION}/LiberationSerif-Regular.ttf",
    f"{LIBERATION}/LiberationSansNarrow-Regular.ttf",
    f"{FREEFONT}/FreeSans.ttf",
    f"{FREEFONT}/FreeSerif.ttf",
)
GLYPH_SIZE = 200  # glyphs are drawn this tall, then shrunk, so their edges come out anti-aliased


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> list[tuple[float, float]]:
    """Points along an ellipse, angles in degrees, clockwise on screen (0 = right, 90 = down)."""
    angles = np.radians(np.linspace(start, end, max(8, int(abs(end - start) / 10))))
    return list(zip(cx + rx * np.cos(angles), cy + ry * np.sin(angles)))


# Each digit as pen strokes in a box 0..1 high (x right, y down), the way people write them.
SKELETONS: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0.4, 0.5, 0.35, 0.5, 0, 360)],
    1: [[(0.25, 0.15), (0.45, 0.0), (0.45, 1.0)]],
    2: [[*_arc(0.4, 0.3, 0.33, 0.3, 190, 400), (0.05, 1.0), (0.8, 1.0)]],
    3: [_arc(0.4, 0.25, 0.3, 0.25, 200, 450), _arc(0.4, 0.75, 0.35, 0.25, 270, 520)],
    4: [[(0.6, 1.0), (0.6, 0.0), (0.0, 0.68), (0.8, 0.68)]],
    5: [[(0.75, 0.0), (0.2, 0.0), (0.17, 0.45), *_arc(0.42, 0.7, 0.33, 0.3, 240, 510)]],
    6: [_arc(0.75, 0.65, 0.6, 0.65, 255, 180) + _arc(0.45, 0.72, 0.3, 0.28, 180, 540)],
    7: [[(0.0, 0.0), (0.8, 0.0), (0.3, 1.0)]],
    8: [_arc(0.4, 0.25, 0.27, 0.25, 90, 450), _arc(0.4, 0.73, 0.33, 0.27, -90, 270)],
    9: [_arc(0.4, 0.3, 0.32, 0.3, 0, 360), [(0.72, 0.3), (0.62, 1.0)]],
}


@dataclass
class Sample:
    image: Image.Image
    label: int
    kind: str  # "<font|pen> <canvas|transparent|photo>", for per-kind accuracy


@lru_cache(maxsize=1)
def fonts() -> tuple[ImageFont.FreeTypeFont, ...]:
    return (*(font(path, GLYPH_SIZE) for path in FONT_FILES), ImageFont.load_default(size=GLYPH_SIZE))


def _crop(glyph: Image.Image) -> Image.Image:
    return glyph.crop(glyph.getbbox())


def _font_glyph(label: int, font: ImageFont.FreeTypeFont, bold: int) -> Image.Image:
    glyph = Image.new("L", (3 * GLYPH_SIZE, 3 * GLYPH_SIZE), 0)
    ImageDraw.Draw(glyph).text(
        (GLYPH_SIZE, GLYPH_SIZE // 2), str(label), fill=255, font=font, stroke_width=bold, stroke_fill=255
    )
    return _crop(glyph)


def _draw_strokes(image: Image.Image, strokes: list[np.ndarray], pen: int, fill: int) -> None:
    draw = ImageDraw.Draw(image)
    for points in strokes:
        draw.line([tuple(p) for p in points], fill=fill, width=pen, joint="curve")
        for x, y in (points[0], points[-1]):  # round pen ends
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=fill)


def draw_digit(
    label: int,
    size: tuple[int, int] = (280, 280),
    top_left: tuple[int, int] = (90, 60),
    height: int = 160,
    pen: int = 20,
    ink: int = 255,
    paper: int = 0,
) -> Image.Image:
    """One clean digit drawn from its skeleton on a plain background: a known input for tests."""
    image = Image.new("L", size, paper)
    _draw_strokes(image, [np.array(top_left) + height * np.array(s) for s in SKELETONS[label]], pen, ink)
    return image


def _pen_glyph(label: int, rng: np.random.Generator, width: float) -> Image.Image:
    """A hand-drawn version of the skeleton: every point wobbles, the whole digit is slanted and squeezed."""
    slant, squeeze = rng.uniform(-0.3, 0.3), rng.uniform(0.6, 1.1)
    strokes = []
    for stroke in SKELETONS[label]:
        points = np.array(stroke) + rng.normal(0, 0.025, (len(stroke), 2))
        x = points[:, 0] * squeeze - slant * (points[:, 1] - 0.5)
        strokes.append(GLYPH_SIZE * (1 + np.stack([x, points[:, 1]], axis=1)))
    glyph = Image.new("L", (3 * GLYPH_SIZE, 3 * GLYPH_SIZE), 0)
    _draw_strokes(glyph, strokes, max(1, round(width * GLYPH_SIZE)), 255)
    return _crop(glyph)


def _place(glyph: Image.Image, size: tuple[int, int], height: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate a little, scale to the given height and put anywhere it fits: ink coverage 0..1 of a scene."""
    glyph = _crop(glyph.rotate(rng.uniform(-12, 12), resample=Image.Resampling.BICUBIC, expand=True))
    scale = height / glyph.height
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(height))), Image.Resampling.LANCZOS)
    width, rows = size
    ink = np.zeros((rows, width))
    left = int(rng.integers(0, max(1, width - glyph.width)))
    top = int(rng.integers(0, max(1, rows - glyph.height)))
    patch = np.asarray(glyph, dtype=np.float64)[: rows - top, : width - left] / 255
    ink[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return ink


def _canvas(ink: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A drawing app's canvas: white on black or black on white, exact colours."""
    light = rng.random() < 0.6
    pixels = np.rint(255 * (ink if light else 1 - ink)).astype(np.uint8)
    return Image.fromarray(pixels).convert("RGB" if rng.random() < 0.5 else "L")


def _transparent(ink: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A canvas that exports strokes on transparency; their colour is anyone's choice."""
    colour = [(255, 255, 255), (0, 0, 0), (30, 60, 200)][int(rng.integers(3))]
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
    rgba[ink > 0, :3] = colour
    rgba[:, :, 3] = np.rint(255 * ink)
    return Image.fromarray(rgba)


def _photo(ink: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Paper (or a chalkboard) under uneven light, with sensor noise, slight blur and a colour cast."""
    rows, cols = ink.shape
    dark_ink = rng.random() < 0.75
    paper = rng.uniform(170, 240) if dark_ink else rng.uniform(20, 70)
    pen = paper - rng.uniform(100, 160) if dark_ink else paper + rng.uniform(100, 170)
    y, x = np.mgrid[0 : 1 : rows * 1j, 0 : 1 : cols * 1j]
    light = (
        1
        + rng.uniform(-0.2, 0.2) * (x - 0.5)
        + rng.uniform(-0.2, 0.2) * (y - 0.5)
        - rng.uniform(0, 0.25) * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    )
    gray = (paper * (1 - ink) + pen * ink) * light + rng.normal(0, rng.uniform(2, 12), ink.shape)
    image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    cast = rng.uniform(0.85, 1.0, 3)
    return Image.fromarray(np.clip(np.asarray(image)[:, :, None] * cast, 0, 255).astype(np.uint8))


def custom_digits(count: int = 300, seed: int = 0) -> list[Sample]:
    """``count`` images, digits 0-9 in turn, half font glyphs and half pen strokes."""
    rng = np.random.default_rng(seed)
    available = fonts()
    samples = []
    for i in range(count):
        label = i % 10
        if rng.random() < 0.5:
            style = "font"
            glyph = _font_glyph(label, available[int(rng.integers(len(available)))], int(rng.integers(0, 12)))
        else:
            style = "pen"
            glyph = _pen_glyph(label, rng, rng.uniform(0.05, 0.22))
        scene = ("canvas", "transparent", "photo")[int(rng.integers(3))]
        if scene == "photo":
            size = (int(rng.integers(200, 900)), int(rng.integers(200, 900)))
            ink = _place(glyph, size, rng.uniform(0.15, 0.6) * min(size), rng)
            image = _photo(ink, rng)
        else:
            ink = _place(glyph, (280, 280), rng.uniform(0.2, 0.8) * 280, rng)
            image = _canvas(ink, rng) if scene == "canvas" else _transparent(ink, rng)
        samples.append(Sample(image, label, f"{style} {scene}"))
    return samples
