"""Checkpoints: one ``.pt`` file per model that is plain data, never code.

A checkpoint is a dict of tensors, numbers and strings written with ``torch.save`` and
read with ``torch.load(weights_only=True)``, which refuses to unpickle anything else,
so a checkpoint found online cannot run code here. Every way a file can be wrong
ends in a ``CheckpointError`` whose message a user can act on.
"""

from __future__ import annotations

import os
import platform
import re
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch

from . import __version__
from .data import REPO_ROOT
from .model import CNN, ModelConfig
from .train import TrainConfig

CHECKPOINT_DIR = Path(os.environ.get("MNIST_CHECKPOINTS") or REPO_ROOT / "checkpoints")
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "default.pt"
FORMAT = "mnist_core.checkpoint/1"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class CheckpointError(ValueError):
    """The file is missing, not a checkpoint, damaged, or for another architecture."""


@dataclass
class Checkpoint:
    path: Path
    model: CNN  # in eval mode, on the CPU
    model_config: ModelConfig
    train_config: TrainConfig
    metrics: dict = field(default_factory=dict)  # e.g. test_accuracy, train_seconds
    history: list[dict] = field(default_factory=list)  # one dict per epoch, see train.Progress
    dataset_sha256: str = ""
    created: str = ""  # ISO 8601, UTC
    versions: dict = field(default_factory=dict)
    digit_score: dict | None = None  # optional: ood.DigitScore.to_dict(), for "not a digit"

    @property
    def name(self) -> str:
        return self.path.stem


def checkpoint_path(name: str, directory: Path | str = CHECKPOINT_DIR) -> Path:
    """The file for a user-typed run name, refusing names that could escape ``directory``."""
    name = name.removesuffix(".pt")
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise CheckpointError(
            f"invalid run name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return Path(directory) / f"{name}.pt"


def new_run_name(directory: Path | str = CHECKPOINT_DIR, taken: Collection[str] = ()) -> str:
    """``run-YYYYmmdd-HHMMSS``, with a suffix if a checkpoint file or one of ``taken`` has that name."""
    base = datetime.now().strftime("run-%Y%m%d-%H%M%S")
    name, n = base, 1
    while name in taken or (Path(directory) / f"{name}.pt").exists():
        n += 1
        name = f"{base}-{n}"
    return name


def save_checkpoint(
    path: Path | str,
    model: CNN,
    train_config: TrainConfig,
    metrics: dict,
    history: list[dict],
    dataset_sha256: str,
    overwrite: bool = False,
    digit_score: dict | None = None,
) -> Path:
    """Write atomically: a temporary file in the same folder, then a link or rename into place.

    Without ``overwrite`` an existing file is never replaced, even by a run that
    finishes at the same moment as another of the same name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": model.config.to_dict(),
        "train_config": train_config.to_dict(),
        "metrics": metrics,
        "history": history,
        "dataset_sha256": dataset_sha256,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"mnist_core": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
    }
    if digit_score is not None:
        payload["digit_score"] = digit_score
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is meant to be shared
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise CheckpointError(f"{path.name} already exists; choose another run name") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path | str = DEFAULT_CHECKPOINT) -> Checkpoint:
    """Read a checkpoint and rebuild its model; any problem raises ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here: pickle, zip, EOF, runtime errors
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: refused, the file contains Python objects, not just data (it may try to run code)"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or another format)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an mnist_core checkpoint")
    try:
        model_config = ModelConfig(**payload["model_config"])
        train_config = TrainConfig(**payload["train_config"])
        model = CNN(model_config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: its weights do not fit this architecture ({str(exc).splitlines()[0]})"
        ) from None
    return Checkpoint(
        path=path,
        model=model.eval(),
        model_config=model_config,
        train_config=train_config,
        metrics=payload.get("metrics", {}),
        history=payload.get("history", []),
        dataset_sha256=payload.get("dataset_sha256", ""),
        created=payload.get("created", ""),
        versions=payload.get("versions", {}),
        digit_score=payload.get("digit_score"),
    )


def scan_checkpoints(directory: Path | str = CHECKPOINT_DIR) -> tuple[list[Checkpoint], dict[str, str]]:
    """Every readable checkpoint in ``directory``, newest first, and file name -> why for each unreadable one.

    One pass for both, so the dashboard can list the good files and explain the bad ones
    without loading the folder twice.
    """
    good, bad = [], {}
    for path in sorted(Path(directory).glob("*.pt")):
        try:
            good.append(load_checkpoint(path))
        except CheckpointError as exc:
            bad[path.name] = str(exc)
    good.sort(key=lambda c: c.created, reverse=True)
    return good, bad


def list_checkpoints(directory: Path | str = CHECKPOINT_DIR) -> list[Checkpoint]:
    """Every readable checkpoint in ``directory``, newest first, with its metrics."""
    return scan_checkpoints(directory)[0]
