"""Preprocessing: every kind of input reaches the same MNIST-like 28x28, and bad input fails clearly."""

import io
import itertools
import struct
import zlib

import numpy as np
import pytest
import torch
from custom_digits import draw_digit
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageFilter

from mnist_core.images import MAX_BYTES, MAX_PIXELS, ImageError, load_image
from mnist_core.preprocess import preprocess


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def png_bytes(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **params)
    return buffer.getvalue()


def paper_photo(ink: Image.Image | None, seed: int = 0) -> Image.Image:
    """A phone photo of paper: dark ink, a shadow across it, noise, blur and JPEG compression."""
    rng = np.random.default_rng(seed)
    rows = cols = 600
    coverage = np.zeros((rows, cols)) if ink is None else np.asarray(ink.resize((cols, rows)), dtype=np.float64) / 255
    y, x = np.mgrid[0 : 1 : rows * 1j, 0 : 1 : cols * 1j]
    light = 1 - 0.35 * x - 0.2 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    gray = (215 * (1 - coverage) + 50 * coverage) * light + rng.normal(0, 6, (rows, cols))
    image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=75)
    return Image.open(io.BytesIO(buffer.getvalue()))


def shadowed_photo(
    ink: Image.Image | None, softness: float, angle: float, ink_level: float = 50.0, shadow: float = 0.55
) -> Image.Image:
    """A phone photo of paper under a shadow that takes ``shadow`` of the light, its edge ``softness`` of the picture
    wide (a thousandth is sharp, a fifth very soft), through the middle at ``angle`` degrees; ink at 160 is pencil.
    """
    rng = np.random.default_rng(0)
    rows = cols = 400
    coverage = np.zeros((rows, cols)) if ink is None else np.asarray(ink.resize((cols, rows)), dtype=np.float64) / 255
    y, x = np.mgrid[0 : 1 : rows * 1j, 0 : 1 : cols * 1j]
    side = (x - 0.5) * np.cos(np.radians(angle)) + (y - 0.5) * np.sin(np.radians(angle))
    light = 1 - shadow * (1 + np.tanh(side / (2 * softness))) / 2
    gray = (215 * (1 - coverage) + ink_level * coverage) * light + rng.normal(0, 4, (rows, cols))
    image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=75)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.fixture(scope="module")
def seven() -> Image.Image:
    """A small, off-centre 7 on a 280x280 canvas, white on black, as a drawing app makes it."""
    return draw_digit(7, top_left=(150, 30), height=90, pen=12)


@pytest.fixture(scope="module")
def reference(seven) -> np.ndarray:
    return preprocess(seven).steps["28x28"]


def test_canvas_digit_becomes_mnist_like(seven):
    result = preprocess(seven)
    assert result.found
    assert list(result.steps) == ["grayscale", "ink", "cropped", "20x20", "28x28"]
    assert all(step.dtype == np.uint8 and step.ndim == 2 for step in result.steps.values())

    out = result.steps["28x28"].astype(np.float64)
    rows, cols = np.nonzero(out)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 in (19, 20)  # fits 20x20, fills it
    assert rows.max() - rows.min() < 20 and cols.max() - cols.min() < 20
    grid_rows, grid_cols = np.indices(out.shape)
    assert abs((grid_rows * out).sum() / out.sum() - 14) <= 1
    assert abs((grid_cols * out).sum() / out.sum() - 14) <= 1
    assert out.sum() == result.steps["20x20"].sum()  # moved, never cut off
    assert out.max() == 255  # stroke cores are full ink, as in MNIST


def test_tensor_is_the_28x28_step_normalized_like_mnist(seven):
    result = preprocess(seven)
    assert result.tensor.shape == (1, 28, 28) and result.tensor.dtype == torch.float32
    expected = torch.from_numpy(result.steps["28x28"]).float() / 127.5 - 1
    assert torch.equal(result.tensor[0], expected)
    assert result.tensor.min() == -1 and result.tensor.max() == 1


@pytest.mark.parametrize("ink, paper", [(0, 255), (30, 200), (255, 0), (220, 60)])
def test_polarity_is_found_without_being_told(seven, reference, ink, paper):
    drawing = np.asarray(seven, dtype=np.float64) / 255
    image = Image.fromarray(np.rint(paper + (ink - paper) * drawing).astype(np.uint8))
    result = preprocess(image)
    assert result.steps["28x28"][0, 0] == 0  # background is black whatever the input's was
    assert similarity(result.steps["28x28"], reference) > 0.95


