"""Where files live, and claiming a run's name before it trains.

Data and runs go under one home folder: ``$MNIST_HOME``; else the repository, when the
package runs from a source checkout (``data/`` and ``checkpoints/`` beside ``mnist_core/``);
else the per-user data folder of the platform. ``$MNIST_ROOT``, ``$MNIST_CHECKPOINTS`` and
``$MNIST_SAMPLES`` move one of the three on its own. Everything is read at call time, so tests and pages can
point the lab elsewhere. The default model ships inside the package, so a wheel installed
anywhere has one.

A run's name is reserved before training starts (a marker file created exclusively
next to the checkpoint), so two runs started in the same second, in two processes or
two sessions, never get the same name. Markers and half-written files carry their
process id; once that process is gone they are removed by the next save or scan.
"""

from __future__ import annotations

import os
import re
import stat
import time
from datetime import datetime
from importlib import resources
from pathlib import Path

import platformdirs

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the repository, when this is a source checkout
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_STALE_FILE = re.compile(r"\..+\.(?:(?P<pid>\d+)\.[^.]+\.partial|reserved)")


class CheckpointError(ValueError):
    """The file is missing, not a checkpoint, damaged, over budget, or for another architecture.

    Declared here rather than in ``checkpoints``, which imports this module, because naming
    and reserving a run's file can fail the same way.
    """


class NameTaken(CheckpointError):
    """The run name belongs to an existing checkpoint or to a run that is still going."""


def home() -> Path:
    """``$MNIST_HOME``, else the repository in a source checkout, else the user's data folder for this lab."""
    if os.environ.get("MNIST_HOME"):
        return Path(os.environ["MNIST_HOME"])
    if (SOURCE_ROOT / "pyproject.toml").is_file():
        return SOURCE_ROOT
    return platformdirs.user_data_path("mnist-lab")


def data_root() -> Path:
    """The data folder holding ``MNIST/raw``: ``$MNIST_ROOT``, else ``data/`` in ``home()``."""
    return Path(os.environ.get("MNIST_ROOT") or home() / "data")


def checkpoint_dir() -> Path:
    """Where runs are saved and listed: ``$MNIST_CHECKPOINTS``, else ``checkpoints/`` in ``home()``."""
    return Path(os.environ.get("MNIST_CHECKPOINTS") or home() / "checkpoints")


def samples_dir() -> Path:
    """Where users' sample sets live, one folder each: ``$MNIST_SAMPLES``, else ``samples/`` in ``home()``."""
    return Path(os.environ.get("MNIST_SAMPLES") or home() / "samples")


def shipped_model() -> Path:
    """The default model that is package data, installed with the package wherever it goes."""
    return Path(str(resources.files(__package__).joinpath("default.pt")))


def default_checkpoint() -> Path:
    """The model commands and pages use unless told otherwise.

    A ``default.pt`` in ``checkpoint_dir()`` (a model the user made the default) wins over
    the one shipped with the package.
    """
    own = checkpoint_dir() / "default.pt"
    return own if own.exists() else shipped_model()


def checkpoint_path(name: str, directory: Path | str | None = None) -> Path:
    """The file for a user-typed run name, refusing names that could escape ``directory``."""
    name = name.removesuffix(".pt")
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise CheckpointError(
            f"invalid run name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return Path(directory or checkpoint_dir()) / f"{name}.pt"


# --- reserving names -------------------------------------------------------------------------------------------


def process_alive(pid: object) -> bool:
    """Whether a process with this id runs on this machine (any value that is not a plausible pid: no)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _marker(path: Path) -> Path:
    return path.parent / f".{path.name}.reserved"


def _owner(marker: Path) -> int | None:
    """The pid written in a marker, or None while it is being written (or if it is garbage)."""
    try:
        text = marker.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def remove_stale(directory: Path) -> None:
    """Delete markers and half-written files left by processes that were killed."""
    try:
        names = [p for p in directory.iterdir() if p.name.startswith(".")]
    except OSError:
        return
    for path in names:
        found = _STALE_FILE.fullmatch(path.name)
        if found is None:
            continue
        pid = int(found["pid"]) if found["pid"] else _owner(path)
        try:
            if pid is None:  # a marker still empty: stale only if it stayed empty
                if time.time() - path.stat().st_mtime < 60:
                    continue
            elif process_alive(pid):
                continue
            path.unlink()
        except OSError:
            continue


def check_target(path: Path, overwrite: bool) -> None:
    """Raise ``NameTaken`` if ``path`` exists (unless ``overwrite``), ``CheckpointError`` if it is not a file."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CheckpointError(f"cannot use {path}: {exc.strerror}") from None
    if not overwrite:
        raise NameTaken(f"{path.stem} is already taken: {path.name} already exists; choose another run name")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        raise CheckpointError(f"{path} is not a regular file; it will not be replaced by a checkpoint")


def reserve(path: Path | str, overwrite: bool = False) -> Path:
    """Claim ``path`` for one run, atomically: raises ``NameTaken`` if a checkpoint (unless ``overwrite``)
    or another live run has it, ``CheckpointError`` if its folder cannot be written. Undo with ``release``."""
    path = Path(path)
    check_target(path, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the folder {path.parent}: {exc.strerror}") from None
    remove_stale(path.parent)
    try:
        fd = os.open(_marker(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise NameTaken(f"{path.stem} is already taken by a run in progress; choose another run name") from None
    except OSError as exc:
        raise CheckpointError(f"cannot write in {path.parent}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w") as marker:
            marker.write(str(os.getpid()))
    except OSError as exc:  # a full disk: an empty marker left behind would hold the name for a minute
        _marker(path).unlink(missing_ok=True)
        raise CheckpointError(f"cannot write in {path.parent}: {exc.strerror}") from None
    try:
        check_target(path, overwrite)  # a file that appeared between the first check and the marker
    except CheckpointError:
        release(path)
        raise
    return path


def reserve_new_run(directory: Path | str | None = None, prefix: str = "run") -> Path:
    """A fresh ``<prefix>-YYYYmmdd-HHMMSS[-n].pt`` in ``directory``, reserved (see ``reserve``)."""
    directory = Path(directory or checkpoint_dir())
    base = datetime.now().strftime(f"{prefix}-%Y%m%d-%H%M%S")
    n = 1
    while True:
        try:
            return reserve(directory / (f"{base}.pt" if n == 1 else f"{base}-{n}.pt"))
        except NameTaken:
            n += 1


def release(path: Path | str) -> None:
    """Give up this process's reservation of ``path`` (nothing happens if it holds none)."""
    marker = _marker(Path(path))
    if _owner(marker) == os.getpid():
        marker.unlink(missing_ok=True)
