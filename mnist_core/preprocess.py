"""Turn any picture of digits into the 28x28 tensors the model reads, the way MNIST made its own.

MNIST digits are light, anti-aliased strokes on black, scaled to fit a 20x20 box and
placed in 28x28 with their centre of mass at the centre. A model trained on them
misreads a digit that is dark on white, small, off-centre, on grey paper or drawn with
a much thinner or thicker pen, so every input is first brought to that form:

    decode at reduced size -> grayscale -> ink (polarity, top-hat background, threshold)
        -> pieces (labelled) -> digits (grouped, in up to 5 lines, each left to right, touching ones split)
        -> per digit: crop -> MNIST's stroke width, fit 20x20 -> centre of mass at (14, 14) -> [-1, 1]

Phone photos are why the ink is found by shape and not by darkness: a shadow, the desk at
the border or uneven light is darker than the paper but wider than any pen stroke, so a
morphological top-hat (the image minus its opening by a square wider than the strokes)
keeps the strokes and drops the rest, sharp shadow edges included; divided by that
background, the paper's brightness, ink in a shadow is as strong as in the light. A lit or
shadowed region is wider than any stroke, so it is never taken for the ink. Ruled paper's light
blue lines and red margin vanish in the brightest colour channel, where ink stays dark.

The image operations are OpenCV's (headless): measured faster than scipy.ndimage's
(bench/RESULTS.md), with the same results (scipy's reflect border is cv2.BORDER_REFLECT,
4-connected labels the same). Pillow resamples:
its LANCZOS filters the whole footprint when shrinking, as MNIST's anti-aliasing did.

Every step is kept as an image, so the dashboard can show what the model sees.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch
from PIL import Image

from .data import normalize
from .images import ImageError, ImageSource, from_array, load_image

WORK_SIZE = 512  # the ink is found at most at this size: plenty for 20x20 results, even six in a row, and fast
WIDE_GAIN = 3  # a picture over twice as wide as high keeps its shorter side at WORK_SIZE / 2, up to this many times
MIN_WORK_SIZE = 128  # a smaller picture is enlarged to this size; a drawing is halved, but never below it
THICKEN = 2  # pixels, at the decoded size: gaps in a stroke that pieces of ink are thickened to bridge
STROKE_PIXELS = 3  # strokes this wide are enough to find and label a drawing's ink: twice as wide, it is halved
MIN_CONTRAST = 32.0  # of 255 levels: fainter marks are paper texture, faint paper lines, shadows or noise
CLEAN = 0.8  # of the variance explained by Otsu's split: a picture of two clean levels (a canvas, a scan)
BALANCED = 0.35  # the smaller of those two levels' shares: above it, either could be the ink
STROKE_SHARE = 0.38  # of the shorter side: a disc this wide fits in a region of the page (lit, shadowed), not in ink
REGION_EDGE = 1 / 3  # of the picture's edge: a wide piece that runs along more is a region of the page, not ink
EDGE_PAPER = 0.85  # ... and the level of at least this share of the picture's edge is the paper (a shadow takes less)
AMBIGUOUS = 0.2  # of the level range: a median closer than this to its middle is dim paper, not a dark ground
INK_SHARE = 0.25  # of a picture: more is a digit cropped close, whose ink is no noise
NOISE_LEVELS = 5.0  # ink stands this many noise deviations above the paper (JPEG and grain are correlated)
LIT_PAPER = 95  # percentile of the paper's brightness: the light that ink in a shadow is given its contrast in
DARKEST_PAPER = 0.35  # of that brightness: darker is the desk or a deep corner, not paper whose ink is to be found
OPENING_SIZE = 1 / 6  # of the longer side: the top-hat's square, wider than any pen stroke of a written digit
DUST = 0.02  # pieces with less ink than this share of the biggest piece are dust, dropped before grouping
MIN_DIGIT_SIZE = 0.04  # of the image's longer side: anything smaller is a speck, not a digit
MIN_ELONGATION = 2.5  # a digit is longer than 2.5 stroke widths; a dot or blot is not
SPAN = 0.8  # a digit's strokes, end to end, reach at least this share across it; a few specks close together do not
ROW_HEIGHT = (0.4, 2.5)  # a digit beside the tallest one in a number is between these multiples of its height
MAX_GAP = 1.5  # digits of one number are at most this many digit heights apart
DIGIT_ASPECT = 0.75  # a digit's typical width / height, to count digits that touch
SPLIT_ASPECT = 1.3  # ink wider than this times its height is digits that touch; one digit never is
MAIN_SHARE = 0.3  # the digits read hold at least this share of all ink; dust is many small pieces
MAX_LINES = 5  # lines of digits read from one picture: a list, a date under a phone number
LINE_HEIGHT = 0.5  # another line's biggest digit is at least this share of the first line's height ...
LINE_MASS = 0.25  # ... and of its ink: a smaller mark is a note or a stray stroke, not another number
CROWDED = 3 * MAX_LINES  # this many digit-shaped marks, all too small to be read, are a page of many lines
STACKED = 1.4  # pieces of one digit, one above the other, are at most this many times the taller one's height
STROKE_RANGE = (0.12, 0.18)  # MNIST's stroke width relative to its digit's longer side (middle half)
BOX = 20  # MNIST scales digits to fit 20x20 ...
SIZE = 28  # ... and centres them in 28x28

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), in pixels
REPLICATE = cv2.BORDER_REPLICATE
CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))  # a pixel and its 4 neighbours


@dataclass
class Digit:
    """One digit's model input and how it was made.

    ``box`` is in the input image's own pixels; ``steps`` holds "cropped", "20x20" and
    "28x28" (the last exactly what the model sees, ink white on black).
    """

    tensor: torch.Tensor  # (1, 28, 28) float32 in [-1, 1]
    box: Box
    steps: dict[str, np.ndarray]
    line: int = 0  # which line of the picture, from the top


@dataclass
class Piece:
    """One group of ink of a line, as found, before it was cut into digits: what a sequence reader reads again.

    ``ink`` is uint8, cropped to the group's box at the size the ink was found at;
    ``offset`` is that box's top-left corner there and ``scale`` the factor to the
    input's pixels. Its digits are ``Preprocessed.digits[first : first + count]``.
    """

    ink: np.ndarray
    offset: tuple[int, int]
    scale: float
    first: int
    count: int
    line: int = 0


PICTURE_STEPS = ("grayscale", "ink")  # the steps of the whole picture, before any digit's own


@dataclass
class Preprocessed:
    """The digits found, line by line from the top, each line left to right, and the images along the way.

    ``digits`` is empty when no digit was found, so a blank canvas is reported as such
    instead of being given a confident guess, and when the picture holds more than
    MAX_LINES lines of digits or many digits too small to read (``crowded``), rather
    than some of them. ``steps`` maps names to uint8 2-D images in
    pipeline order: PICTURE_STEPS for the whole picture, then, when exactly one digit
    was found, its own "cropped", "20x20" and "28x28".
    """

    digits: list[Digit]
    steps: dict[str, np.ndarray]
    size: tuple[int, int] = (0, 0)  # the input's width and height in pixels, which boxes refer to
    crowded: bool = False  # more than MAX_LINES lines of digits, or many too small: none read, rather than some
    pieces: list[Piece] = field(default_factory=list)  # the groups the digits were cut from, in the same order

    @property
    def lines(self) -> int:
        return max((d.line for d in self.digits), default=-1) + 1

    @property
    def found(self) -> bool:
        return bool(self.digits)

    @property
    def tensor(self) -> torch.Tensor | None:
        """The model input when exactly one digit was found, else None."""
        return self.digits[0].tensor if len(self.digits) == 1 else None


def _grayscale(image: Image.Image) -> np.ndarray:
    """Gray levels 0..255 as float32, at most WORK_SIZE on the longer side (more for a wide picture, _work_side).

    Colour pictures take their brightest channel, in which ruled paper's light blue lines
    and red margin are nearly paper white while blue, black and pencil ink stay dark. A
    drawing on a transparent canvas carries its strokes in the alpha channel, whatever
    their colour, so transparency gets the shade opposite the opaque strokes; a picture
    that is mostly opaque gets the shade of its own background instead. The image is
    shrunk while still 8-bit, so a big photo is never converted to floats at full size.
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = from_array(np.asarray(image))  # Pillow's own conversion clips 16-bit levels to white
    try:
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "L" if len(image.getbands()) == 1 else "RGB")
    except ValueError as exc:
        raise ImageError(f"images in mode {image.mode} are not supported") from exc
    scale = _work_side(image.size) / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    elif max(image.size) < MIN_WORK_SIZE:  # MNIST's own 28x28: a stroke two pixels wide is too few to measure
        scale = MIN_WORK_SIZE / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    pixels = np.asarray(image)
    if not has_alpha:
        return (pixels if pixels.ndim == 2 else pixels.max(axis=2)).astype(np.float32)
    levels = np.asarray(image.convert("L"))
    alpha = pixels[:, :, 3].astype(np.float32) / 255
    opaque = alpha > 0.5
    if not opaque.any():
        return np.zeros(levels.shape, np.float32)
    shade = _median(_histogram(levels, opaque))
    gray = levels.astype(np.float32)
    if opaque.mean() < 0.5:
        shade = 0.0 if shade > 127.5 else 255.0
    return gray * alpha + shade * (1 - alpha)


