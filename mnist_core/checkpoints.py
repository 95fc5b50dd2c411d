"""Checkpoints: one ``.pt`` file per model that is plain data, never code, and never more than a budget.

A checkpoint is a dict of tensors, numbers and strings written with ``torch.save`` and
read with ``torch.load(weights_only=True)``, which refuses to unpickle anything else,
so a checkpoint found online cannot run code here. A file is also a resource claim:
before any tensor is built its size, its unpacked size and its architecture are held
to what this lab trains, so a few kilobytes cannot ask for gigabytes. Every way a
file can be wrong ends in a ``CheckpointError`` whose message a user can act on.
Where checkpoints live and how a run claims its name is ``places``.
"""

from __future__ import annotations

import hashlib
import io
import math
import platform
import reprlib
import shutil
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .files import FileRefused, megabytes, read_bounded, write_atomically
from .model import CNN, ModelConfig
from .places import CheckpointError, NameTaken, check_target, checkpoint_dir, default_checkpoint, remove_stale
from .settings import declared
from .train import TrainConfig

FORMAT = "mnist_core.checkpoint/1"
# The best preset has 1.8 M parameters; the largest model ModelConfig allows has 14.5 M.
MAX_PARAMETERS = 16_000_000
# float32 weights of the largest model, plus room for metadata (per-epoch history and the like).
MAX_CHECKPOINT_BYTES = 4 * MAX_PARAMETERS + 32 * 2**20
MAX_ARCHIVE_ENTRIES = 10_000


@dataclass(frozen=True)  # shared between dashboard sessions: nobody may change it under another's feet
class Checkpoint:
    path: Path
    model: CNN  # in eval mode, on the CPU, weights finite
    model_config: ModelConfig
    train_config: TrainConfig
    metrics: dict = field(default_factory=dict)  # e.g. test_accuracy, train_seconds: as recorded, not recomputed
    history: list[dict] = field(default_factory=list)  # one dict per epoch, see train.Progress
    dataset_sha256: str = ""
    created: str = ""  # ISO 8601, UTC, or "" when unknown
    versions: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)  # e.g. a sweep's {"study": name, "trial": number}
    watch: dict = field(default_factory=dict)  # optional: the watched images of watch.WatchPanel.to_payload
    digit_score: dict | None = None  # optional: ood.DigitScore.to_dict(), for "not a digit"
    # Of the file's bytes: what names the model in a cache. A copy of the file is the same model and is not
    # measured again; a file trained again under the same name is another.
    sha256: str = ""

    @property
    def name(self) -> str:
        return self.path.stem


def parameter_count(config: ModelConfig) -> int:
    """Parameters of the model ``config`` describes, counted on the meta device: no memory is allocated."""
    with torch.device("meta"):
        return CNN(config).num_parameters


# --- writing ---------------------------------------------------------------------------------------------------


def save_checkpoint(
    path: Path | str,
    model: CNN,
    train_config: TrainConfig,
    metrics: dict,
    history: list[dict],
    dataset_sha256: str,
    overwrite: bool = False,
    tags: dict | None = None,
    watch: dict | None = None,
    digit_score: dict | None = None,
) -> Path:
    """Write atomically: a temporary file in the same folder, then a link or rename into place.

    Without ``overwrite`` an existing file is never replaced, even by a run that
    finishes at the same moment as another of the same name. A model whose weights
    are not finite (training diverged) is refused: it could only ever predict noise.
    ``tags`` (a sweep's study and trial), ``watch`` (the panel whose per-epoch predictions
    are in ``history``) and ``digit_score`` (``ood.DigitScore.to_dict``) are optional; files
    without them still load.
    """
    path = Path(path)
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if not all(torch.isfinite(v).all() for v in state_dict.values() if v.is_floating_point()):
        raise CheckpointError("the weights became NaN or infinite (training diverged; try a lower learning rate)")
    check_target(path, overwrite)
    payload = {
        "format": FORMAT,
        "state_dict": state_dict,
        "model_config": model.config.to_dict(),
        "train_config": train_config.to_dict(),
        "metrics": metrics,
        "history": history,
        "dataset_sha256": dataset_sha256,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"mnist_core": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
        **({"tags": tags} if tags else {}),
        **({"watch": watch} if watch else {}),
        **({"digit_score": digit_score} if digit_score is not None else {}),
    }
    return _write(path, payload, overwrite)


