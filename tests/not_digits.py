"""A seeded set of letters and symbols written like digits, and of digits cropped tight: is it a digit at all?

Letters are what people most often bring that is no digit, and the hardest are shaped
like one: B and 8, S and 5, Z and 2, G and b and 6, q and g and 9, O and 0, I and l and 1.
Each is drawn from a font file pinned in fonts.py or shipped with matplotlib (never the
Hershey and Pillow fonts the default model's training letters come from), thickened to a
pen's stroke, rotated and sheared as a hand writes, then put on the Draw page's canvas,
cropped tight, or photographed (photo_digits' paper, light and camera). Tight crops of
digits are photo_digits' pen-drawn digits with the ink touching the image's edges, as
people crop a scan.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from fonts import DEJAVU, FREEFONT, LIBERATION, font
from photo_digits import STYLES, Sample, _on_page, _photograph, _write
from PIL import Image, ImageDraw, ImageFont

# Letters shaped like digits first, then letters and symbols of every other shape.
LIKE_DIGITS = "BRSZOIlGqgb"
OTHERS = "ACDEFHJKLMNPQTUVWXYadefhkmnprtuvwxyz#$%&@?*+=<>"
MATPLOTLIB = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT_FILES = (
    f"{DEJAVU}/DejaVuSans.ttf",
    f"{DEJAVU}/DejaVuSans-Bold.ttf",
    f"{DEJAVU}/DejaVuSans-Oblique.ttf",
    f"{DEJAVU}/DejaVuSerif.ttf",
    f"{LIBERATION}/LiberationSans-Regular.ttf",
    f"{LIBERATION}/LiberationSerif-Regular.ttf",
    f"{LIBERATION}/LiberationSansNarrow-Regular.ttf",
    f"{FREEFONT}/FreeSans.ttf",
    f"{FREEFONT}/FreeSerif.ttf",
    f"{FREEFONT}/FreeSerifItalic.ttf",
)
MATPLOTLIB_FILES = ("cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf", "STIXGeneral.ttf", "STIXGeneralItalic.ttf")


def _fonts() -> list[ImageFont.FreeTypeFont]:
    shipped = [ImageFont.truetype(MATPLOTLIB / name, 160) for name in MATPLOTLIB_FILES]
    return [font(path, 160) for path in FONT_FILES] + shipped


def _written(text: str, rng: np.random.Generator, fonts: list[ImageFont.FreeTypeFont]) -> Image.Image:
    """One character as ink coverage (L, 255 = ink), a pen's width thick, slanted and turned a little."""
    glyph = Image.new("L", (700, 500), 0)
    chosen = fonts[int(rng.integers(len(fonts)))]
    ImageDraw.Draw(glyph).text((200, 100), text, fill=255, font=chosen, stroke_width=int(rng.integers(2, 12)))
    shear = rng.uniform(-0.3, 0.3)
    glyph = glyph.transform(glyph.size, Image.Transform.AFFINE, (1, shear, -shear * 250, 0, 1, 0), Image.BICUBIC)
    glyph = glyph.rotate(rng.uniform(-12, 12), Image.Resampling.BICUBIC)
    return glyph.crop(glyph.getbbox())


def _canvas(glyph: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Black ink on the Draw page's white 320x320 canvas, anywhere on it."""
    glyph = glyph.copy()
    glyph.thumbnail((int(rng.integers(120, 300)),) * 2)
    canvas = Image.new("RGBA", (320, 320), (255, 255, 255, 255))
    left, top = rng.integers(0, 320 - glyph.width + 1), rng.integers(0, 320 - glyph.height + 1)
    canvas.paste((0, 0, 0, 255), (int(left), int(top)), glyph)
    return canvas


def _tight(glyph: Image.Image) -> Image.Image:
    """Dark ink on white, cropped to the ink: it touches every edge."""
    return Image.eval(glyph, lambda v: 255 - v).convert("RGB")


def _photo(glyph: Image.Image, rng: np.random.Generator) -> Image.Image:
    ink = str(rng.choice(["ballpoint blue", "ballpoint black", "felt pen", "pencil"]))
    size = (int(rng.integers(600, 900)), int(rng.integers(600, 900)))
    scale = rng.uniform(0.3, 0.5) * min(size) / glyph.height
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))))
    return _photograph(_on_page([glyph], rng, size, 0), rng, ink, rng.uniform(0.5, 2))


def letters(count: int = 100, seed: int = 10) -> list[Sample]:
    """Letters and symbols, a third of them shaped like digits, each on a canvas, cropped tight or photographed."""
    rng, fonts = np.random.default_rng(seed), _fonts()
    samples = []
    for i in range(count):
        pool = LIKE_DIGITS if i % 3 == 0 else OTHERS
        name = pool[int(rng.integers(len(pool)))]
        glyph = _written(name, rng, fonts)
        how = i % 4
        image = _canvas(glyph, rng) if how < 2 else _tight(glyph) if how == 2 else _photo(glyph, rng)
        samples.append(Sample(image, name, "not a digit"))
    return samples


def tight_digits(count: int = 100, seed: int = 11) -> list[Sample]:
    """Pen-drawn digits 0-9 in turn, dark on white or MNIST's white on black, cropped so the ink touches the edges."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        styles = STYLES[i % 10]
        height = rng.uniform(60, 300)
        glyph = _write(styles[int(rng.integers(len(styles)))], height, rng.uniform(0.06, 0.14) * height, rng)
        image = _tight(glyph) if i % 2 else glyph.convert("RGB")
        samples.append(Sample(image, str(i % 10), "tight crop"))
    return samples