def _work_side(size: tuple[int, int]) -> int:
    """The longer side the ink is found at: WORK_SIZE, or more for a wide picture (up to WIDE_GAIN times), so that
    a long number's digits keep the detail of a short one's."""
    return round(WORK_SIZE * min(max(max(size) / min(size) / 2, 1), WIDE_GAIN))


def _histogram(levels: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """Pixel counts of the 256 levels of a uint8 image, only where ``where`` is true if given."""
    mask = None if where is None else where.view(np.uint8)
    return cv2.calcHist([levels], [0], mask, [256], [0, 256]).ravel().astype(np.float64)


def _median(hist: np.ndarray) -> float:
    """The median level of a histogram, as np.median gives it for the pixels counted."""
    cumulative = np.cumsum(hist)
    count = int(cumulative[-1])
    return float(np.searchsorted(cumulative, [(count - 1) // 2, count // 2], side="right").mean())


def _levels(values: np.ndarray) -> np.ndarray:
    """Float levels 0..255 cut to whole uint8 levels, as Otsu's histogram counts them."""
    return np.clip(values, 0, 255).astype(np.uint8)


def _otsu(hist: np.ndarray) -> tuple[float, float]:
    """The level that best splits a histogram of levels 0..255 into two classes (Otsu, 1979), and the share
    of the variance that split explains: near 1 for a picture of two clean levels (a canvas, a scan)."""
    weight = np.cumsum(hist)
    mass = np.cumsum(hist * np.arange(256))
    total_w, total_m = weight[-1], mass[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.nan_to_num((total_m * weight - mass * total_w) ** 2 / (weight * (total_w - weight)))
    level = int(np.argmax(between))
    variance = hist @ (np.arange(256) - total_m / total_w) ** 2  # total_w times the variance
    return float(level), float(between[level] / total_w / variance) if variance else 0.0


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels: a stroke of width w and length L covers w*L pixels, 2*L of them on its edge.

    Edge pixels are those with a 4-neighbour outside the mask (beyond the image counts as outside).
    """
    area = cv2.countNonZero(mask.view(np.uint8))
    inner = cv2.erode(
        mask.view(np.uint8),
        CROSS,
    )
    edge = area - cv2.countNonZero(inner)
    return 2 * area / edge if edge else 0.0


def _inscribed(mask: np.ndarray) -> np.ndarray:
    """Each pixel's distance to the nearest one outside the mask: the radius of the widest disc inside it there.

    The picture's edge is not the mask's edge, as a region of the page that reaches it goes on beyond it.
    """
    return cv2.distanceTransform(mask.view(np.uint8), cv2.DIST_L2, 3)


def _piece_width(mask: np.ndarray, widest: float) -> float:
    """Mean stroke width of a mask (as stroke_width), leaving out the lit or shadowed regions of the page: pieces
    that hold a disc wider than ``widest`` and run along more than REGION_EDGE of the picture's edge.

    Such a region is no stroke, and counted with the strokes beside it, it would widen them (and
    so the top-hat's square, until the region itself is taken for ink). A fat pen's digit cropped
    close can hold as wide a disc, but it meets the picture's edge only where its strokes end.
    """
    deep = 2 * _inscribed(mask) > widest
    if not deep.any():
        return stroke_width(mask)
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=4)
    ring = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    regions = np.zeros(count, bool)
    regions[labels[deep]] = True
    regions &= np.bincount(ring, minlength=count) > REGION_EDGE * len(ring)
    regions[0] = False  # the background
    return stroke_width(mask & ~regions[labels])


def _top_hat(ink_up: np.ndarray, drawing: bool, shaded: bool) -> np.ndarray:
    """Ink minus its background (light ink on dark), blurred 3x3 first to quiet sensor noise and paper grain.

    The background is the opening by a square wider than the strokes: what is left of the
    picture once every stroke is erased. The square is OPENING_SIZE of the longer side (of
    twice the shorter side, in a picture over twice as wide as high), or three stroke
    widths where a fat brush fills a small canvas.

    With ``shaded`` (dark ink on paper in a photo) the ink is then divided by the paper's
    brightness under it, the background: a stroke in a shadow is as strong as one in the light
    (a faint pencil stroke there would fall under MIN_CONTRAST), and across a shadow's edge a
    digit keeps one stroke strength.

    The result of a drawing may be half the input's size: where its strokes are at least
    twice STROKE_PIXELS wide (the Draw page's pen is 6-40 px), the pixels between are wasted
    work. Photos are never shrunk: a thin digit of a number, halved, can fail _is_digit
    (bench/RESULTS.md has both measurements).
    """
    ink_up = cv2.blur(ink_up, (3, 3), borderType=cv2.BORDER_REFLECT)
    level, explained = _otsu(_histogram(_levels(ink_up)))
    width = 0.0
    # Only a picture of two clean levels (a canvas, a scan) is measured: Otsu's split explains most of its
    # variance. In a photo the split also takes in shadows, which would look like very wide strokes.
    if explained >= CLEAN:
        width = _piece_width(ink_up > level, OPENING_SIZE * max(ink_up.shape))
    if drawing and width >= 2 * STROKE_PIXELS and max(ink_up.shape) >= 2 * MIN_WORK_SIZE:
        rows, cols = ink_up.shape
        ink_up = cv2.resize(ink_up, (round(cols / 2), round(rows / 2)), interpolation=cv2.INTER_AREA)
        width /= 2
    side = min(max(ink_up.shape), 2 * min(ink_up.shape))  # a wide picture's digits are as high as it allows
    size = max(3, round(OPENING_SIZE * side), round(3 * width))
    square = np.ones((size | 1, size | 1), np.uint8)  # odd, so the opening is centred on each pixel
    if not shaded:
        return ink_up - cv2.morphologyEx(_edges_opened(ink_up, size | 1), cv2.MORPH_OPEN, square, borderType=REPLICATE)
    # The picture is continued beyond its edge before the opening, not by the opening's own border rule (which
    # continues the eroded picture instead), so a shadow's edge meeting the picture's edge at a slant leaves no
    # wedge of "ink" there; not where fat strokes were measured: a scan cropped close, with no shadow.
    pad = size // 2 + 1 if 3 * width < OPENING_SIZE * side else 0
    padded = cv2.copyMakeBorder(_edges_opened(ink_up, size | 1), pad, pad, pad, pad, REPLICATE)
    opened = cv2.morphologyEx(padded, cv2.MORPH_OPEN, square, borderType=REPLICATE)
    background = opened[pad : pad + ink_up.shape[0], pad : pad + ink_up.shape[1]]
    paper = 255 - background  # how bright the paper is under each pixel, ink erased
    lit = float(np.percentile(paper[::4, ::4], LIT_PAPER))
    if lit <= 0:  # no paper shows anywhere (a picture all ink): nothing to divide by
        return ink_up - background
    return (ink_up - background) * (lit / np.maximum(paper, DARKEST_PAPER * lit))


def _edges_opened(image: np.ndarray, size: int) -> np.ndarray:
    """The image with its four edge lines opened along their length, as the picture's edge is continued outwards.

    Beyond the picture is taken to be what lies along its edge without the strokes that
    cross it: a digit cropped close is strokes that end at the edge, not the side of a
    region wider than the opening's square, which the opening would keep (and the
    top-hat drop), while a shadow, the desk or a dark corner at the edge goes on beyond it.
    """
    edged = image.copy()
    line = np.ones((1, size), np.uint8)
    for index in (0, -1):
        edged[index] = cv2.morphologyEx(image[index][None], cv2.MORPH_OPEN, line, borderType=REPLICATE)[0]
        edged[:, index] = cv2.morphologyEx(image[:, index][None], cv2.MORPH_OPEN, line, borderType=REPLICATE)[0]
    return edged


def _floor(residual: np.ndarray) -> float:
    """The lowest level that is ink: MIN_CONTRAST, or NOISE_LEVELS times the noise.

    The noise is the residual's spread, or, where its upper class (Otsu) is a large share,
    that of its lower class, the paper: in a digit cropped close ink can be half the picture,
    and would count as noise.
    """
    sample = residual[::2, ::2]  # every 4th pixel estimates the noise as well, 4x faster
    paper = sample[sample <= _otsu(_histogram(_levels(sample)))[0]]
    if paper.size >= (1 - INK_SHARE) * sample.size:
        paper = sample
    return max(MIN_CONTRAST, NOISE_LEVELS * 1.4826 * float(np.median(np.abs(paper - np.median(paper)))))


def _polarity(gray: np.ndarray, drawing: bool) -> tuple[np.ndarray, float]:
    """The top-hat of the ink, light on black, and its floor.

    Paper (or a canvas) covers most of a picture, so the median level is background and
    ink lies on the far side of it: light ink when the median is well below the middle
    of the range. A histogram's tail or skew would be tipped by a shadow or the desk,
    which are dark like ink; the median is not, as long as most of the paper is lit. A
    median near the middle is dim paper between a dark desk and a lit patch: a photo of
    paper, so dark ink. Light ink (a dark canvas, an MNIST image) lies on a background
    that is dark, even and most of the picture, so its median is never near the middle.
    """
    median = float(np.median(gray[::2, ::2]))  # every 4th pixel is as good a median, 4x faster
    low, high = float(gray.min()), float(gray.max())
    light_ink = median < (low + high) / 2 - AMBIGUOUS * (high - low)
    level, explained = _otsu(_histogram(_levels(gray)))
    dark = float(np.mean(gray[::2, ::2] <= level))
    if explained >= CLEAN and min(dark, 1 - dark) >= BALANCED:
        # A digit cropped close with a fat pen can be more ink than paper, so the median is ink. In a clean
        # two-level picture (a scan, a canvas) the picture's edge is then mostly paper, where the ink touches
        # it only at a few points.
        ring = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
        dark_edge = float(np.mean(ring <= level))
        if dark_edge >= EDGE_PAPER or dark_edge <= 1 - EDGE_PAPER:
            # ... and the other level is strokes: a lit page beside a shadow, framed by the desk, is not
            ink = gray[::2, ::2] > level if dark_edge >= EDGE_PAPER else gray[::2, ::2] <= level
            if 2 * _inscribed(ink).max() <= STROKE_SHARE * min(ink.shape):
                light_ink = dark_edge >= EDGE_PAPER
    residual = _top_hat(gray if light_ink else 255 - gray, drawing, shaded=not (light_ink or drawing))
    return residual, _floor(residual)


def _ink(gray: np.ndarray, drawing: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Ink strength 0..255 (light on black), the mask of inked pixels, and the mask of marks that touch
    the picture's edge (the desk, the page edge, a dark corner); None if there is no ink at all. All
    three are at the size the ink was found at: a drawing with wide strokes is halved (see _top_hat).

    The level is above Otsu's split and the floor, and is found
    without the marks at the edge, whose contrast with the paper can be far stronger than
    a pencil's, so they would lift the level above faint ink.
    """
    residual, floor = _polarity(gray, drawing)
    _, marks, stats, _ = cv2.connectedComponentsWithStats((residual > floor).view(np.uint8), connectivity=4)
    edge_marks = _touches_border(_boxes(stats), residual.shape)
    edge_marks[0] = False  # the background
    at_edge = edge_marks[marks]
    inside = ~at_edge if not edge_marks[1:].all() else None  # unless every mark is at the edge
    level = max(_otsu(_histogram(_levels(residual), inside))[0], floor)
    mask = residual > level
    if not mask.any():
        return None
    # Soft edges, not the binary mask: MNIST's strokes are anti-aliased and the model expects them so.
    inked = mask & ~at_edge if (mask & ~at_edge).any() else mask
    full = max(np.percentile(residual[inked], 75), level + 1)
    ink = np.clip((residual - level / 2) / (full - level / 2), 0, 1) * 255
    return ink, mask, at_edge & mask


def _is_digit(piece: np.ndarray, image_size: int, smallest: float = MIN_DIGIT_SIZE) -> bool:
    """Whether a group of ink could be a digit and not a speck (too small), a dot or blot (a digit
    is longer than MIN_ELONGATION stroke widths) or a few specks close together (their strokes are
    too short to reach across the group: a 1 cut at both ends by the picture's edge only just does)."""
    rows, cols = np.nonzero(piece)
    if not len(rows):
        return False
    extent = max(np.ptp(rows), np.ptp(cols)) + 1
    width = stroke_width(piece)
    length = np.count_nonzero(piece) / max(width, 1.0)
    return bool(extent >= smallest * image_size and extent >= MIN_ELONGATION * width and length >= SPAN * extent)


@dataclass
class _Group:
    """Pieces of ink that make one digit, with their bounding box (x0, y0, x1, y1) in work pixels."""

    labels: list[int]
    box: Box

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _same_digit(a: _Group, b: _Group) -> bool:
    """Pieces one above the other belong together: the flag of a 5, the bar of a 7, the two strokes of a 4.

    Digits of a number sit side by side, so pieces that share most of the narrower
    one's columns and are vertically close are one digit, unless together they are much
    taller than either: digits of two lines.
    """
    overlap = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
    gap = max(a.box[1], b.box[1]) - min(a.box[3], b.box[3])
    height = max(a.box[3], b.box[3]) - min(a.box[1], b.box[1])
    return (
        overlap >= 0.5 * min(a.width, b.width)
        and gap <= 0.5 * max(a.height, b.height)
        and height <= STACKED * max(a.height, b.height)  # not two lines' digits, one under the other
    )


def _boxes(stats: np.ndarray) -> np.ndarray:
    """Each component's box (x0, y0, x1, y1) from cv2.connectedComponentsWithStats' left, top, width, height."""
    corners = stats[:, : cv2.CC_STAT_AREA].copy()
    corners[:, 2:] += corners[:, :2]
    return corners


def _groups(labels: np.ndarray, boxes: np.ndarray, weights: np.ndarray) -> list[_Group]:
    """The pieces of ink, dust dropped, merged into digits; label 0 is the background."""
    masses = np.bincount(labels.ravel(), weights.ravel(), minlength=len(boxes))[1:]
    groups = [
        _Group([i + 1], (int(x0), int(y0), int(x1), int(y1)))
        for i, (x0, y0, x1, y1) in enumerate(boxes[1:])
        if masses[i] >= DUST * masses.max()
    ]
    merged = True
    while merged:
        merged = False
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                if _same_digit(a, b):
                    groups.remove(b)
                    groups[i] = _Group(a.labels + b.labels, _union(a.box, b.box))
                    merged = True
                    break
            if merged:
                break
    return groups


def _touches_border(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """For each box (x0, y0, x1, y1), a row of ``boxes``, whether it reaches the picture's edge."""
    x0, y0, x1, y1 = np.asarray(boxes).T
    return (x0 <= 0) | (y0 <= 0) | (x1 >= shape[1]) | (y1 >= shape[0])


def _lines(groups: list[_Group], pieces: np.ndarray, ink: np.ndarray) -> tuple[list[list[_Group]], bool]:
    """The digits read, line by line from the top, each line left to right; and whether there were more than
    MAX_LINES lines, or only many digits too small to read.

    A line grows from its biggest digit-shaped group to its neighbours in a row; the next
    line starts from the biggest group left that lies outside the lines already read and
    is a digit like the first line's (not a speck or a stray mark). Ink at the picture's
    edge (the desk, the page edge, a shadow's border) is only read when nothing else is
    there; groups that are not digit-shaped (dust, dots) never are.
    """
    size = max(pieces.shape)
    total = float(ink[pieces > 0].sum())
    shaped = [g for g in groups if _is_digit(np.isin(pieces[_slice(g.box)], g.labels, kind="table"), size)]

    def crowded() -> bool:  # many digits, each too small to read: a page of many lines, not a blank one
        small = [g for g in groups if _is_digit(np.isin(pieces[_slice(g.box)], g.labels, kind="table"), size, 0)]
        return len(small) >= CROWDED

    if not shaped:
        return [], crowded()
    at_border = _touches_border(np.array([g.box for g in shaped]).reshape(-1, 4), pieces.shape)
    inside = [g for g, edge in zip(shaped, at_border, strict=True) if not edge]
    candidates = inside or shaped
    masses = {
        id(g): float(ink[_slice(g.box)][np.isin(pieces[_slice(g.box)], g.labels, kind="table")].sum())
        for g in candidates
    }
    lines: list[list[_Group]] = []
    left = sorted(candidates, key=lambda g: -masses[id(g)])
    while left:
        main = left[0]
        first = lines[0][0] if lines else main
        if lines and (main.height < LINE_HEIGHT * first.height or masses[id(main)] < LINE_MASS * masses[id(first)]):
            break
        if len(lines) == MAX_LINES:
            return _sorted(lines), True
        row = _row(main, left, masses)
        lines.append(row)
        top, bottom = min(g.box[1] for g in row), max(g.box[3] for g in row)
        left = [g for g in left if g not in row and not _overlap(g.box[1], g.box[3], top, bottom) > 0.5 * g.height]
    if sum(masses[id(g)] for row in lines for g in row) < MAIN_SHARE * total:
        return [], crowded()
    return _sorted(lines), False


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return min(a1, b1) - max(a0, b0)


def _sorted(lines: list[list[_Group]]) -> list[list[_Group]]:
    """Lines top to bottom (by their middle), each left to right."""
    return sorted(
        (sorted(row, key=lambda g: g.box[0]) for row in lines),
        key=lambda row: float(np.mean([(g.box[1] + g.box[3]) / 2 for g in row])),
    )


def _row(main: _Group, candidates: list[_Group], masses: dict[int, float]) -> list[_Group]:
    """``main`` and its neighbours in a row: similar height, level with it, at most MAX_GAP heights apart."""
    low, high = ROW_HEIGHT

    def beside(g: _Group, of: _Group) -> bool:
        return (
            _overlap(g.box[1], g.box[3], of.box[1], of.box[3]) >= 0.5 * min(g.height, of.height)
            and low * main.height <= g.height <= high * main.height
            and masses[id(g)] >= 0.1 * masses[id(main)]
        )

    def gap(g: _Group, edge: _Group, direction: int) -> float:  # from the row's edge outwards; < 0 is behind it
        return g.box[0] - edge.box[2] if direction > 0 else edge.box[0] - g.box[2]

    row = [main]
    for direction in (-1, 1):  # grow the row outwards from the main digit, one neighbour at a time
        edge = main
        while near := [
            g
            for g in candidates
            if g not in row
            and -0.5 * edge.width <= gap(g, edge, direction) <= MAX_GAP * main.height
            and beside(g, edge)
        ]:
            edge = min(near, key=lambda g: gap(g, edge, direction))
            row.append(edge)
    return row


def _slice(box: Box) -> tuple[slice, slice]:
    return slice(box[1], box[3]), slice(box[0], box[2])


def _split(group: _Group, piece_ink: np.ndarray, digit_width: float) -> list[np.ndarray]:
    """A group much wider than tall is digits that touch: cut it where the fewest ink columns are.

    Returns the group's ink (cropped to its box) once per digit, zero outside that digit.
    """
    count = max(1, round(group.width / digit_width))
    if group.width <= SPLIT_ASPECT * group.height or count == 1:
        return [piece_ink]
    columns = piece_ink.sum(axis=0)
    step = group.width / count
    cuts = [0]
    for k in range(1, count):
        centre = round(k * step)
        window = max(1, round(0.3 * step))
        lo, hi = max(cuts[-1] + 1, centre - window), min(group.width - 1, centre + window)
        cuts.append(lo + int(np.argmin(columns[lo:hi])) if hi > lo else centre)
    cuts.append(group.width)
    parts = []
    for start, stop in itertools.pairwise(cuts):
        part = np.zeros_like(piece_ink)
        part[:, start:stop] = piece_ink[:, start:stop]
        parts.append(part)
    return [p for p in parts if p.any()]


def _crop(ink: np.ndarray) -> tuple[np.ndarray, Box]:
    rows, cols = np.nonzero(ink)
    box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
    return ink[_slice(box)], box


def _resize(patch: np.ndarray, scale: float) -> np.ndarray:
    size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
    return np.asarray(Image.fromarray(patch).resize(size, Image.Resampling.LANCZOS))


def _fit_box(cropped: np.ndarray) -> np.ndarray:
    """Scale to fit 20x20 keeping the aspect ratio, with the stroke width brought into MNIST's range.

    A thin pen on a big image would shrink to faint hairlines, and a thick brush on a
    small digit to a blob. The width is fixed at 4x the final size, where whole pixels
    are fine enough steps, or larger if the strokes would fade there.
    """
    side = max(cropped.shape)
    width = stroke_width(cropped > 127)
    scale = max(4 * BOX / side, min(1.0, 3 / max(width, 1.0)))
    work = cropped if scale == 1 else _resize(cropped, scale)
    relative = width / side
    low, high = STROKE_RANGE
    if relative < low or relative > high:
        radius = round(abs(relative - (low if relative < low else high)) * side * scale / 2)
        if radius:
            padded = np.pad(work, radius)  # beyond the crop is background
            morph = cv2.dilate if relative < low else cv2.erode
            work = morph(padded, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    work = _crop(work)[0] if work.any() else work
    return _resize(work, BOX / max(work.shape))


def _centre(patch: np.ndarray) -> np.ndarray:
    """Place the patch in 28x28 with its centre of mass at (14, 14), moved by whole pixels as MNIST was."""
    moments = cv2.moments(patch)
    rows, cols = moments["m01"] / moments["m00"], moments["m10"] / moments["m00"]
    top = min(max(round(SIZE / 2 - rows), 0), SIZE - patch.shape[0])  # never push ink off the edge
    left = min(max(round(SIZE / 2 - cols), 0), SIZE - patch.shape[1])
    out = np.zeros((SIZE, SIZE), dtype=np.uint8)
    out[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return out


def digit_from_ink(ink: np.ndarray, offset: tuple[int, int], scale: float, size: tuple[int, int]) -> Digit | None:
    """One digit's ink (uint8, zero elsewhere) made MNIST-like, its box in the ``size`` of the input image; None if
    nothing is left of it."""
    cropped, (x0, y0, x1, y1) = _crop(ink)
    fitted = _fit_box(cropped)
    if not fitted.any():
        return None
    steps = {"cropped": cropped, "20x20": fitted, "28x28": _centre(fitted)}
    ox, oy = offset
    box = (
        int((ox + x0) * scale),
        int((oy + y0) * scale),
        min(int(np.ceil((ox + x1) * scale)), size[0]),
        min(int(np.ceil((oy + y1) * scale)), size[1]),
    )
    return Digit(normalize(torch.from_numpy(steps["28x28"])[None])[0], box, steps)


def preprocess(source: ImageSource) -> Preprocessed:
    """Read any image of one digit or of a number, as MNIST would have stored each digit; see the module docstring.

    Accepts whatever load_image accepts, and raises ImageError where it does.
    """
    image = load_image(source, max_side=WORK_SIZE)  # and at least WORK_SIZE / 2 on the shorter side
    size = image.info.get("original_size", image.size)
    gray = _grayscale(image)
    steps = {"grayscale": np.clip(gray, 0, 255).astype(np.uint8)}
    drawing = "A" in image.getbands() or "transparency" in image.info  # as the Draw page's canvas sends
    found = _ink(gray, drawing)
    if found is None:
        return Preprocessed([], steps, size)
    ink, mask, at_edge = found
    steps["ink"] = ink.astype(np.uint8)
    thicken = max(1, round(THICKEN * max(ink.shape) / max(gray.shape)))  # in pixels of the size ink was found at
    # Marks at the picture's edge are read only when nothing else is (a digit drawn to the canvas's edge).
    for usable in (mask & ~at_edge, mask):
        # Pieces are labelled on a slightly thickened mask, so a stroke broken by a pencil's gap stays one
        # piece, and their soft edges, below the threshold, are kept with them.
        thickened = cv2.dilate(usable.view(np.uint8), CROSS, iterations=thicken)
        _, pieces, stats, _ = cv2.connectedComponentsWithStats(thickened, connectivity=4)
        lines, crowded = _lines(_groups(pieces, _boxes(stats), ink), pieces * usable, ink)
        if lines:
            break
    if crowded:
        return Preprocessed([], steps, size, crowded=True)
    scale = max(size) / max(ink.shape)
    digits: list[Digit] = []
    sources: list[Piece] = []  # the groups the digits are cut from
    for number, row in enumerate(lines):
        single = [g.width for g in row if g.width <= SPLIT_ASPECT * g.height]
        for group in row:
            region = _slice(group.box)
            piece_ink = np.where(np.isin(pieces[region], group.labels, kind="table"), steps["ink"][region], 0)
            piece_ink = piece_ink.astype(np.uint8)
            digit_width = float(np.median(single)) if len(single) >= 2 else DIGIT_ASPECT * group.height
            first, offset = len(digits), (group.box[0], group.box[1])
            for part in _split(group, piece_ink, max(digit_width, 0.5 * group.height)):
                digit = digit_from_ink(part, offset, scale, size)
                if digit is not None:
                    digits.append(replace(digit, line=number))
            sources.append(Piece(piece_ink, offset, scale, first, len(digits) - first, number))
    if len(digits) == 1:
        steps.update(digits[0].steps)
    return Preprocessed(digits, steps, size, pieces=sources)
