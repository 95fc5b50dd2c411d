"""Where a sweep's study lives: its storage opened to work in or only to look at, and its dead workers told.

By default the study is Optuna's journal file beside the checkpoints, which several
processes on one machine (or on a shared file system) can append to at once; a
database URL (``postgresql://...``, ``sqlite:///...``) is for workers on many machines.
A database has Optuna's heartbeat, so a worker that dies on any machine is found out
and its trial run again; a journal has none, so only this machine's dead workers are.
"""

from __future__ import annotations

import functools
import os
import socket
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from .journal import JournalError, open_journal, read_journal
from .places import process_alive

DEFAULT_JOURNAL = "sweeps.journal"
HEARTBEAT = 10  # seconds between a running trial's heartbeats in a database; silent for three, the trial is dead


class SweepError(ValueError):
    """The sweep cannot run as asked: bad settings or storage, or a study made with another preset."""


def open_storage(url: str | None, directory: Path | str, heartbeat: int = HEARTBEAT) -> optuna.storages.BaseStorage:
    """``journal:PATH`` or None (the journal file in ``directory``) -> journal storage; else a database URL.

    The journal file takes a lock for every write, so it is safe for several processes
    on one machine or a shared file system; a torn tail is moved aside first (see
    ``journal``). ``sqlite:///...`` and ``postgresql://...`` go to Optuna's database
    storage, where a running trial's worker writes a heartbeat every ``heartbeat`` s:
    a trial silent for three of them, its worker dead on whatever machine, is failed by
    the next worker that looks and run again once (Optuna's heartbeat and retry).
    """
    if url is not None and not url.startswith("journal:"):
        from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError  # Optuna's database layer

        # SQLAlchemy's default PostgreSQL driver is psycopg2; the postgres extra installs psycopg 3
        driver = url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
        try:
            return _database(driver, heartbeat)
        except (IntegrityError, ProgrammingError):  # workers started at once on an empty database: one made the tables
            time.sleep(1)
            try:
                return _database(driver, heartbeat)
            except SQLAlchemyError as exc:
                raise SweepError(f"cannot open storage {url!r}: {str(exc).splitlines()[0]}") from None
        except (SQLAlchemyError, ImportError, ValueError) as exc:  # a bad URL, a missing driver, no server
            raise SweepError(f"cannot open storage {url!r}: {str(exc).splitlines()[0]}") from None
    try:
        return open_journal(journal_path(url, directory))
    except JournalError as exc:
        raise SweepError(str(exc)) from None


def _database(url: str, heartbeat: int) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():  # heartbeats and their retry are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat,
            grace_period=3 * heartbeat,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def view_storage(url: str | None, directory: Path | str) -> optuna.storages.BaseStorage | None:
    """The storage for looking only, or None where no journal exists yet: a journal is neither created nor repaired.

    A journal is read incrementally (see ``journal.read_journal``), so a page that looks
    again every two seconds pays for the trials that changed, not for the whole study.
    """
    if url is not None and not url.startswith("journal:"):
        return _viewed_database(url)
    try:
        return read_journal(journal_path(url, directory))
    except JournalError as exc:
        raise SweepError(str(exc)) from None


@functools.lru_cache(maxsize=8)
def _viewed_database(url: str) -> optuna.storages.BaseStorage:
    """One connection pool per database for the life of the process (a failed open is not kept)."""
    return open_storage(url, ".")


def journal_path(url: str | None, directory: Path | str) -> Path:
    """The journal file a ``journal:PATH`` URL, or None (the default one in ``directory``), names."""
    return Path(url.removeprefix("journal:")) if url else Path(directory) / DEFAULT_JOURNAL


def check_page_storage(url: str | None, directory: Path | str, configured: str | None) -> None:
    """Raise ``SweepError`` unless a page may open ``url``: the server's own journal (None), a ``*.journal`` file in
    its checkpoints folder ``directory``, or the storage its operator configured (``configured``).

    The pages' storage field is typed by any session; without this, it would make the server read whatever file
    or database a visitor names, and a sweep write there.
    """
    if url is None or url == (configured or "").strip():
        return
    if url.startswith("journal:") and _inside(journal_path(url, directory), directory, ".journal"):
        return
    raise SweepError(
        "only this server's journal, a .journal file in its checkpoints folder, or the storage set by whoever runs "
        "the server (MNIST_SWEEP_STORAGE) can be used here; for any other, run python -m mnist_core sweep --storage"
    )


def check_page_artifacts(folder: str | None, directory: Path | str, configured: str | None) -> None:
    """Raise ``SweepError`` unless a page may use the artifact folder ``folder`` (which a sweep writes to): none, a
    folder inside the checkpoints folder ``directory``, or the one its operator configured (``configured``)."""
    if folder is None or folder == (configured or "").strip() or _inside(Path(folder), directory):
        return
    raise SweepError(
        "only a folder inside this server's checkpoints folder, or the one set by whoever runs the server "
        "(MNIST_SWEEP_ARTIFACTS), can be used here; for any other, run python -m mnist_core sweep --artifacts"
    )


def _inside(path: Path, directory: Path | str, suffix: str | None = None) -> bool:
    """Whether ``path``, links followed, lies in ``directory`` (and ends in ``suffix``, if given)."""
    resolved = path.resolve()
    return resolved.is_relative_to(Path(directory).resolve()) and (suffix is None or resolved.suffix == suffix)


def worker_name() -> str:
    """Who runs a trial: this machine and process, as ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_dead_workers_trials(study: optuna.Study) -> None:
    """Mark failed the running trials whose worker is dead, and queue each for one more try.

    In a database Optuna's heartbeat tells, for workers on any machine. A journal has no
    heartbeat: there, only trials of workers on this machine whose process is gone are
    failed; another machine's are left alone, as this one cannot tell if they still run.
    """
    if is_heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not process_alive(int(pid)):
            trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, trial.number)
            if study._storage.set_trial_state_values(trial_id, TrialState.FAIL):
                RetryHeartbeatStaleTrialCallback(max_retry=1)(study, study._storage.get_trial(trial_id))
