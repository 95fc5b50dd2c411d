"""Trial references: ``STUDY:TRIAL`` names a sweep trial's checkpoint wherever the trial was trained.

A sweep given ``--artifacts DIR`` (a folder every machine can reach; Optuna's
``FileSystemArtifactStore``) uploads each finished trial's checkpoint there and stores
its artifact id in the trial's user attribute ``checkpoint_artifact``. A reference is
looked up in the study's storage and the checkpoint fetched once into a local cache
under the lab's home folder, so a laptop can evaluate, draw with and compare the best
trial of a study run on three GPU boxes. Storage and artifact folder come from the
command's options or ``MNIST_SWEEP_STORAGE`` and ``MNIST_SWEEP_ARTIFACTS``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.trial import TrialState

from .places import CheckpointError, checkpoint_dir, home
from .studies import SweepError, open_storage

REFERENCE = re.compile(r"(?P<study>[^:/\\]+):(?P<trial>\d+)")
ARTIFACT_ATTR = "checkpoint_artifact"


def is_reference(text: str) -> bool:
    """``STUDY:TRIAL``, such as ``sweep:12``; a path to an existing file is never one."""
    return REFERENCE.fullmatch(text) is not None and not Path(text).exists()


def cache_dir() -> Path:
    return home() / "cache" / "trials"


def fetch(reference: str, storage: str | None = None, artifacts: str | Path | None = None) -> Path:
    """The local checkpoint of the trial ``reference`` names: fetched from the artifact store the first time.

    Without an artifact (a sweep run without ``--artifacts``) the trial's own checkpoint
    path is used, which exists only on the machine that trained it.
    """
    match = REFERENCE.fullmatch(reference)
    if match is None:
        raise CheckpointError(f"{reference!r} is not a trial reference (STUDY:TRIAL, such as sweep:3)")
    study_name, number = match["study"], int(match["trial"])
    storage = storage or os.environ.get("MNIST_SWEEP_STORAGE")
    artifacts = artifacts or os.environ.get("MNIST_SWEEP_ARTIFACTS")
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage, checkpoint_dir()))
    except SweepError as exc:
        raise CheckpointError(str(exc)) from None
    except KeyError:
        raise CheckpointError(f"no study named {study_name!r} in {storage or 'the default journal'}") from None
    trials = study.get_trials(deepcopy=False)
    if number >= len(trials):
        raise CheckpointError(f"study {study_name!r} has no trial {number} (it has {len(trials)})")
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        raise CheckpointError(f"trial {reference} is {trial.state.name.lower()}: only complete trials have a model")
    artifact = trial.user_attrs.get(ARTIFACT_ATTR)
    if artifact is None:
        local = Path(trial.user_attrs["checkpoint"])
        if not local.is_file():
            raise CheckpointError(f"trial {reference} was saved to {local} on its worker, with no --artifacts copy")
        return local
    if artifacts is None:
        raise CheckpointError(f"trial {reference} is in an artifact store: give --artifacts or MNIST_SWEEP_ARTIFACTS")
    cached = cache_dir() / str(artifact) / f"{study_name}-trial-{number}.pt"
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.partial")
        partial.unlink(missing_ok=True)
        try:
            download_artifact(
                artifact_store=FileSystemArtifactStore(artifacts), file_path=str(partial), artifact_id=artifact
            )
        except FileNotFoundError:
            partial.unlink(missing_ok=True)
            raise CheckpointError(f"trial {reference}'s checkpoint is not in {artifacts}") from None
        os.replace(partial, cached)
    return cached
