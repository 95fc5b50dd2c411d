"""A seeded set of what people really bring: phone photos of digits, photos of whole numbers, and non-digits.

Made by a different recipe than custom_digits.py, so neither set is tuned to the other:
digits are written with a pen model (smoothed, shaky paths whose width follows the pen's
pressure) in the shapes much of the world writes (a "1" with a long flag, an open "4",
a crossed "7"), then photographed: paper that is plain, ruled (light blue lines, a red
margin) or squared; blue or black ballpoint, felt pen or grey pencil; uneven light, a
shadow with a soft or sharp edge, the desk or a dark corner at the border, slight
perspective, sensor noise and JPEG, from under 1 to 12 megapixels. Non-digits are font
letters and symbols, and drawn smileys, stars, spirals and scribbles.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from fonts import DEJAVU, FREEFONT, LIBERATION, font
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Stroke = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> Stroke:
    """Points along an ellipse, angles in degrees, clockwise on screen (0 = right, 90 = down)."""
    angles = np.radians(np.linspace(start, end, max(6, int(abs(end - start) / 12))))
    return list(zip((cx + rx * np.cos(angles)).tolist(), (cy + ry * np.sin(angles)).tolist()))


# Several ways to write each digit, as pen strokes in a box 0..1 high (x right, y down).
STYLES: dict[int, list[list[Stroke]]] = {
    0: [[_arc(0.35, 0.5, 0.33, 0.5, -100, 265)], [_arc(0.3, 0.5, 0.26, 0.5, 250, 615)]],
    1: [
        [[(0.42, 0.0), (0.42, 1.0)]],
        [[(0.05, 0.3), (0.42, 0.0), (0.42, 1.0)]],  # the long flag, read as 7 by models that only saw MNIST
        [[(0.15, 0.22), (0.42, 0.0), (0.42, 1.0)], [(0.15, 1.0), (0.7, 1.0)]],
    ],
    2: [[[*_arc(0.35, 0.28, 0.3, 0.28, 200, 380), (0.64, 0.35), (0.02, 1.0), (0.72, 0.98)]]],
    3: [
        [_arc(0.35, 0.26, 0.3, 0.26, 210, 450), _arc(0.35, 0.74, 0.33, 0.26, 270, 510)],
        [[(0.05, 0.02), (0.62, 0.02), (0.25, 0.42), *_arc(0.33, 0.7, 0.32, 0.3, 270, 510)]],
    ],
    4: [
        [[(0.45, 0.0), (0.04, 0.64), (0.78, 0.64)], [(0.6, 0.25), (0.6, 1.0)]],  # open at the top
        [[(0.58, 1.0), (0.58, 0.0), (0.02, 0.66), (0.8, 0.66)]],
        [[(0.08, 0.0), (0.05, 0.55), (0.75, 0.55)], [(0.62, 0.0), (0.62, 1.0)]],  # open, written as two strokes
    ],
    5: [[[(0.2, 0.02), (0.15, 0.45), *_arc(0.38, 0.7, 0.3, 0.28, 235, 500)], [(0.2, 0.02), (0.7, 0.0)]]],
    6: [[[(0.6, 0.0), (0.25, 0.4), *_arc(0.38, 0.72, 0.3, 0.27, 190, 540)]]],
    7: [
        [[(0.0, 0.02), (0.72, 0.0), (0.3, 1.0)]],
        [[(0.0, 0.02), (0.72, 0.0), (0.3, 1.0)], [(0.18, 0.52), (0.66, 0.5)]],  # crossed
    ],
    8: [
        [
            [
                *_arc(0.35, 0.26, 0.25, 0.26, 0, 180),
                *_arc(0.35, 0.74, 0.3, 0.26, 180, -180),
                *_arc(0.35, 0.26, 0.25, 0.26, 180, 360),
            ]
        ]
    ],
    9: [
        [[*_arc(0.35, 0.28, 0.3, 0.28, 0, 360), (0.65, 0.3), (0.6, 1.0)]],
        [[*_arc(0.35, 0.28, 0.3, 0.28, 20, 380), (0.65, 0.35), (0.45, 1.0)]],
    ],
}

# Not digits: symbols drawn by hand, in the same box.
SHAPES: dict[str, list[Stroke]] = {
    "smiley": [
        _arc(0.5, 0.5, 0.5, 0.5, 0, 360),
        _arc(0.33, 0.35, 0.05, 0.06, 0, 360),
        _arc(0.67, 0.35, 0.05, 0.06, 0, 360),
        _arc(0.5, 0.55, 0.28, 0.22, 20, 160),
    ],
    "star": [[(0.5, 0.0), (0.2, 1.0), (1.0, 0.35), (0.0, 0.35), (0.8, 1.0), (0.5, 0.0)]],
    "hash": [
        [(0.35, 0.0), (0.25, 1.0)],
        [(0.75, 0.0), (0.65, 1.0)],
        [(0.0, 0.33), (1.0, 0.33)],
        [(0.0, 0.67), (1.0, 0.67)],
    ],
    "heart": [[(0.5, 1.0), *_arc(0.27, 0.3, 0.25, 0.25, 135, 360), *_arc(0.73, 0.3, 0.25, 0.25, 180, 405), (0.5, 1.0)]],
    "arrow": [[(0.0, 0.5), (1.0, 0.5)], [(0.7, 0.2), (1.0, 0.5), (0.7, 0.8)]],
    "cross-box": [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "triangle": [[(0.5, 0.0), (1.0, 0.9), (0.0, 0.9), (0.5, 0.0)]],
    "spiral": [
        [
            (0.5 + r * np.cos(a) / 2, 0.5 + r * np.sin(a) / 2)
            for a, r in zip(np.linspace(0, 18, 60), np.linspace(0.05, 1, 60))
        ]
    ],
    "flower": [
        _arc(0.5 + 0.28 * np.cos(a), 0.5 + 0.28 * np.sin(a), 0.2, 0.2, 0, 360)
        for a in np.linspace(0, 2 * np.pi, 6)[:-1]
    ],
}
# Letters and symbols from fonts that no reader would take for a digit (no O, I, l, S, Z, B, G, T, g, q, b).
LETTERS = "AEFHKMNRWXYaehkmnrwx#@%&"
FONT_FILES = (
    f"{DEJAVU}/DejaVuSans.ttf",
    f"{LIBERATION}/LiberationSerif-Regular.ttf",
    f"{FREEFONT}/FreeSans.ttf",
    f"{DEJAVU}/DejaVuSerif-Bold.ttf",
    f"{FREEFONT}/FreeSerifItalic.ttf",
)
INKS = {  # RGB of the ink, how wide its line is relative to the digit's height, and whether it is grainy like graphite
    "ballpoint blue": ((30, 45, 150), (0.03, 0.06), False),
    "ballpoint black": ((25, 25, 35), (0.03, 0.06), False),
    "felt pen": ((15, 15, 20), (0.07, 0.13), False),
    "pencil": ((95, 95, 100), (0.03, 0.06), True),
}


@dataclass
class Sample:
    image: Image.Image
    label: str  # "7", "2026", or the name of a non-digit
    kind: str  # "photo <ink>", "canvas", "number", "not a digit"


@lru_cache(maxsize=1)
def _fonts() -> tuple[ImageFont.FreeTypeFont, ...]:
    return tuple(font(path, 160) for path in FONT_FILES)


def _pen_path(stroke: Stroke, rng: np.random.Generator, shake: float) -> np.ndarray:
    """A stroke as a dense, slightly shaky path: control points wobble, then the path is densified and smoothed."""
    points = np.array(stroke, dtype=np.float64) + rng.normal(0, 0.02, (len(stroke), 2))
    steps = [
        np.linspace(a, b, max(2, int(np.hypot(*(b - a)) * 60)), endpoint=False) for a, b in itertools.pairwise(points)
    ]
    dense = np.concatenate([*steps, points[-1:]])
    dense += np.cumsum(rng.normal(0, shake, dense.shape), axis=0) * 0.2  # a hand's tremor drifts a little
    kernel = np.ones(3) / 3
    if len(dense) > 3:
        dense[1:-1] = np.stack([np.convolve(dense[:, i], kernel, mode="same")[1:-1] for i in range(2)], axis=1)
    return dense


def _write(
    strokes: list[Stroke], height: float, width: float, rng: np.random.Generator, shake: float = 0.003
) -> Image.Image:
    """Ink coverage (mode L, 255 = ink) of strokes written ``height`` pixels tall with a pen ``width`` pixels wide."""
    slant, squeeze = rng.uniform(-0.25, 0.2), rng.uniform(0.8, 1.15)
    margin = width + 4
    image = Image.new("L", (int(height * 1.6 + 2 * margin), int(height + 2 * margin)), 0)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        path = _pen_path(stroke, rng, shake)
        x = (path[:, 0] * squeeze - slant * (path[:, 1] - 0.5)) * height + margin + 0.3 * height
        y = path[:, 1] * height + margin
        pressure = width * rng.uniform(0.8, 1.1) * (1 + 0.2 * np.sin(np.linspace(0, np.pi * rng.uniform(1, 3), len(x))))
        for i in range(len(x) - 1):
            w = max(1.0, pressure[i])
            draw.line([(x[i], y[i]), (x[i + 1], y[i + 1])], fill=255, width=round(w))
            draw.ellipse((x[i] - w / 2, y[i] - w / 2, x[i] + w / 2, y[i] + w / 2), fill=255)
    angle = rng.uniform(-8, 8)
    image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    return image.crop(image.getbbox())


def _letter(text: str, height: float, rng: np.random.Generator) -> Image.Image:
    fonts = _fonts()
    font = fonts[int(rng.integers(len(fonts)))]
    glyph = Image.new("L", (600, 400), 0)
    ImageDraw.Draw(glyph).text(
        (100, 50), text, fill=255, font=font, stroke_width=int(rng.integers(0, 4)), stroke_fill=255
    )
    glyph = glyph.crop(glyph.getbbox())
    scale = height / glyph.height
    return glyph.resize((max(1, round(glyph.width * scale)), max(1, round(height))), Image.Resampling.LANCZOS)


def _paper(size: tuple[int, int], rng: np.random.Generator, kind: str) -> np.ndarray:
    """RGB paper, float 0..255: plain, ruled (blue lines, red margin) or squared."""
    width, height = size
    tint = np.array([rng.uniform(235, 252), rng.uniform(232, 250), rng.uniform(222, 245)])
    image = Image.new("RGB", size, tuple(int(v) for v in tint))
    draw = ImageDraw.Draw(image)
    line = max(1, round(min(size) / 400))
    if kind == "ruled":
        spacing = rng.uniform(0.06, 0.1) * height
        blue = (int(rng.uniform(140, 180)), int(rng.uniform(175, 205)), int(rng.uniform(225, 245)))
        for y in np.arange(rng.uniform(0, spacing), height, spacing):
            draw.line([(0, y), (width, y)], fill=blue, width=line)
        margin = rng.uniform(0.05, 0.15) * width
        draw.line([(margin, 0), (margin, height)], fill=(225, 95, 100), width=line + 1)
    elif kind == "squared":
        spacing = rng.uniform(0.03, 0.05) * min(size)
        colour = (int(rng.uniform(150, 190)), int(rng.uniform(185, 210)), int(rng.uniform(215, 240)))
        for y in np.arange(rng.uniform(0, spacing), height, spacing):
            draw.line([(0, y), (width, y)], fill=colour, width=line)
        for x in np.arange(rng.uniform(0, spacing), width, spacing):
            draw.line([(x, 0), (x, height)], fill=colour, width=line)
    return np.asarray(image, dtype=np.float32)


def _photograph(
    coverage: Image.Image, rng: np.random.Generator, ink: str, megapixels: float, softness: float | None = None
) -> Image.Image:
    """Put ink on paper and take a phone photo of it; with ``softness``, always under a shadow whose edge is
    that soft (a share of the picture), across the page's middle third."""
    colour, _, grainy = INKS[ink]
    height, width = coverage.height, coverage.width
    paper = _paper((width, height), rng, str(rng.choice(["plain", "ruled", "squared"])))
    # float32 throughout, with the same random draws as float64: about 12% less time for the same picture.
    alpha = np.asarray(coverage, dtype=np.float32)[:, :, None] / 255
    if grainy:
        alpha = alpha * rng.uniform(0.55, 1.0, alpha.shape).astype(np.float32)
    scene = paper * (1 - alpha) + np.array(colour, dtype=np.float32) * alpha

    # A column and a row, broadcast: the same values as a full grid, without building two.
    y = np.mgrid[0 : 1 : height * 1j].astype(np.float32)[:, None]
    x = np.mgrid[0 : 1 : width * 1j].astype(np.float32)[None, :]
    light = 1 + rng.uniform(-0.25, 0.25) * (x - 0.5) + rng.uniform(-0.25, 0.25) * (y - 0.5)
    light -= rng.uniform(0, 0.35) * ((x - 0.5) ** 2 + (y - 0.5) ** 2)  # dark corners
    if softness is not None:
        angle, offset = rng.uniform(0, 2 * np.pi), rng.uniform(-0.17, 0.17)
        side = (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle) - offset
        light *= 1 - rng.uniform(0.3, 0.55) / (1 + np.exp(-side / softness))
    elif rng.random() < 0.7:  # a hand's or the phone's shadow: a half-plane, soft or fairly sharp at its edge
        angle = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(0.15, 0.45) * rng.choice([-1, 1])
        side = (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle) - offset
        softness = rng.uniform(0.003, 0.06)
        light *= 1 - rng.uniform(0.25, 0.5) / (1 + np.exp(-side / softness))
    scene = scene * light[:, :, None]
    if rng.random() < 0.5:  # the desk beyond the page's edge, along one side
        band = int(rng.uniform(0.04, 0.12) * (width if rng.random() < 0.5 else height))
        desk = np.array([rng.uniform(40, 120), rng.uniform(30, 90), rng.uniform(20, 70)])
        edge = int(rng.integers(4))
        if edge == 0:
            scene[:, :band] = desk
        elif edge == 1:
            scene[:, -band:] = desk
        elif edge == 2:
            scene[:band] = desk
        else:
            scene[-band:] = desk
    noise = rng.normal(0, rng.uniform(2, 7), scene.shape).astype(np.float32)
    image = Image.fromarray(np.clip(scene + noise, 0, 255).astype(np.uint8))

    d = 0.04 * min(width, height)  # slight perspective: each corner (UL, LL, LR, UR, as QUAD wants) moves a little
    corners = np.array([[0, 0], [0, height], [width, height], [width, 0]]) + rng.uniform(-d, d, (4, 2))
    image = image.transform(
        image.size, Image.Transform.QUAD, corners.flatten().tolist(), Image.Resampling.BICUBIC, fillcolor=(60, 50, 40)
    )
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    scale = np.sqrt(megapixels * 1e6 / (width * height))
    if scale > 1.05:
        image = image.resize((round(width * scale), round(height * scale)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(60, 93)))
    return Image.open(io.BytesIO(buffer.getvalue()))