@pytest.mark.parametrize("ink, paper", [(0, 255), (255, 0)])
@pytest.mark.parametrize("side", [28, 300])
def test_a_digit_cropped_close_reads_as_with_a_margin(seven, reference, ink, paper, side):
    """Ink touching every edge is the digit, not the desk: MNIST's own 28x28 and a scan cropped to the ink."""
    drawing = np.asarray(seven, dtype=np.float64) / 255
    rows, cols = np.nonzero(drawing > 0.5)
    tight = drawing[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    image = Image.fromarray(np.rint(paper + (ink - paper) * tight).astype(np.uint8))
    image = image.resize((round(side * image.width / image.height), side), Image.Resampling.LANCZOS)
    result = preprocess(image)
    assert len(result.digits) == 1
    assert result.digits[0].box == (0, 0, *image.size)
    assert similarity(result.steps["28x28"], reference) > 0.9


@pytest.mark.parametrize("label", [0, 2, 8])
@pytest.mark.parametrize("ink, paper", [(40, 230), (255, 0)])
@pytest.mark.parametrize("mnist_size", [False, True])
def test_a_fat_digit_cropped_close_is_found_even_as_mnist_28x28(label, ink, paper, mnist_size):
    """Cropped to the ink, a fat pen's digit is about as much ink as paper; at 28x28 its strokes are 4 pixels."""
    pen = 24 if mnist_size else 34
    drawn = draw_digit(label, size=(200, 200), top_left=(40, 20), height=160, pen=pen, ink=ink, paper=paper)
    rows, cols = np.nonzero(np.abs(np.asarray(drawn, dtype=np.int16) - paper) > 60)
    tight = drawn.crop((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
    if mnist_size:
        tight.thumbnail((28, 28), Image.Resampling.LANCZOS)
    result = preprocess(tight)
    assert len(result.digits) == 1 and result.steps["28x28"][0, 0] == 0
    x0, y0, x1, y1 = result.digits[0].box
    assert max(x0, y0, tight.width - x1, tight.height - y1) <= (3 if mnist_size else 1)  # anti-aliased edges
    assert x1 <= tight.width and y1 <= tight.height


def test_uneven_light_noise_and_jpeg_are_not_ink(seven, reference):
    result = preprocess(paper_photo(seven))
    assert result.found
    assert similarity(result.steps["28x28"], reference) > 0.9


def test_specks_around_the_digit_are_ignored(seven, reference):
    speckled = np.asarray(seven).copy()
    rng = np.random.default_rng(1)
    for y, x in rng.integers(0, 276, (25, 2)):
        speckled[y : y + 3, x : x + 3] = 255
    assert similarity(preprocess(speckled).steps["28x28"], reference) > 0.9


@pytest.mark.parametrize("pen, size", [(2, 900), (4, 400), (40, 280)])
def test_thin_and_thick_pens_get_mnist_stroke_width(pen, size):
    """A hairline on a big image must not shrink to nothing, nor a fat brush on a small digit to a blob."""
    medium = preprocess(draw_digit(4, top_left=(100, 60), height=150, pen=20)).steps["28x28"]
    scale = size / 280
    image = draw_digit(
        4, size=(size, size), top_left=(round(100 * scale), round(60 * scale)), height=round(150 * scale), pen=pen
    )
    out = preprocess(image).steps["28x28"]
    assert 0.7 < np.count_nonzero(out > 127) / np.count_nonzero(medium > 127) < 1.4
    assert similarity(out, medium) > 0.7


def _with_alpha(drawing: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    rgba = Image.new("RGBA", drawing.size, (*colour, 0))
    rgba.putalpha(drawing)
    return rgba


def _palette_with_transparency(drawing: Image.Image) -> Image.Image:
    image = Image.fromarray(np.where(np.asarray(drawing) > 127, 1, 0).astype(np.uint8), "P")
    image.putpalette([0, 0, 0, 20, 20, 20])  # dark strokes; index 0 is transparent
    image.info["transparency"] = 0
    return Image.open(io.BytesIO(png_bytes(image)))


INPUT_KINDS = {
    "L": lambda d: d,
    "RGB": lambda d: d.convert("RGB"),
    "1 (bilevel)": lambda d: d.convert("1"),
    "RGBA, white strokes on transparency": lambda d: _with_alpha(d, (255, 255, 255)),
    "RGBA, black strokes on transparency": lambda d: _with_alpha(d, (0, 0, 0)),
    "LA": lambda d: _with_alpha(d, (0, 0, 0)).convert("LA"),
    "P with a transparent index": _palette_with_transparency,
    "P without transparency": lambda d: d.convert("RGB").convert("P"),
    "I;16": lambda d: Image.fromarray(np.asarray(d, dtype=np.uint16) * 257),
    "16-bit PNG file": lambda d: Image.open(
        io.BytesIO(png_bytes(Image.fromarray(np.asarray(d, dtype=np.uint16) * 257)))
    ),
    "I (32-bit)": lambda d: d.convert("I"),
    "F (float)": lambda d: d.convert("F"),
    "CMYK": lambda d: d.convert("RGB").convert("CMYK"),
    "PNG bytes": png_bytes,
    "bytearray": lambda d: bytearray(png_bytes(d)),
    "binary file": lambda d: io.BytesIO(png_bytes(d)),
    "numpy uint8": np.asarray,
    "numpy uint8 (H, W, 1)": lambda d: np.asarray(d)[:, :, None],
    "numpy RGB": lambda d: np.asarray(d.convert("RGB")),
    "numpy RGBA": lambda d: np.asarray(_with_alpha(d, (0, 0, 0))),
    "numpy float in [0, 1]": lambda d: np.asarray(d, dtype=np.float32) / 255,
    "numpy float, any range": lambda d: np.asarray(d, dtype=np.float64) * 3.7 - 500,
    "numpy bool": lambda d: np.asarray(d) > 127,
    "numpy uint16": lambda d: np.asarray(d, dtype=np.uint16) * 257,
    "numpy int64": lambda d: np.asarray(d).astype(np.int64),
}


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_every_kind_of_input_gives_the_same_digit(kind, seven, reference):
    result = preprocess(INPUT_KINDS[kind](seven))
    assert result.found
    assert similarity(result.steps["28x28"], reference) > 0.9


@pytest.mark.parametrize("as_str", [True, False])
def test_paths(tmp_path, seven, reference, as_str):
    path = tmp_path / "seven.png"
    seven.save(path)
    assert similarity(preprocess(str(path) if as_str else path).steps["28x28"], reference) > 0.9


def test_animated_gif_uses_its_first_frame(seven, reference):
    def gif(frames):
        buffer = io.BytesIO()
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
        return buffer.getvalue()

    blank = Image.new("L", seven.size, 0)
    assert similarity(preprocess(gif([seven, blank, blank])).steps["28x28"], reference) > 0.9
    assert not preprocess(gif([blank, seven, seven])).found


def test_exif_rotated_photo_comes_out_upright(seven, reference):
    stored = seven.rotate(90, expand=True)  # how a phone held sideways stores it ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with the tag that says "turn me 90 degrees clockwise"
    buffer = io.BytesIO()
    stored.convert("RGB").save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    upright = preprocess(buffer.getvalue()).steps["28x28"]
    sideways = preprocess(stored).steps["28x28"]
    assert similarity(upright, reference) > 0.9
    assert similarity(sideways, reference) < 0.5


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims the given size: a decompression bomb without the bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _empty_file(path):
    path.touch()
    return path


def _truncated_png() -> bytes:
    data = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300), dtype=np.uint8)))
    return data[: len(data) // 2]


BAD_INPUTS = {
    "empty bytes": (lambda tmp: b"", "empty"),
    "empty file": (lambda tmp: _empty_file(tmp / "empty.png"), "empty"),
    "text, not an image": (lambda tmp: b"hello, this is not an image", "not an image"),
    "a PDF": (lambda tmp: b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "not an image"),
    "truncated PNG": (lambda tmp: _truncated_png(), "damaged or incomplete"),
    "bomb over our limit": (lambda tmp: _png_header(8000, 8000), "too large"),
    "bomb over Pillow's limit": (lambda tmp: _png_header(60000, 60000), "too large"),
    "too many bytes": (lambda tmp: b"\0" * (MAX_BYTES + 1), "larger than"),
    "missing path": (lambda tmp: tmp / "no-such-file.png", "cannot read"),
    "a folder": (lambda tmp: tmp, "cannot read"),
    "text-mode file": (lambda tmp: io.StringIO("abc"), "binary mode"),
    "not an image type": (lambda tmp: 42, "cannot read an image from a int"),
    "array of 2 channels": (lambda tmp: np.zeros((10, 10, 2)), "shape"),
    "1-D array": (lambda tmp: np.zeros(10), "shape"),
    "empty array": (lambda tmp: np.zeros((0, 10)), "no pixels"),
    "array with NaN": (lambda tmp: np.full((10, 10), np.nan), "NaN"),
    "array of strings": (lambda tmp: np.full((10, 10), "a"), "numbers"),
    "huge image object": (lambda tmp: Image.new("1", (MAX_PIXELS + 1, 1)), "too large"),
}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_raises_image_error_saying_why(kind, tmp_path):
    make, message = BAD_INPUTS[kind]
    source = make(tmp_path)
    with pytest.raises(ImageError, match=message):
        load_image(source)
    with pytest.raises(ImageError, match=message):
        preprocess(make(tmp_path))


def _dust() -> np.ndarray:
    canvas = np.zeros((280, 280), dtype=np.uint8)
    for y, x in np.random.default_rng(2).integers(0, 277, (80, 2)):
        canvas[y : y + 3, x : x + 3] = 255
    return canvas


BLANKS = {
    "black canvas": lambda: Image.new("L", (280, 280), 0),
    "white canvas": lambda: Image.new("RGB", (280, 280), (255, 255, 255)),
    "transparent canvas": lambda: Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
    "photo of plain paper": lambda: paper_photo(None, seed=3),
    "a single dot": lambda: draw_digit(0, top_left=(140, 140), height=0, pen=15),
    "a speck": lambda: draw_digit(1, top_left=(140, 140), height=3, pen=3),
    "dust all over": lambda: _dust(),
    "constant array": lambda: np.full((50, 40), 0.3),
    "one pixel": lambda: np.ones((1, 1)),
}


@pytest.mark.parametrize("kind", BLANKS)
def test_no_digit_is_reported_not_guessed(kind):
    result = preprocess(BLANKS[kind]())
    assert not result.found and result.tensor is None
    assert result.steps["grayscale"].dtype == np.uint8  # still something to show


def test_a_faint_digit_on_the_same_paper_is_found(seven, reference):
    """The other side of the previous test: the blank photo was rejected for being blank, not for being a photo."""
    assert similarity(preprocess(paper_photo(seven, seed=3)).steps["28x28"], reference) > 0.9


@pytest.fixture(scope="module")
def unshadowed(seven) -> dict[int, np.ndarray]:
    """The 28x28 of the seven photographed in even light, by ink level."""
    return {level: preprocess(shadowed_photo(seven, 0.1, 0, level, shadow=0)).steps["28x28"] for level in (50, 160)}


@pytest.mark.parametrize("softness", [0.002, 0.03, 0.2])
@pytest.mark.parametrize("angle", [0, 35, 160])  # the seven in the shadow, across its edge, in the light
def test_an_edge_of_light_is_never_ink_and_a_faint_stroke_in_a_shadow_is_found(seven, unshadowed, softness, angle):
    assert not preprocess(shadowed_photo(None, softness, angle)).found
    for level, even in unshadowed.items():  # ballpoint, and pencil that a shadow makes as faint as paper texture
        result = preprocess(shadowed_photo(seven, softness, angle, level))
        assert len(result.digits) == 1
        shifts = itertools.product((-1, 0, 1), repeat=2)  # its centre of mass may round to the next pixel
        assert max(similarity(np.roll(result.steps["28x28"], shift, (0, 1)), even) for shift in shifts) > 0.9


@settings(deadline=None, max_examples=150)
@given(hnp.arrays(dtype=hnp.scalar_dtypes(), shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=40)))
def test_any_array_gives_a_digit_no_digit_or_image_error(array):
    try:
        result = preprocess(array)
    except ImageError as exc:
        assert str(exc)
        return
    for digit in result.digits:  # an image may hold several (a number), each its own model input
        assert digit.tensor.shape == (1, 28, 28) and digit.tensor.dtype == torch.float32
        assert torch.isfinite(digit.tensor).all()
        assert digit.tensor.min() >= -1 and digit.tensor.max() <= 1
    assert (result.tensor is not None) == (len(result.digits) == 1)


@settings(deadline=None, max_examples=100)
@given(
    hnp.arrays(
        dtype=hnp.floating_dtypes() | hnp.integer_dtypes() | hnp.unsigned_integer_dtypes(),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=64),
        elements={"allow_nan": False, "allow_infinity": False},
    )
)
def test_any_finite_image_array_is_read(array):
    """Finite 2-D arrays are images: no error at all, only a digit or no digit."""
    result = preprocess(array)
    assert result.tensor is None or bool(torch.isfinite(result.tensor).all())