def store_digit_score(path: Path | str, digit_score: dict) -> Path:
    """Replace a checkpoint's ``digit_score`` (``ood.DigitScore.to_dict``), keeping every other field as it is.

    For a score fitted again after the way it is computed changed: the weights, metrics,
    history and creation date stay those of the run that made them.
    """
    path = Path(path)
    channels = load_checkpoint(path).model_config.conv2_channels  # a damaged file is refused, not rewritten
    _digit_score(digit_score, channels)
    payload = _payload(path.read_bytes())
    return _write(path, {**payload, "digit_score": digit_score}, overwrite=True)


def _write(path: Path, payload: dict, overwrite: bool) -> Path:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        return write_atomically(path, buffer.getvalue(), overwrite)
    except FileExistsError:
        raise NameTaken(f"{path.stem} is already taken: {path.name} already exists; choose another run name") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CheckpointError(f"could not write {path}: {reason}") from None


def check_free_space(path: Path | str, model_config: ModelConfig) -> None:
    """Refuse before training, not after, when the folder cannot hold the checkpoint."""
    needed = 4 * parameter_count(model_config) + 2**20
    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        return  # the folder does not exist yet: reserve() creates it, and saving reports any failure
    if free < needed:
        raise CheckpointError(f"not enough disk space in {Path(path).parent}: {megabytes(needed)} needed")


# --- reading ---------------------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _config(cls: type, value: object, what: str) -> Any:
    """A ModelConfig or TrainConfig from a checkpoint's dict, each value checked as its setting declares."""
    if not isinstance(value, dict):
        raise CheckpointError(f"{what} is a {type(value).__name__}, not a dict")
    names = {s.name for s in declared(cls)}
    for key in value:
        if key not in names:
            raise CheckpointError(f"its weights do not fit this architecture (unknown {what} setting {key!r})")
    try:
        return cls(**value)
    except ValueError as exc:
        raise CheckpointError(f"{what}: {exc}") from None


# Metadata a page shows: each known key's check. Unknown keys are kept and never read here, so
# later versions can add their own (a history dict with per-epoch predictions, a sweep tag...).
_FRACTION = (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
_COUNT = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a whole number >= 0")
_AMOUNT = (lambda v: _is_number(v) and v >= 0, "a number >= 0")
_NUMBER_OR_NONE = (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)), "a number")
METRIC_CHECKS = {
    "test_accuracy": _FRACTION,
    "val_accuracy": _FRACTION,
    "test_errors": _COUNT,
    "train_seconds": _AMOUNT,
    "parameters": _COUNT,
    "device": (lambda v: isinstance(v, str) and 0 < len(v) <= 100, "a device name"),
    "cpu_cores": _COUNT,
}
TAG_CHECKS = {"study": (lambda v: isinstance(v, str), "text"), "trial": _COUNT}
HISTORY_CHECKS = {
    "epoch": _COUNT,
    "epochs": _COUNT,
    "batch": _COUNT,
    "batches": _COUNT,
    "loss": _NUMBER_OR_NONE,  # a diverged epoch's loss is NaN, and the history says so
    "accuracy": _NUMBER_OR_NONE,
    "val_loss": _NUMBER_OR_NONE,
    "val_accuracy": _NUMBER_OR_NONE,
    "train_loss": _NUMBER_OR_NONE,
    "train_accuracy": _NUMBER_OR_NONE,
}
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")  # what Compare draws of each epoch


