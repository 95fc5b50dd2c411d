"""Hyperparameter sweeps with Optuna: every trial an ordinary run, the study in storage that many processes share.

Optuna does the searching (a TPE sampler) and the stopping of poor trials (a median
pruner fed the validation accuracy after every epoch); this module only says what to
search and turns each trial into a ``runs.run_training`` call, so a finished trial is
a checkpoint in the run history like any other, tagged with its study and trial
number, and Evaluate, Draw and Compare work on it.

The study lives in storage, not in the process (see ``studies``). So a stopped or
killed sweep started again resumes where it was, and the same command started on
several processes or machines with the same ``storage`` works on one study: Optuna
hands each trial number out once.
"""

from __future__ import annotations

import functools
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from . import settings
from .data import MNIST
from .model import ModelConfig
from .places import NameTaken, checkpoint_path, release, reserve
from .runs import run_training
from .settings import Interval, Setting
from .studies import HEARTBEAT, SweepError, fail_dead_workers_trials, open_storage, worker_name
from .train import PRESETS, Progress, TrainConfig, TrainingCancelled, run_settings

DEFAULT_STUDY = "sweep"
SAMPLED_TRIALS = 32  # drawn for a sweep's estimate (``sampled_trials``)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def search_space(preset: str) -> dict[str, Interval | tuple]:
    """What a preset's trials draw from, as the settings declare it: a range, or the choices.

    Around each preset: the quick one searches small, fast models, the best one large, long runs.
    """
    return {s.name: s.search[preset] for s in run_settings() if preset in s.search}


def _draw(trial: optuna.Trial, setting: Setting, space: Interval | tuple) -> Any:
    if not isinstance(space, Interval):
        return trial.suggest_categorical(setting.name, space)
    if setting.base is int:
        return trial.suggest_int(setting.name, int(space.low), int(space.high), log=setting.log)
    return trial.suggest_float(setting.name, space.low, space.high, log=setting.log)


def suggest(trial: optuna.Trial, preset: str, fixed: dict | None = None) -> tuple[ModelConfig, TrainConfig]:
    """The trial's settings: the preset, with every searched setting drawn from its space unless ``fixed`` sets it."""
    fixed = fixed or {}
    searched = {s.name: (s, s.search[preset]) for s in run_settings() if preset in s.search}
    values = {name: _draw(trial, s, space) for name, (s, space) in searched.items() if name not in fixed}
    model, train = PRESETS[preset]
    return settings.apply(model, {**values, **fixed}), settings.apply(train, {**values, **fixed})


def typical_trial(preset: str, fixed: dict | None = None) -> tuple[ModelConfig, TrainConfig]:
    """The settings a sweep job is shown with and its estimate starts from: the preset with ``fixed``, and searched
    epochs in the middle of their range."""
    fixed = dict(fixed or {})
    epochs = search_space(preset).get("epochs")
    if "epochs" not in fixed and isinstance(epochs, Interval):
        fixed["epochs"] = round((epochs.low + epochs.high) / 2)
    model, train = PRESETS[preset]
    return settings.apply(model, fixed), settings.apply(train, fixed)


@functools.lru_cache(maxsize=32)
def _sampled(preset: str, fixed: tuple[tuple[str, Any], ...]) -> tuple[tuple[ModelConfig, TrainConfig], ...]:
    study = optuna.create_study(study_name=f"estimate of a {preset} sweep", sampler=optuna.samplers.RandomSampler(0))
    return tuple(suggest(study.ask(), preset, dict(fixed)) for _ in range(SAMPLED_TRIALS))


def sampled_trials(preset: str, fixed: dict | None = None) -> tuple[tuple[ModelConfig, TrainConfig], ...]:
    """``SAMPLED_TRIALS`` trials drawn at random from the search space, the same ones every time: what a sweep's
    trials cost on average, for its estimate. A trial's cost grows with the product of the widths it draws, so the
    space's mean cost is not its middle's: above it around the quick preset, below around the best one."""
    return _sampled(preset, tuple(sorted((fixed or {}).items())))


def target(study: optuna.Study) -> int | None:
    """How many finished trials the latest sweep of ``study`` asked for (None for a study made elsewhere)."""
    value = study.user_attrs.get("trials")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_fixed(preset: str, fixed: dict) -> None:
    """Refuse, before any trial starts, settings that no config has or that a config rejects."""
    unknown = set(fixed) - {s.name for s in run_settings()}
    if unknown:
        raise SweepError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    try:
        for config in PRESETS[preset]:
            settings.apply(config, fixed)
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    if fixed.get("val_size") == 0:
        raise SweepError("a sweep ranks trials by validation accuracy, so val_size must be above 0")


def reserve_trial_file(directory: Path | str, name: str) -> Path:
    """``<name>.pt``, or ``<name>-2.pt`` and on where an earlier study of the same name (its storage since
    deleted) left its trials' files: a trial never trains for a name it cannot save under."""
    n = 1
    while True:
        try:
            return reserve(checkpoint_path(name if n == 1 else f"{name}-{n}", directory))
        except NameTaken:
            n += 1


class _Surplus(Exception):
    """Another worker took the study's last place between this worker's count and its new trial."""


