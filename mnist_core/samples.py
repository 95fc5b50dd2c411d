"""A user's own digits: sample sets kept as plain folders, one sub-folder per digit, PNG files.

``samples/<set>/<digit>/<name>.png`` is the layout ``torchvision.datasets.ImageFolder``
reads, so a set can be filled by hand, copied or zipped with any tool. Each file is the
28x28 the model saw (ink white on black); the picture it was cut from, when there is one,
is kept as ``samples/.crops/<set>/<name>.png``, outside the set so that ImageFolder never
mistakes it for a digit. Names are a time, this process's id and a random part, and every
file is written whole under its final name (``files.write_atomically``, never replacing),
so two sessions saving at the same moment both keep their sample.

A set is read as untrusted: a file that is not an image, a decompression bomb, a folder
named other than 0-9 or a zip entry that tries to climb out of its folder costs that file,
with a message, never the set.
"""

from __future__ import annotations

import io
import os
import secrets
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import normalize
from .files import FileRefused, megabytes, read_bounded, write_atomically
from .images import MAX_BYTES, ImageError, load_image
from .places import NAME_PATTERN, samples_dir
from .preprocess import SIZE, preprocess

DEFAULT_SET = "mine"
DIGITS = tuple(str(d) for d in range(10))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")  # images.FORMATS, as file names end
CROPS = ".crops"
MAX_SAMPLES = 10_000  # a set is read whole into memory for training: 10,000 28x28s are 31 MB as float32
MAX_ZIP_BYTES = 64 * 2**20


class SampleError(ValueError):
    """A set name, digit or sample that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Sample:
    """One saved digit: its file (``<set>/<digit>/<name>.png``) and the digit it is labelled."""

    path: Path
    digit: int

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def crop(self) -> Path:
        """Where the picture this digit was cut from is kept, if it was saved with one."""
        set_dir = self.path.parent.parent
        return set_dir.parent / CROPS / set_dir.name / f"{self.name}.png"


@dataclass
class SampleSet:
    """A set read for training or display: the model inputs (N, 1, 28, 28) in [-1, 1], their labels, their files,
    and one message per file that was skipped."""

    images: torch.Tensor
    labels: torch.Tensor
    samples: list[Sample]
    skipped: list[str]

    def __len__(self) -> int:
        return len(self.samples)

    def counts(self) -> list[int]:
        """Samples per digit, 0 to 9."""
        return torch.bincount(self.labels, minlength=10).tolist()


def set_dir(name: str, root: Path | str | None = None) -> Path:
    """The folder of the set called ``name`` (user-typed, so checked like a run name) under ``samples_dir()``."""
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise SampleError(
            f"invalid set name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return Path(root or samples_dir()) / name


def list_sets(root: Path | str | None = None) -> list[str]:
    """The names of the sets under ``root`` (default ``samples_dir()``), sorted."""
    try:
        entries = list(Path(root or samples_dir()).iterdir())
    except OSError:
        return []
    return sorted(e.name for e in entries if e.is_dir() and NAME_PATTERN.fullmatch(e.name))


def _check_digit(digit: int) -> int:
    if isinstance(digit, bool) or not isinstance(digit, (int, np.integer)) or not 0 <= digit <= 9:
        raise SampleError(f"a sample's digit must be 0-9, not {digit!r}")
    return int(digit)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _new_name() -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}-{secrets.token_hex(4)}"


def save_sample(directory: Path, digit: int, pixels: np.ndarray, crop: np.ndarray | None = None) -> Sample:
    """Add one digit to the set in ``directory``: ``pixels``, the 28x28 uint8 the model saw (ink white on
    black), and optionally ``crop``, the piece of the picture it was made from. Never replaces a file."""
    digit = _check_digit(digit)
    if pixels.shape != (SIZE, SIZE):
        raise SampleError(f"a sample is the {SIZE}x{SIZE} the model saw, not {pixels.shape}")
    path = Path(directory) / str(digit) / f"{_new_name()}.png"
    sample = Sample(path, digit)
    if crop is not None and crop.size:  # first, so that a listed sample's crop is already there
        write_atomically(sample.crop, _png(crop), overwrite=False)
    write_atomically(path, _png(pixels), overwrite=False)
    return sample


def _model_input(data: bytes | Path) -> np.ndarray:
    """A file's image as the 28x28 the model reads: as it is when it already is one (grayscale, as saved here;
    dark ink on light paper is turned over), else read by ``preprocess`` like any picture, which must find
    exactly one digit."""
    image = load_image(data)
    if image.size == (SIZE, SIZE) and image.mode in ("L", "1", "P"):
        pixels = np.asarray(image.convert("L"))
        return 255 - pixels if pixels.mean() > 127 else pixels
    found = preprocess(image)
    if len(found.digits) != 1:
        raise ImageError("no digit found" if not found.digits else f"{len(found.digits)} digits, not one")
    return found.digits[0].steps["28x28"]


def read_set(directory: Path | str) -> SampleSet:
    """Every readable sample of the set in ``directory`` (digit folders in order, files by name), and why any
    file or folder was skipped. A missing set is an empty one."""
    directory = Path(directory)
    pixels: list[np.ndarray] = []
    labels: list[int] = []
    samples: list[Sample] = []
    skipped: list[str] = []
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        entries = []
    except OSError as exc:
        entries, skipped = [], [f"{directory.name}: cannot be read ({exc.strerror or exc})"]
    for folder in entries:
        if folder.name.startswith("."):
            continue
        if folder.name not in DIGITS or not folder.is_dir():
            skipped.append(f"{folder.name}: not a digit's folder (0-9)")
            continue
        for file in sorted(folder.iterdir()):
            where = f"{folder.name}/{file.name}"
            if file.name.startswith("."):  # a write still under way, or left by a killed process
                continue
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(f"{where}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
                continue
            if len(samples) >= MAX_SAMPLES:
                skipped.append(f"{where}: the set already has {MAX_SAMPLES:,} samples; the rest are not read")
                return _set(pixels, labels, samples, skipped)
            try:
                pixels.append(_model_input(file))
            except ImageError as exc:
                skipped.append(f"{where}: {exc}")
                continue
            labels.append(int(folder.name))
            samples.append(Sample(file, int(folder.name)))
    return _set(pixels, labels, samples, skipped)


def _set(pixels: list[np.ndarray], labels: list[int], samples: list[Sample], skipped: list[str]) -> SampleSet:
    images = normalize(torch.from_numpy(np.stack(pixels))) if pixels else torch.empty(0, 1, SIZE, SIZE)
    return SampleSet(images, torch.tensor(labels, dtype=torch.int64), samples, skipped)


def relabel(sample: Sample, digit: int) -> Sample:
    """Move a sample to another digit's folder (a rename: it is in one folder or the other, never both)."""
    digit = _check_digit(digit)
    target = sample.path.parent.parent / str(digit) / sample.path.name
    if target == sample.path:
        return sample
    target.parent.mkdir(exist_ok=True)
    if target.exists():
        raise SampleError(f"{target.parent.name}/{target.name} already exists")
    try:
        sample.path.rename(target)
    except FileNotFoundError:
        raise SampleError(f"{sample.name} is gone (deleted in another session?)") from None
    return Sample(target, digit)