def field_problem(mapping: object, checks: dict, what: str) -> str | None:
    """What is wrong with a dict of metadata under ``checks`` (e.g. METRIC_CHECKS), or None if nothing."""
    if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping):
        return f"{what} must map names to values"
    for key, (ok, meaning) in checks.items():
        if key in mapping and not ok(mapping[key]):
            return f"{what}[{key!r}] must be {meaning}, not {reprlib.repr(mapping[key])}"
    return None


def _checked(mapping: object, checks: dict, what: str) -> dict:
    problem = field_problem(mapping, checks, what)
    if problem:
        raise CheckpointError(problem)
    assert isinstance(mapping, dict)
    return mapping


def _created(value: object) -> str:
    """The creation time as UTC ISO 8601 (a time without a zone is read as UTC), or "" if unknown."""
    if value == "":
        return ""
    if not isinstance(value, str) or len(value) > 64:
        raise CheckpointError("its creation time is not a date")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CheckpointError(f"its creation time {value!r} is not an ISO 8601 date") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")


def _history(value: object, watched: int) -> list[dict]:
    """The per-epoch history, each epoch with its number and every curve a page draws (None where not recorded).

    ``watch``, an epoch's predictions for the ``watched`` images of the replay panel, must be
    one row of 10 probabilities per image, or None; without a panel it is never read.
    """
    if not isinstance(value, list):
        raise CheckpointError("history must be a list of epochs")
    epochs = []
    for number, epoch in enumerate(value, start=1):
        what = f"history epoch {number}"
        _checked(epoch, HISTORY_CHECKS, what)
        if "epoch" not in epoch:
            raise CheckpointError(f"{what} has no 'epoch' number")
        predictions = epoch.get("watch")
        if watched and predictions is not None and not _probabilities(predictions, watched):
            raise CheckpointError(f"{what}: watch must hold 10 probabilities for each of the {watched} watched images")
        epochs.append({**dict.fromkeys(CURVES), **epoch})
    return epochs


def _probabilities(rows: object, count: int) -> bool:
    return (
        isinstance(rows, list)
        and len(rows) == count
        and all(isinstance(row, list) and len(row) == 10 and all(_FRACTION[0](p) for p in row) for row in rows)
    )


def _watch_panel(value: object) -> dict:
    """The replay panel (``watch.WatchPanel.to_payload``): up to 64 images of 28x28 bytes and their labels."""
    if value == {}:
        return {}
    images = value.get("images") if isinstance(value, dict) else None
    labels = value.get("labels") if isinstance(value, dict) else None
    if not (
        isinstance(images, torch.Tensor)
        and images.dtype == torch.uint8
        and images.ndim == 3
        and tuple(images.shape[1:]) == (28, 28)
        and len(images) <= 64
        and isinstance(labels, list)
        and len(labels) == len(images)
        and all(isinstance(label, int) and -1 <= label <= 9 for label in labels)
    ):
        raise CheckpointError("watch must hold up to 64 images of 28x28 bytes and a digit (or -1) for each")
    return {"images": images, "labels": labels}


def _digit_score(value: object, channels: int) -> dict | None:
    """The "not a digit" statistics (``ood.DigitScore.to_dict``): finite tensors of matching shapes and a threshold.

    A score saved before it had nearest neighbours (class means, precision and threshold
    only) is dropped, so the current score is fitted on demand instead.
    """
    if value is None or (isinstance(value, dict) and set(value) == {"means", "precision", "threshold"}):
        return None
    problem = CheckpointError("digit_score must hold finite class means, reference digits, scales and a threshold")
    if not isinstance(value, dict) or not _is_number(value.get("threshold")):
        raise problem
    tensors = {k: value.get(k) for k in ("means", "precision", "channels", "centre", "axes", "layouts", "scale")}
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() in (1, 2) for t in tensors.values()):
        raise problem
    references, axes = value["layouts"].shape[0], value["axes"].shape[-1]
    expected = {
        "means": (10, channels),
        "precision": (channels, channels),
        "channels": (references, channels),
        "centre": (channels * 7 * 7,),
        "axes": (channels * 7 * 7, axes),
        "layouts": (references, axes),
        "scale": (3, 2),
    }
    if not all(
        tuple(value[k].shape) == shape and bool(torch.isfinite(value[k]).all()) for k, shape in expected.items()
    ):
        raise problem
    return {**tensors, "threshold": value["threshold"]}