def _on_page(glyphs: list[Image.Image], rng: np.random.Generator, size: tuple[int, int], gap: float) -> Image.Image:
    """Glyphs side by side (``gap`` in glyph heights), as ink coverage on a page of ``size`` pixels."""
    page = Image.new("L", size, 0)
    height = max(g.height for g in glyphs)
    total = sum(g.width for g in glyphs) + gap * height * (len(glyphs) - 1)
    left = rng.uniform(0.15, 0.85) * (size[0] - total) + 0
    top = rng.uniform(0.25, 0.75) * (size[1] - height)
    for glyph in glyphs:
        page.paste(255, (round(left), round(top + rng.uniform(-0.06, 0.06) * height + height - glyph.height)), glyph)
        left += glyph.width + gap * height * rng.uniform(0.7, 1.3)
    return page


def _digit_glyph(
    label: int, height: float, width: float, rng: np.random.Generator, style: int | None = None
) -> Image.Image:
    styles = STYLES[label]
    return _write(styles[int(rng.integers(len(styles))) if style is None else style], height, width, rng)


def photos(count: int = 100, seed: int = 0) -> list[Sample]:
    """Phone photos of one digit, digits 0-9 in turn; every tenth or so is 8-12 megapixels."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        ink = str(rng.choice(list(INKS)))
        size = (int(rng.integers(700, 1100)), int(rng.integers(700, 1100)))
        height = rng.uniform(0.25, 0.5) * min(size)
        glyph = _digit_glyph(i % 10, height, rng.uniform(*INKS[ink][1]) * height, rng)
        megapixels = rng.uniform(8, 12) if i % 10 == 3 else rng.uniform(0.5, 3)
        samples.append(
            Sample(_photograph(_on_page([glyph], rng, size, 0), rng, ink, megapixels), str(i % 10), f"photo {ink}")
        )
    return samples


def canvases(count: int = 100, seed: int = 1) -> list[Sample]:
    """The Draw page's canvas: black strokes on white 320x320 RGBA, pen 6-40 px, small or off-centre, shaky."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        pen = float(rng.uniform(6, 40))
        height = rng.uniform(max(90, 3.5 * pen), 280)
        glyph = _write(STYLES[i % 10][int(rng.integers(len(STYLES[i % 10])))], height, pen, rng, shake=0.006)
        glyph.thumbnail((300, 300))
        canvas = Image.new("RGBA", (320, 320), (255, 255, 255, 255))
        left, top = rng.integers(0, 320 - glyph.width + 1), rng.integers(0, 320 - glyph.height + 1)
        canvas.paste((0, 0, 0, 255), (int(left), int(top)), glyph)
        samples.append(Sample(canvas, str(i % 10), "canvas"))
    return samples


