"""Optuna's journal file, read with care: a torn tail set aside, a foreign file refused, viewers that never write.

A journal is one JSON object per line, appended under a lock. A full disk or a killed
writer can cut the last line; the next append then glues a whole line to the cut one
and Optuna's reader raises ``JSONDecodeError`` on every later open. ``open_journal``
(for a sweep, which writes) moves such a tail aside to ``<journal>.torn`` and keeps
every line before it; ``read_journal`` (for a page, which only looks) stops at the
first bad line, never creates the file, and keeps one storage per file, so each
rerun reads only the lines appended since the last one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend, JournalFileSymlinkLock
from optuna.storages.journal._file import get_lock_file

TORN_SUFFIX = ".torn"
_log = logging.getLogger(__name__)


class JournalError(ValueError):
    """The file is no journal this Optuna can read (another program's file, another Optuna version's journal)."""


def _complete_lines(data: bytes) -> Iterator[tuple[int, dict]]:
    """Each whole, well-formed line's length and object, up to the first line that is cut or not a JSON object."""
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            return
        try:
            log = json.loads(line)
        except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
            return
        if not isinstance(log, dict):
            return
        yield len(line), log


def _replay(backend: BaseJournalBackend, path: Path) -> JournalStorage:
    try:
        return JournalStorage(backend)
    except (AssertionError, KeyError, TypeError, ValueError, AttributeError):  # op codes or fields this Optuna lacks
        raise JournalError(
            f"{path} is not a journal Optuna {optuna.__version__} can read (another version's, or another file)"
        ) from None


def repair(path: Path) -> Path | None:
    """Move a torn tail (the first cut or malformed line and all after it) to ``<path>.torn``; return that file.

    Done under the journal's own lock, so no worker appends meanwhile. A file whose
    very first line is bad is no journal at all: refused, left as it is.
    """
    with get_lock_file(JournalFileSymlinkLock(str(path))):
        data = path.read_bytes()
        kept = sum(length for length, _ in _complete_lines(data))
        if kept == len(data):
            return None
        if kept == 0:
            raise JournalError(f"{path} is not an Optuna journal (its first line is not one)")
        torn = path.with_name(path.name + TORN_SUFFIX)
        with torn.open("ab") as out:
            out.write(data[kept:])
        os.truncate(path, kept)
        return torn


def open_journal(path: Path) -> JournalStorage:
    """The journal at ``path`` for a sweep to write to: created if missing, a torn tail repaired first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and (torn := repair(path)) is not None:
        _log.warning("the end of %s was torn: moved aside to %s; the trials before it are kept", path, torn)
    return _replay(JournalFileBackend(str(path)), path)


class _Reader(BaseJournalBackend):
    """The lines appended since the last read, never past a bad one; refuses to write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode = path.stat().st_ino

    def changed_under(self) -> bool:
        """Replaced or cut (a repair truncates it): what was read no longer describes the file."""
        stat = self.path.stat()
        return stat.st_ino != self.inode or stat.st_size < self.offset

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        for length, log in _complete_lines(data):
            self.offset += length
            yield log

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise JournalError(f"{self.path} is open for reading only")


_readers: dict[Path, tuple[_Reader, JournalStorage]] = {}
_readers_lock = threading.Lock()


def torn(path: Path) -> bool:
    """Whether the journal holds a line that no reader can read and no writer is still appending.

    A writer appends its lines in one write under the lock, so a bad line followed by
    another, or a cut one that has not grown for two seconds, is a tear. Only what
    ``read_journal`` has not read yet is looked at.
    """
    path = Path(path).resolve()
    cached = _readers.get(path)
    try:
        offset = cached[0].offset if cached is not None and not cached[0].changed_under() else 0
        stat = path.stat()
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return False
    bad = data[sum(length for length, _ in _complete_lines(data)) :]
    return bool(bad) and (b"\n" in bad or time.time() - stat.st_mtime > 2)


def read_journal(path: Path) -> JournalStorage | None:
    """The journal at ``path`` for viewing, or None if there is none; writes nothing, repairs nothing.

    One storage is kept per file for the life of the process: Optuna replays only the
    lines added since the last call, so looking again at a study of thousands of trials
    costs what changed, not the whole file.
    """
    path = Path(path).resolve()
    with _readers_lock:
        try:
            cached = _readers.get(path)
            if cached is None or cached[0].changed_under():
                reader = _Reader(path)
                storage = _replay(reader, path)
                if reader.offset == 0 and torn(path):
                    raise JournalError(f"{path} is not an Optuna journal (its first line is not one)")
                cached = _readers[path] = (reader, storage)
        except FileNotFoundError:
            _readers.pop(path, None)
            return None
        return cached[1]
