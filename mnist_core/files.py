"""Reading files that come from outside (regular files only, never more than a bound), and writing whole files.

A path a user gives can name a pipe (reading waits forever), a device (``/dev/zero``
never ends), a folder or a broken link. The file is opened without blocking and
checked with ``fstat`` on that open descriptor, so it cannot be swapped for another
between the check and the read; then at most ``limit`` bytes are read.

What the lab writes (checkpoints, MNIST's files, exports) appears whole or not at all,
so a killed process or a full disk never leaves a half file under the real name.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class FileRefused(ValueError):
    """The path cannot be read as a file of at most the allowed size (message says why)."""


def megabytes(size: int) -> str:
    return f"{size / 2**20:.3g} MB"


def read_bounded(path: str | os.PathLike, limit: int, keep_end: bool = False) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes; anything else raises ``FileRefused``.

    With ``keep_end``, a longer file is not refused: its last ``limit`` bytes are read (for logs).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise FileRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"cannot read {path}: not a regular file (a folder, device or pipe)")
        if info.st_size > limit and not keep_end:
            raise FileRefused(f"{path.name} is larger than {megabytes(limit)}")
        with os.fdopen(fd, "rb", closefd=False) as file:
            if info.st_size > limit:
                file.seek(info.st_size - limit)
            data = file.read(limit if keep_end else limit + 1)
    except OSError as exc:
        raise FileRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise FileRefused(f"{path.name} is larger than {megabytes(limit)}")
    return data


def write_atomically(path: Path, data: bytes, overwrite: bool = True) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    Without ``overwrite`` the file is linked instead, which raises ``FileExistsError``
    rather than replace a file that appeared meanwhile. The temporary name carries this
    process's id, so ``places.remove_stale`` can delete one left by a killed process.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; what the lab writes is meant to be shared
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