def _weights(state_dict: object, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict, if it has exactly the expected tensors (names, shapes, kinds) and they are finite."""
    if not isinstance(state_dict, dict) or set(state_dict) != set(expected):
        names = set(state_dict) if isinstance(state_dict, dict) else set()
        difference = sorted(map(str, names ^ set(expected)))[:3]
        raise CheckpointError(f"its weights do not fit this architecture (differing tensors: {difference})")
    for name, want in expected.items():
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor) or tensor.shape != want.shape:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(
                f"its weights do not fit this architecture ({name}: {shape}, not {tuple(want.shape)})"
            )
        if tensor.is_floating_point() != want.is_floating_point() or tensor.is_complex():
            raise CheckpointError(f"its weights do not fit this architecture ({name} holds {tensor.dtype})")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"its weights contain NaN or infinite values ({name}); it cannot predict anything")
    return state_dict


def _payload(data: bytes) -> dict:
    """Unpickle tensors and plain data only, after checking the archive would unpack within the budget."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise CheckpointError("not a readable checkpoint (truncated or another format)") from None
    unpacked = sum(entry.file_size for entry in entries)
    if len(entries) > MAX_ARCHIVE_ENTRIES or unpacked > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"refused: it would unpack to {megabytes(unpacked)} in {len(entries)} parts "
            f"(the budget is {megabytes(MAX_CHECKPOINT_BYTES)})"
        )
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here: pickle, zip, EOF, runtime errors
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                "refused, the file contains Python objects, not just data (it may try to run code)"
            ) from None
        raise CheckpointError("not a readable checkpoint (truncated or another format)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError("not an mnist_core checkpoint")
    return payload


def _load(path: Path) -> Checkpoint:
    if not path.exists():
        raise CheckpointError("no such checkpoint file" + (" (a broken link)" if path.is_symlink() else ""))
    try:
        data = read_bounded(path, MAX_CHECKPOINT_BYTES)
    except FileRefused as exc:
        raise CheckpointError(str(exc).removeprefix(f"cannot read {path}: ")) from None
    if not data:
        raise CheckpointError("the file is empty")
    payload = _payload(data)
    model_config = _config(ModelConfig, payload.get("model_config"), "model_config")
    train_config = _config(TrainConfig, payload.get("train_config"), "train_config")
    parameters = parameter_count(model_config)
    if parameters > MAX_PARAMETERS:
        raise CheckpointError(f"refused: {parameters:,} parameters, over this lab's budget of {MAX_PARAMETERS:,}")
    with torch.device("meta"):
        expected = CNN(model_config).state_dict()
    state_dict = _weights(payload.get("state_dict"), expected)
    metrics = _checked(payload.get("metrics", {}), METRIC_CHECKS, "metrics")
    watch = _watch_panel(payload.get("watch", {}))
    history = _history(payload.get("history", []), len(watch["labels"]) if watch else 0)
    if not history or not all(epoch.get("watch") is not None for epoch in history):
        watch = {}  # a replay needs every epoch's predictions: without them there is nothing to replay
    dataset_sha256, versions = payload.get("dataset_sha256", ""), payload.get("versions", {})
    if not isinstance(dataset_sha256, str):
        raise CheckpointError("dataset_sha256 must be text")
    if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
        raise CheckpointError("versions must map names to text")

    model = CNN(model_config)
    model.load_state_dict(state_dict)
    model.eval()
    with torch.inference_mode():  # finite weights can still overflow: try black, grey and white images
        probe = model(torch.linspace(-1, 1, 3).view(3, 1, 1, 1).expand(3, 1, 28, 28))
    if not torch.isfinite(probe).all():
        raise CheckpointError("its weights overflow (the model outputs infinite values); it cannot predict anything")
    return Checkpoint(
        path=path,
        model=model,
        model_config=model_config,
        train_config=train_config,
        metrics=metrics,
        history=history,
        dataset_sha256=dataset_sha256,
        created=_created(payload.get("created", "")),
        versions=versions,
        tags=_checked(payload.get("tags", {}), TAG_CHECKS, "tags"),
        watch=watch,
        digit_score=_digit_score(payload.get("digit_score"), model_config.conv2_channels),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def load_checkpoint(path: Path | str | None = None) -> Checkpoint:
    """Read a checkpoint (default: ``default_checkpoint()``) and rebuild its model.

    Any problem raises ``CheckpointError``: missing, not a regular file, over
    MAX_CHECKPOINT_BYTES (packed or unpacked), code inside, metadata of the wrong types,
    another or an over-budget architecture (checked before any tensor is built),
    weights that are not finite.
    """
    path = Path(path or default_checkpoint())
    try:
        return _load(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


# --- listing ---------------------------------------------------------------------------------------------------

_scan_lock = threading.Lock()
# folder -> file name -> (the file's stat signature, its Checkpoint or why it is unreadable)
_scanned: dict[str, dict[str, tuple[tuple, Checkpoint | str]]] = {}
_SCANNED_FOLDERS = 8


def scan_checkpoints(
    directory: Path | str | None = None, also: Path | None = None
) -> tuple[list[Checkpoint], dict[str, str]]:
    """Every readable checkpoint in ``directory``, newest first, and file name -> why for each unreadable one.

    ``also`` is one more file to list from elsewhere (the default model that ships with the
    package), unless the folder has a file of its name.

    Only files that changed since the last scan of that folder (modification time,
    size, inode) are read again, so listing the folder after each training run costs
    one load, and unchanged checkpoints stay the same objects. One bad file, whatever
    is wrong with it, is reported on its own line and never stops the scan.
    """
    folder = Path(directory or checkpoint_dir())
    with _scan_lock:
        remove_stale(folder)
        previous = _scanned.pop(str(folder.absolute()), {})
        current: dict[str, tuple[tuple, Checkpoint | str]] = {}
        paths = sorted(folder.glob("*.pt"))
        if also is not None and not (folder / also.name).exists():
            paths.append(also)
        for path in paths:
            try:
                info = path.stat()
            except OSError as exc:
                current[path.name] = ((), f"{path}: cannot read ({exc.strerror}; a broken link?)")
                continue
            signature = (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev)
            if path.name in previous and previous[path.name][0] == signature:
                current[path.name] = previous[path.name]
                continue
            try:
                current[path.name] = (signature, load_checkpoint(path))
            except Exception as exc:  # CheckpointError, or anything unforeseen: this file only, never the scan
                current[path.name] = (signature, str(exc) if isinstance(exc, CheckpointError) else f"{path}: {exc!r}")
        _scanned[str(folder.absolute())] = current
        while len(_scanned) > _SCANNED_FOLDERS:
            del _scanned[next(iter(_scanned))]
    good = [result for _, result in current.values() if isinstance(result, Checkpoint)]
    bad = {name: result for name, (_, result) in current.items() if isinstance(result, str)}
    good.sort(key=lambda c: (c.created, c.name), reverse=True)
    return good, bad


def list_checkpoints(directory: Path | str | None = None) -> list[Checkpoint]:
    """Every readable checkpoint in ``directory``, newest first, with its metrics."""
    return scan_checkpoints(directory)[0]