def run_sweep(
    trials: int,
    data: MNIST | Callable[[], MNIST],
    directory: Path | str,
    study_name: str = DEFAULT_STUDY,
    storage: str | None = None,
    preset: str = "quick",
    fixed: dict | None = None,
    timeout: float | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_trial: Callable[[FrozenTrial], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    heartbeat: int = HEARTBEAT,
    artifacts: Path | str | None = None,
) -> optuna.Study:
    """Run trials until the study has ``trials`` finished ones (complete or pruned, by any worker), or ``timeout`` s
    passed.

    Each trial trains with ``runs.run_training`` into ``directory`` as
    ``<study>-trial-<number>.pt``. ``fixed`` holds settings no trial searches (say,
    ``{"epochs": 1}``). With ``artifacts`` (a folder every worker can reach), each
    finished trial's checkpoint is uploaded there too, its id in the trial's user
    attribute ``checkpoint_artifact``. ``data`` may be a loader, called only once there is a trial to
    run. ``should_stop`` ends the sweep: the trial in flight is cancelled (and recorded
    as failed), ``TrainingCancelled`` is raised. Returns the study, every worker's
    trials included.

    A worker starts a trial only while the finished and running trials are fewer than
    ``trials``, and a trial numbered past the ``trials``-th that has not failed gives its
    place back at once (two workers that counted at the same moment), so a study ends
    with exactly ``trials`` finished. With a heartbeat, a worker whose count is full but
    not finished waits: if a running trial's worker dies, it runs that trial again.
    """
    if preset not in PRESETS:
        raise SweepError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    check_fixed(preset, fixed or {})
    checkpoint_path(f"{study_name}-trial-0", directory)  # a name no run file can have is refused before any trial
    opened = open_storage(storage, directory, heartbeat)
    store = None
    if artifacts is not None:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        store = FileSystemArtifactStore(artifacts)
    study = optuna.create_study(
        storage=opened,
        study_name=study_name,
        direction="maximize",
        load_if_exists=True,
        # constant_liar: workers running at once are steered away from each other's trials
        sampler=optuna.samplers.TPESampler(constant_liar=True),
        # No pruning on the first epoch: a long run's early epochs (high learning rate) look worse than they end.
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
    )
    made_with = study.user_attrs.get("preset")
    if made_with is None:
        study.set_user_attr("preset", preset)
    elif made_with != preset:
        raise SweepError(f"study {study_name!r} searches the {made_with!r} preset, not {preset!r}")
    study.set_user_attr("trials", trials)  # what a page shows for the study (``target``)

    def objective(trial: optuna.Trial) -> float:
        ahead = study.get_trials(deepcopy=False)[: trial.number]
        if sum(t.state != TrialState.FAIL for t in ahead) >= trials:
            trial.set_user_attr("surplus", True)
            raise _Surplus
        trial.set_user_attr("worker", worker_name())
        model_config, train_config = suggest(trial, preset, fixed)
        pruned, epoch = False, 0

        def report(progress: Progress) -> None:
            nonlocal pruned, epoch
            if progress.kind == "epoch" and progress.val_accuracy is not None:
                epoch = progress.epoch
                trial.report(progress.val_accuracy, epoch)
                pruned = epoch < progress.epochs and trial.should_prune()
            if on_progress is not None:
                on_progress(progress)

        path = reserve_trial_file(directory, f"{study_name}-trial-{trial.number}")
        try:
            checkpoint = run_training(
                model_config,
                train_config,
                loaded(),
                path,
                report,
                lambda: pruned or (should_stop is not None and should_stop()),
                tags={"study": study_name, "trial": trial.number},
                reserved=True,
            )
        except TrainingCancelled:
            if pruned:
                raise optuna.TrialPruned(f"validation accuracy too low after epoch {epoch}") from None
            raise
        finally:
            release(path)
        trial.set_user_attr("checkpoint", str(path))
        if store is not None:  # where every machine can fetch it (see trials.fetch)
            artifact = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
            trial.set_user_attr("checkpoint_artifact", artifact)
        trial.set_user_attr("test_accuracy", checkpoint.metrics["test_accuracy"])
        return checkpoint.metrics["val_accuracy"]

    cache: list[MNIST] = []

    def loaded() -> MNIST:
        if not cache:
            cache.append(data() if callable(data) else data)
        return cache[0]

    def stopped() -> bool:
        return should_stop is not None and should_stop()

    def report(_study: optuna.Study, trial: FrozenTrial) -> None:
        if on_trial is not None and not trial.user_attrs.get("surplus"):
            on_trial(trial)

    deadline = math.inf if timeout is None else time.monotonic() + timeout
    while not stopped() and time.monotonic() < deadline:
        fail_dead_workers_trials(study)
        counts = Counter(t.state for t in study.get_trials(deepcopy=False))
        finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
        if finished >= trials:
            break
        if counts[TrialState.WAITING] or finished + counts[TrialState.RUNNING] < trials:
            study.optimize(objective, n_trials=1, callbacks=[report], catch=(_Surplus,))
        elif is_heartbeat_enabled(opened):
            time.sleep(min(heartbeat, 5))  # the last trials run elsewhere: run one again if its worker dies
        else:
            break  # a journal cannot tell whether another machine's trial still runs: leave it to that machine
    return study


def summary(study: optuna.Study) -> dict:
    """The JSON form: ``study``, ``best`` (or None), how many trials are ``done`` (complete or pruned) and
    ``running``, and every trial, as ``sweep --json`` prints it."""

    def record(trial: FrozenTrial) -> dict:
        return {
            "trial": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "params": trial.params,
            "checkpoint": trial.user_attrs.get("checkpoint"),
            "artifact": trial.user_attrs.get("checkpoint_artifact"),
            "worker": trial.user_attrs.get("worker"),
        }

    try:
        best: FrozenTrial | None = study.best_trial
    except ValueError:  # no trial has completed yet
        best = None
    trials = study.get_trials(deepcopy=False)
    return {
        "study": study.study_name,
        "best": record(best) if best is not None else None,
        "done": sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
        "trials": [record(t) for t in trials],
    }
