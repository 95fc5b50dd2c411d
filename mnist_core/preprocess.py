"""Turn any picture of a digit into the 28x28 tensor the model reads, the way MNIST made its own.

MNIST digits are light, anti-aliased strokes on black, scaled to fit a 20x20 box and
placed in 28x28 with their centre of mass at the centre. A model trained on them
misreads a digit that is dark on white, small, off-centre, on grey paper or drawn with
a much thinner or thicker pen, so every input is first brought to that form:

    decode -> grayscale -> ink (polarity, background, threshold, specks) -> crop
           -> MNIST's stroke width, fit 20x20 -> centre of mass at (14, 14) -> [-1, 1]

Every step is kept as an image, so the dashboard can show what the model sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from .data import normalize
from .images import ImageError, ImageSource, from_array, load_image

WORK_SIZE = 512  # the ink is found at most at this size: plenty for a 20x20 result, and fast
MIN_CONTRAST = 32.0  # of 255 levels: fainter marks are paper texture, shadows or noise
SPECK_FRACTION = 0.1  # pieces with less ink than this share of the biggest piece are dust
MAIN_PIECE = 0.3  # a digit's biggest piece holds at least this share of all ink; dust is many small pieces
MIN_DIGIT_SIZE = 0.04  # of the image's longer side: anything smaller is a speck, not a digit
MIN_ELONGATION = 2.5  # a digit is longer than 2.5 stroke widths; a dot or blot is not
STROKE_RANGE = (0.12, 0.18)  # MNIST's stroke width relative to its digit's longer side (middle half)
BOX = 20  # MNIST scales digits to fit 20x20 ...
SIZE = 28  # ... and centres them in 28x28


@dataclass
class Preprocessed:
    """The model input, and the images along the way for display.

    ``tensor`` is (1, 28, 28) float32 in [-1, 1], or None when no digit was found, so a
    blank canvas is reported as such instead of being given a confident guess.
    ``steps`` maps names to uint8 2-D images in pipeline order; the last, "28x28", is
    exactly what the model sees (ink white on black).
    """

    tensor: torch.Tensor | None
    steps: dict[str, np.ndarray]

    @property
    def found(self) -> bool:
        return self.tensor is not None


def _grayscale(image: Image.Image) -> np.ndarray:
    """Gray levels 0..255 as float32, with transparent pixels turned into background.

    A drawing on a transparent canvas carries its strokes in the alpha channel, whatever
    their colour, so transparency gets the shade opposite the opaque strokes; a picture
    that is mostly opaque gets the shade of its own background instead.
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = from_array(np.asarray(image))  # Pillow's own conversion clips 16-bit levels to white
    try:
        gray = np.asarray(image.convert("L"), dtype=np.float32)
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        alpha = np.asarray(image.convert("RGBA"), dtype=np.float32)[:, :, 3] / 255 if has_alpha else None
    except ValueError as exc:
        raise ImageError(f"images in mode {image.mode} are not supported") from exc
    if alpha is None:
        return gray
    opaque = alpha > 0.5
    if not opaque.any():
        return np.zeros_like(gray)
    shade = float(np.median(gray[opaque]))
    if opaque.mean() < 0.5:
        shade = 0.0 if shade > 127.5 else 255.0
    return gray * alpha + shade * (1 - alpha)


def _shrink(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    scale = WORK_SIZE / max(height, width)
    if scale >= 1:
        return gray
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX))


def _blur(a: np.ndarray) -> np.ndarray:
    """3x3 mean: enough to quiet sensor noise and paper grain without losing thin strokes."""
    p = np.pad(a, 1, mode="edge")
    rows = (p[:-2] + p[1:-1] + p[2:]) / 3
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 3