def delete(sample: Sample) -> None:
    """Remove a sample and its crop; one already gone is not an error (another session deleted it)."""
    sample.path.unlink(missing_ok=True)
    sample.crop.unlink(missing_ok=True)


# --- zip files -------------------------------------------------------------------------------------------------


def export_zip(directory: Path | str) -> bytes:
    """The set as a zip of ``<set>/<digit>/<name>.png``: the layout it is kept in, readable by ``import_zip``."""
    directory = Path(directory)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for sample in read_set(directory).samples:
            archive.writestr(f"{directory.name}/{sample.digit}/{sample.path.name}", sample.path.read_bytes())
    return buffer.getvalue()


def _digit_of(member: str) -> int | None:
    """The digit an archive member is filed under (its folder's name), or None where it is not ``[...]/d/file``
    or its name could climb out of a folder (``..``, an absolute path, a drive, a backslash)."""
    parts = member.split("/")
    if member.startswith("/") or "\\" in member or ":" in parts[0] or ".." in parts or len(parts) < 2:
        return None
    return int(parts[-2]) if parts[-2] in DIGITS else None


def import_zip(source: bytes | Path, directory: Path | str) -> tuple[list[Sample], list[str]]:
    """Add every digit image of a zip to the set in ``directory``, under new names; return the samples added
    and one message per entry skipped. Nothing is extracted by its own name: each entry is read (at most
    ``images.MAX_BYTES``), decoded within ``images``' budget and saved like any other sample."""
    try:
        data = source if isinstance(source, bytes) else read_bounded(source, MAX_ZIP_BYTES)
    except FileRefused as exc:
        raise SampleError(str(exc)) from None
    if len(data) > MAX_ZIP_BYTES:
        raise SampleError(f"the zip file is larger than {megabytes(MAX_ZIP_BYTES)}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SampleError(f"not a zip file that can be read ({exc})") from None
    added: list[Sample] = []
    skipped: list[str] = []
    for info in members:
        name = info.filename
        if info.is_dir() or Path(name).name.startswith(".") or "__MACOSX" in name.split("/"):
            continue
        digit = _digit_of(name)
        if digit is None:
            skipped.append(f"{name}: not in a digit's folder (0-9)")
            continue
        if len(added) >= MAX_SAMPLES:
            skipped.append(f"{name}: {MAX_SAMPLES:,} samples were already added; the rest are not")
            break
        try:
            if info.file_size > MAX_BYTES:
                raise ImageError(f"larger than {megabytes(MAX_BYTES)}")
            with archive.open(info) as member:
                content = member.read(MAX_BYTES + 1)  # what the header says is not trusted
            if len(content) > MAX_BYTES:
                raise ImageError(f"larger than {megabytes(MAX_BYTES)}")
            pixels = _model_input(content)
        except ImageError as exc:
            skipped.append(f"{name}: {exc}")
            continue
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError) as exc:  # damaged or encrypted
            skipped.append(f"{name}: cannot be read from the zip ({exc})")
            continue
        added.append(save_sample(Path(directory), digit, pixels))
    return added, skipped
