"""Reading images from outside: paths, bytes, files, PIL images and arrays, all untrusted.

Every way an input can be unusable (missing, empty, not an image, damaged, a
decompression bomb, an array of the wrong shape) ends in one ``ImageError`` whose
message a user can act on; nothing else escapes.

Decoding is where a small file costs the most, so it has a budget: only the formats
the lab documents reach a decoder (an EPS renamed ``.png`` never reaches Ghostscript),
the memory the decoder will need is computed from the header and refused above
MAX_DECODED_BYTES, a JPEG with more scans than any camera writes is refused (each
progressive scan re-reads every coefficient, bench/RESULTS.md), and at
most two images decode at once, so many sessions uploading large pictures queue
instead of exhausting the server's memory.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from .files import FileRefused, megabytes, read_bounded

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")  # what the README and the Draw page accept
FORMAT_NAMES = "PNG, JPEG, GIF, BMP or WebP"
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; bigger is a decompression bomb, not a digit
MAX_BYTES = 20 * 1024 * 1024
MAX_DECODED_BYTES = 128 * 2**20  # one decode's peak: a 16-megapixel RGBA PNG, a 20-megapixel progressive JPEG
MAX_JPEG_SCANS = 100  # cameras write 1, progressive encoders about 10
_decoding = threading.BoundedSemaphore(2)  # decodes at once, server-wide: memory is at most twice the budget


class ImageError(ValueError):
    """The one documented error: the input cannot be used as an image (message says why, user-readable)."""


def _check_size(width: int, height: int) -> None:
    if width * height == 0:
        raise ImageError("the image has no pixels")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"the image is too large ({width}x{height} pixels; at most "
            f"{MAX_PIXELS // 1_000_000} megapixels are accepted)"
        )


def _read_bytes(source: ImageSource) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        try:
            data = read_bounded(source, MAX_BYTES)
        except FileRefused as exc:
            raise ImageError(str(exc)) from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read(MAX_BYTES + 1)
    else:
        raise ImageError(f"cannot read an image from a {type(source).__name__}")
    if not isinstance(data, bytes):
        raise ImageError("the file must be opened in binary mode ('rb')")
    if not data:
        raise ImageError("the file is empty")
    if len(data) > MAX_BYTES:
        raise ImageError(f"the file is larger than {megabytes(MAX_BYTES)}")
    return data


def _reducible_mode(image: Image.Image) -> str:
    """The mode ``Image.reduce`` needs: it cannot average palette, 1-bit or 16-bit pixels."""
    if image.mode == "P":
        return "RGBA" if "transparency" in image.info else "RGB"
    return {"1": "L"}.get(image.mode, "I" if image.mode.startswith("I;16") else image.mode)


def _decoding_bytes(image: Image.Image, full_size: tuple[int, int], reduce: bool) -> int:
    """Peak memory of decoding (and reducing) this image, from its header.

    Pillow keeps 1 byte per pixel for 1-band 8-bit images and 4 for the rest (2 for
    16-bit). A progressive JPEG also keeps every DCT coefficient (2 bytes per sample at
    full size, whatever ``draft`` asked for) until its last scan. Reducing may first
    convert the mode, and with transparency it averages a premultiplied copy.
    """
    width, height = image.size
    per_pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    needed = width * height * per_pixel
    if image.info.get("progressive"):
        needed += full_size[0] * full_size[1] * len(image.getbands()) * 2
    if reduce:
        mode = _reducible_mode(image)
        needed += width * height * ((1 if mode == "L" else 4) if mode != image.mode else 0)
        needed += width * height * 4 if "A" in mode else 0
    return needed


def _decode(data: bytes, max_side: int | None = None) -> Image.Image:
    """Open and decode untrusted bytes within the budget; only the first frame of an animation is used."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"the image is too large (at most {MAX_PIXELS // 1_000_000} megapixels are accepted)") from exc
    except Exception as exc:  # Pillow's format plugins fail in many ways on bytes that are not an image
        raise ImageError(f"the file is not an image that can be read ({FORMAT_NAMES})") from exc
    _check_size(*image.size)  # from the header alone, before any pixel is decoded
    full_size = image.size
    if image.format in ("JPEG", "MPO"):
        scans = data.count(b"\xff\xda")  # start-of-scan markers; entropy-coded data never contains one
        if scans > MAX_JPEG_SCANS:
            raise ImageError(f"the JPEG has {scans} scans; at most {MAX_JPEG_SCANS} are decoded")
        if max_side is not None:
            image.draft(image.mode, (max_side, max_side))
    # What reduce() divides by: at least max_side is kept on the longer side, and half of it on the shorter one.
    factor = min(max(image.size) // max_side, 2 * min(image.size) // max_side) if max_side is not None else 1
    needed = _decoding_bytes(image, full_size, factor >= 2)
    if needed > MAX_DECODED_BYTES:
        raise ImageError(
            f"the image is too large to decode ({full_size[0]}x{full_size[1]} {image.mode} needs "
            f"{megabytes(needed)}; at most {megabytes(MAX_DECODED_BYTES)})"
        )
    try:
        with _decoding:
            image.load()
            if factor >= 2:  # all later work at a reduced size; EXIF is kept
                mode = _reducible_mode(image)
                image = (image if mode == image.mode else image.convert(mode)).reduce(factor)
        upright = ImageOps.exif_transpose(image)  # phone photos are stored sideways with a rotation tag
        # Boxes around digits are given in the picture's own pixels, not the reduced decode's.
        upright.info["original_size"] = full_size if upright.size == image.size else full_size[::-1]
        return upright
    except Exception as exc:  # truncated or corrupt pixel data surfaces only here, as any of several errors
        raise ImageError(f"the image data is damaged or incomplete ({exc})") from exc


def from_array(array: np.ndarray) -> Image.Image:
    """An array as an 8-bit image. Values in [0, 1] are read as fractions (so booleans work), in
    [0, 255] as 8-bit, in [0, 65535] as 16-bit; anything else is stretched from its own min..max."""
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
        raise ImageError(f"an image array must have shape (H, W) or (H, W, 1|3|4), not {array.shape}")
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ImageError(f"an image array must hold numbers, not {array.dtype}")
    _check_size(array.shape[1], array.shape[0])
    if array.dtype != np.uint8:
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise ImageError("the image array contains NaN or infinite values")
        low, high = values.min(), values.max()
        if low >= 0 and high <= 1:
            values = values * 255
        elif low >= 0 and high <= 65535:
            values = values / 257 if high > 255 else values
        else:  # halved first, so that even float64's extremes stretch without overflowing
            span = high / 2 - low / 2
            values = (values / 2 - low / 2) / span * 255 if span > 0 else np.zeros_like(values)
        array = np.rint(values).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(array))


def load_image(source: ImageSource, max_side: int | None = None) -> Image.Image:
    """Decode a path, bytes, binary file, PIL image or numpy array into a PIL image.

    With ``max_side``, a JPEG is decoded at a reduced scale (Pillow's ``draft``: the
    decoder skips detail, 1/2 to 1/8) that still keeps at least ``max_side`` pixels on
    its longer side, so a 12-megapixel photo never exists in memory at full size; any
    other image is reduced (Pillow's ``reduce``, a box filter) right after decoding, keeping
    at least ``max_side`` on its longer side and half of it on its shorter one (a long
    number, written across a wide picture, keeps its digits' detail).

    Raises ImageError, with a message a user can act on, for anything that is not a
    usable image: missing or empty files, anything but a regular file (pipes, devices),
    formats other than FORMATS, damaged data, images over MAX_PIXELS or needing more than
    MAX_DECODED_BYTES to decode (both checked from the header, before decoding), JPEGs
    with more than MAX_JPEG_SCANS scans, and arrays of the wrong shape.
    """
    if isinstance(source, Image.Image):
        _check_size(*source.size)
        return source
    if isinstance(source, np.ndarray):
        return from_array(source)
    return _decode(_read_bytes(source), max_side)