def _background(gray: np.ndarray) -> np.ndarray:
    """The local background level under light ink, so shadows and uneven light are not read as ink.

    Each of 8x8 blocks takes its 20th-percentile level (robust to ink covering most of
    it), then the darkest of its neighbours (robust to a thick stroke filling a block);
    the grid is interpolated smoothly back to full size.
    """
    height, width = gray.shape
    bh, bw = -(-height // 8), -(-width // 8)
    padded = np.pad(gray, ((0, 8 * bh - height), (0, 8 * bw - width)), mode="edge")
    blocks = padded.reshape(8, bh, 8, bw).transpose(0, 2, 1, 3).reshape(8, 8, -1)
    level = np.pad(np.percentile(blocks, 20, axis=-1), 1, mode="edge")
    level = np.min([level[i : i + 8, j : j + 8] for i in range(3) for j in range(3)], axis=0)
    return np.asarray(Image.fromarray(level.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR))


def _otsu(values: np.ndarray) -> float:
    """The level that best splits values (0..255) into two classes (Otsu, 1979)."""
    hist = np.bincount(np.clip(values, 0, 255).astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    weight = np.cumsum(hist)
    mass = np.cumsum(hist * np.arange(256))
    total_w, total_m = weight[-1], mass[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_m * weight - mass * total_w) ** 2 / (weight * (total_w - weight))
    return float(np.argmax(np.nan_to_num(between)))


def _pieces(mask: np.ndarray, ink: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The digit's pieces without the dust, the biggest piece alone (both as pixel masks) and
    the biggest piece's share of all the ink.

    Ink is grouped on a coarse grid, so a stroke with a small gap stays one piece; pieces
    with under SPECK_FRACTION of the biggest one's ink are dust.
    """
    cell = max(1, max(mask.shape) // 64)
    gh, gw = -(-mask.shape[0] // cell), -(-mask.shape[1] // cell)
    pad = ((0, gh * cell - mask.shape[0]), (0, gw * cell - mask.shape[1]))
    cell_ink = np.pad(ink * mask, pad).reshape(gh, cell, gw, cell).sum(axis=(1, 3))

    remaining = set(zip(*(axis.tolist() for axis in np.nonzero(cell_ink))))
    pieces = []
    while remaining:
        stack, piece = [remaining.pop()], []
        while stack:
            y, x = stack.pop()
            piece.append((y, x))
            for neighbour in ((y + dy, x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
                if neighbour in remaining:
                    remaining.remove(neighbour)
                    stack.append(neighbour)
        pieces.append(piece)

    masses = [sum(cell_ink[c] for c in piece) for piece in pieces]
    keep, biggest = np.zeros((gh, gw), dtype=bool), np.zeros((gh, gw), dtype=bool)
    for piece, piece_mass in zip(pieces, masses):
        if piece_mass >= SPECK_FRACTION * max(masses):
            keep[tuple(np.array(piece).T)] = True
    biggest[tuple(np.array(pieces[int(np.argmax(masses))]).T)] = True

    def to_pixels(cells: np.ndarray) -> np.ndarray:
        return np.kron(cells, np.ones((cell, cell), dtype=bool))[: mask.shape[0], : mask.shape[1]]

    return to_pixels(keep), to_pixels(biggest), max(masses) / sum(masses)


def _strokes(mask: np.ndarray) -> tuple[float, float]:
    """(mean width, total length) of the strokes in pixels: a stroke of width w and length L
    covers w*L pixels, 2*L of them on its edge."""
    p = np.pad(mask, 1)
    inner = mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    edge = np.count_nonzero(mask & ~inner)
    return (2 * np.count_nonzero(mask) / edge if edge else 0.0), edge / 2


def _is_digit(piece: np.ndarray, share: float, image_size: int) -> bool:
    """Whether the biggest piece of ink could be (part of) a digit, and not one of many specks
    of dust (its share of all ink is small), a speck (too small), a dot or blot (a digit is longer
    than MIN_ELONGATION stroke widths) or a few specks close together (their strokes are too short
    to reach across the piece)."""
    rows, cols = np.nonzero(piece)
    extent = max(np.ptp(rows), np.ptp(cols)) + 1
    width, length = _strokes(piece)
    return bool(
        share >= MAIN_PIECE
        and extent >= MIN_DIGIT_SIZE * image_size
        and extent >= MIN_ELONGATION * width
        and length >= extent
    )


def _ink(gray: np.ndarray) -> np.ndarray | None:
    """Ink strength 0..255, light on black, with background, noise and specks at 0; None if there is no digit."""
    deviation = gray - gray.mean()
    if np.mean(deviation * deviation * deviation) < 0:  # ink is the minority, so a long dark tail means dark ink
        gray = 255 - gray
    residual = _blur(gray - _background(gray))
    sample = residual[::2, ::2]  # every 4th pixel estimates the noise as well, 4x faster
    noise = 1.4826 * np.median(np.abs(sample - np.median(sample)))
    level = max(
        _otsu(residual), MIN_CONTRAST, 8 * noise
    )  # far enough out that no noise pixel of a big photo gets through
    mask = residual > level
    if not mask.any():
        return None
    # Soft edges, not the binary mask: MNIST's strokes are anti-aliased and the model expects them so.
    full = max(np.percentile(residual[mask], 75), level + 1)
    ink = np.clip((residual - level / 2) / (full - level / 2), 0, 1) * 255
    keep, biggest, share = _pieces(mask, ink)
    return ink * keep if _is_digit(mask & biggest, share, max(gray.shape)) else None


def _resize(patch: np.ndarray, scale: float) -> np.ndarray:
    size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
    return np.asarray(Image.fromarray(patch).resize(size, Image.Resampling.LANCZOS))


def _crop(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(ink)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _morph(image: np.ndarray, radius: int, thicken: bool) -> np.ndarray:
    """Grey dilation (thicken) or erosion by a square of side 2*radius+1, one axis at a time."""
    reduce = np.max if thicken else np.min
    for axis in (0, 1):
        pad = [(radius, radius) if i == axis else (0, 0) for i in range(2)]  # zeros: beyond the crop is background
        image = reduce(sliding_window_view(np.pad(image, pad), 2 * radius + 1, axis=axis), axis=-1)
    return image


def _fit_box(cropped: np.ndarray) -> np.ndarray:
    """Scale to fit 20x20 keeping the aspect ratio, with the stroke width brought into MNIST's range.

    A thin pen on a big image would shrink to faint hairlines, and a thick brush on a
    small digit to a blob. The width is fixed at 4x the final size, where whole pixels
    are fine enough steps, or larger if the strokes would fade there.
    """
    side = max(cropped.shape)
    width = _strokes(cropped > 127)[0]
    scale = max(4 * BOX / side, min(1.0, 3 / max(width, 1.0)))
    work = cropped if scale == 1 else _resize(cropped, scale)
    relative = width / side
    low, high = STROKE_RANGE
    if relative < low:
        work = _morph(work, round((low - relative) * side * scale / 2), thicken=True)
    elif relative > high:
        work = _morph(work, round((relative - high) * side * scale / 2), thicken=False)
    work = _crop(work) if work.any() else work
    return _resize(work, BOX / max(work.shape))


def _centre(patch: np.ndarray) -> np.ndarray:
    """Place the patch in 28x28 with its centre of mass at (14, 14), moved by whole pixels as MNIST was."""
    weights = patch.astype(np.float64)
    rows, cols = np.indices(patch.shape)
    top = round(SIZE / 2 - (rows * weights).sum() / weights.sum())
    left = round(SIZE / 2 - (cols * weights).sum() / weights.sum())
    top = min(max(top, 0), SIZE - patch.shape[0])  # never push ink off the edge
    left = min(max(left, 0), SIZE - patch.shape[1])
    out = np.zeros((SIZE, SIZE), dtype=np.uint8)
    out[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return out


def preprocess(source: ImageSource) -> Preprocessed:
    """Read any image of one digit as MNIST would have stored it; see the module docstring.

    Accepts whatever load_image accepts, and raises ImageError where it does.
    """
    gray = _shrink(_grayscale(load_image(source, max_side=WORK_SIZE)))
    steps = {"grayscale": np.clip(gray, 0, 255).astype(np.uint8)}
    ink = _ink(gray)
    if ink is None:
        return Preprocessed(None, steps)
    steps["ink"] = ink.astype(np.uint8)
    steps["cropped"] = _crop(steps["ink"])
    steps["20x20"] = _fit_box(steps["cropped"])
    if not steps["20x20"].any():
        return Preprocessed(None, steps)
    steps["28x28"] = _centre(steps["20x20"])
    return Preprocessed(normalize(torch.from_numpy(steps["28x28"])[None])[0], steps)
