"""Reading images from outside: paths, bytes, files, PIL images and arrays, all untrusted.

Every way an input can be unusable (missing, empty, not an image, damaged, a
decompression bomb, an array of the wrong shape) ends in one ``ImageError`` whose
message a user can act on; nothing else escapes.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray

MAX_PIXELS = 40_000_000  # a 40-megapixel photo decodes to ~120 MB; bigger is a decompression bomb, not a digit
MAX_BYTES = 20 * 1024 * 1024


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
        path = Path(source)
        try:
            if path.stat().st_size > MAX_BYTES:
                raise ImageError(f"{path.name} is larger than {MAX_BYTES // 2**20} MB")
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from exc
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
        raise ImageError(f"the file is larger than {MAX_BYTES // 2**20} MB")
    return data


def _decode(data: bytes, max_side: int | None = None) -> Image.Image:
    """Open and decode untrusted bytes; only the first frame of an animation is used."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"the image is too large (at most {MAX_PIXELS // 1_000_000} megapixels are accepted)") from exc
    except Exception as exc:  # Pillow's format plugins fail in many ways on bytes that are not an image
        raise ImageError("the file is not an image that can be read (PNG, JPEG, GIF, BMP, TIFF, WebP, ...)") from exc
    _check_size(*image.size)  # from the header alone, before any pixel is decoded
    try:
        full_size = image.size
        if max_side is not None and image.format == "JPEG":
            image.draft(image.mode, (max_side, max_side))
        image.load()
        upright = ImageOps.exif_transpose(image)  # phone photos are stored sideways with a rotation tag
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
    its longer side, so a 12-megapixel photo never exists in memory at full size.

    Raises ImageError, with a message a user can act on, for anything that is not a
    usable image: missing or empty files, other file types, damaged data, images over
    MAX_PIXELS (checked from the header, before decoding) and arrays of the wrong shape.
    """
    if isinstance(source, Image.Image):
        _check_size(*source.size)
        return source
    if isinstance(source, np.ndarray):
        return from_array(source)
    return _decode(_read_bytes(source), max_side)