def numbers(count: int = 40, seed: int = 2, gap: tuple[float, float] = (0.05, 0.35)) -> list[Sample]:
    """Photos of numbers of 2 to 6 digits written in a row; some digits nearly touch. ``gap`` is the space
    between digits in digit heights: (-0.2, 0) makes digits that touch or overlap by up to a third of a width."""
    rng = np.random.default_rng(seed)
    kind = "number" if gap[0] > 0 else "touching number"
    samples = []
    for _ in range(count):
        text = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(2, 7))))
        ink = str(rng.choice(list(INKS)))
        size = (int(rng.integers(1000, 1600)), int(rng.integers(600, 1000)))
        height = rng.uniform(0.5, 0.8) * min(size[1], size[0] / (0.9 * len(text) + 1))
        pen = rng.uniform(*INKS[ink][1]) * height
        glyphs = [_digit_glyph(int(d), height * rng.uniform(0.92, 1.05), pen, rng) for d in text]
        image = _photograph(_on_page(glyphs, rng, size, rng.uniform(*gap)), rng, ink, rng.uniform(1, 4))
        samples.append(Sample(image, text, kind))
    return samples


def non_digits(count: int = 60, seed: int = 3) -> list[Sample]:
    """Letters and symbols from fonts, drawn shapes and scribbles, on the canvas or photographed."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        height = float(rng.uniform(150, 260))
        if i % 3 == 0:
            name = LETTERS[int(rng.integers(len(LETTERS)))]
            glyph = _letter(name, height, rng)
        elif i % 3 == 1:
            name = list(SHAPES)[int(rng.integers(len(SHAPES)))]
            glyph = _write(SHAPES[name], height, rng.uniform(0.04, 0.09) * height, rng)
        else:
            name = "scribble"
            walk = np.cumsum(rng.normal(0, 0.25, (int(rng.integers(8, 16)), 2)), axis=0)
            walk = (walk - walk.min(axis=0)) / np.ptp(walk, axis=0).max()
            glyph = _write([[tuple(p) for p in walk]], height, rng.uniform(0.03, 0.08) * height, rng)
        if rng.random() < 0.5:
            glyph.thumbnail((300, 300))
            canvas = Image.new("RGBA", (320, 320), (255, 255, 255, 255))
            canvas.paste((0, 0, 0, 255), ((320 - glyph.width) // 2, (320 - glyph.height) // 2), glyph)
            image = canvas
        else:
            ink = str(rng.choice(["ballpoint blue", "ballpoint black", "felt pen"]))
            size = (int(rng.integers(600, 900)), int(rng.integers(600, 900)))
            scale = rng.uniform(0.3, 0.5) * min(size) / glyph.height
            glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))))
            image = _photograph(_on_page([glyph], rng, size, 0), rng, ink, rng.uniform(0.5, 2))
        samples.append(Sample(image, name, "not a digit"))
    return samples


def smiley() -> Image.Image:
    """One plain smiley drawn in black on white, the same every time: a picture that is clearly no digit."""
    picture = Image.new("L", (200, 200), 255)
    pen = ImageDraw.Draw(picture)
    pen.ellipse((20, 20, 180, 180), outline=0, width=10)
    pen.ellipse((65, 65, 85, 85), fill=0)
    pen.ellipse((115, 65, 135, 85), fill=0)
    pen.arc((60, 90, 140, 150), 20, 160, fill=0, width=10)
    return picture


def _scan(coverage: np.ndarray, rng: np.random.Generator, light_on_dark: bool) -> Image.Image:
    """Ink coverage (0..1) as a flat grayscale scan: paper and ink levels, a little blur, noise and maybe JPEG."""
    paper, ink = rng.uniform(170, 255), rng.uniform(0, 90)
    if light_on_dark:
        paper, ink = rng.uniform(0, 60), rng.uniform(170, 255)
    gray = paper + (ink - paper) * coverage + rng.normal(0, rng.uniform(0, 5), coverage.shape)
    image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8))
    if rng.random() < 0.4 and min(image.size) >= 16:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=int(rng.integers(70, 95)))
        return Image.open(io.BytesIO(buffer.getvalue()))
    return image


def tight_crops(count: int = 100, seed: int = 4) -> list[Sample]:
    """Digits cropped close, as scans are cropped and as digit collections store them.

    In turn: dark on light cropped to the ink (sometimes a pixel or two into it), 16-400
    pixels high, light on dark likewise, and MNIST's own format, white ink on black fitted
    to 20x20 in 28x28, or 28 pixels high edge to edge. A flat scan, where photos() has
    uneven light: a different recipe, developed on seeds 10-13, asserted on others.
    """
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        label, kind = i % 10, ("dark on light", "light on dark", "28x28")[(i // 10) % 3]
        height = float(rng.uniform(60, 300))
        glyph = _digit_glyph(label, height, rng.uniform(0.05, 0.14) * height, rng)
        if kind == "28x28":
            if rng.random() < 0.5:  # as MNIST made it: the longer side 20 pixels, centred in 28x28
                glyph.thumbnail((20, 20), Image.Resampling.LANCZOS)
                frame = Image.new("L", (28, 28), 0)
                frame.paste(glyph, ((28 - glyph.width) // 2, (28 - glyph.height) // 2))
                glyph = frame
            else:
                glyph.thumbnail((28, 28), Image.Resampling.LANCZOS)
            samples.append(Sample(glyph, str(label), "tight 28x28"))
            continue
        cut = int(rng.integers(0, 3)) if rng.random() < 0.3 else 0  # a crop one or two pixels into the ink
        glyph = glyph.crop((cut, cut, glyph.width - cut, glyph.height - cut))
        target = float(rng.uniform(16, 400)) / glyph.height
        glyph = glyph.resize((max(4, round(glyph.width * target)), max(4, round(glyph.height * target))))
        coverage = np.asarray(glyph, dtype=np.float32) / 255
        samples.append(Sample(_scan(coverage, rng, kind == "light on dark"), str(label), f"tight {kind}"))
    return samples


def pages(
    count: int = 40, seed: int = 5, lines: tuple[int, int] = (1, 5), digits: tuple[int, int] = (2, 8)
) -> list[Sample]:
    """Photos of lines of numbers, one under another (a list, a date under a phone number); the label is the
    lines joined by a space, top to bottom. With ``digits`` (10, 16), long numbers on one line."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        texts = [
            "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(digits[0], digits[1] + 1))))
            for _ in range(int(rng.integers(lines[0], lines[1] + 1)))
        ]
        ink = str(rng.choice(list(INKS)))
        longest = max(len(t) for t in texts)
        height = float(rng.uniform(45, 80))
        pen = rng.uniform(*INKS[ink][1]) * height
        spacing = height * rng.uniform(1.5, 2.2)
        size = (int(longest * height * rng.uniform(1.3, 1.5) + 2 * height), int(len(texts) * spacing + 1.5 * height))
        page = Image.new("L", size, 0)
        for row, text in enumerate(texts):
            glyphs = [_digit_glyph(int(d), height * rng.uniform(0.92, 1.05), pen, rng) for d in text]
            line = _on_page(glyphs, rng, (size[0], round(spacing)), rng.uniform(0.08, 0.3))
            page.paste(255, (int(rng.uniform(-0.05, 0.05) * height), round(0.5 * height + row * spacing)), line)
        image = _photograph(page, rng, ink, 0)  # as written: a phone's megapixels would only cost time here
        samples.append(Sample(image, " ".join(texts), "page" if len(texts) > 1 else "number"))
    return samples


def shadowed(count: int = 60, seed: int = 6) -> list[Sample]:
    """Photos of one digit under a shadow whose edge crosses the page's middle, from sharp (a thousandth of the
    picture) to very soft (a fifth), often across the digit itself; thin ballpoint and faint pencil included."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        ink = str(rng.choice(list(INKS)))
        size = (int(rng.integers(600, 900)), int(rng.integers(600, 900)))
        height = rng.uniform(0.25, 0.45) * min(size)
        glyph = _digit_glyph(i % 10, height, rng.uniform(*INKS[ink][1]) * height, rng)
        softness = float(np.exp(rng.uniform(np.log(0.001), np.log(0.2))))
        image = _photograph(_on_page([glyph], rng, size, 0), rng, ink, 0, softness)
        samples.append(Sample(image, str(i % 10), f"shadow {ink}"))
    return samples
