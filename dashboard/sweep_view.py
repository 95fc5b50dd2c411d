"""The Train page's sweep panel: start and stop an Optuna sweep, watch its trials arrive, adopt the best one.

The sweep runs as one job of the server's training queue, so it waits for the run
ahead of it and a single run waits for it. Its study lives in the journal file
beside the checkpoints, or in the shared storage named in the panel (or
``MNIST_SWEEP_STORAGE``), so this panel shows the same trials as ``python -m mnist_core
sweep`` with that storage, whichever machine runs them, and a stopped sweep started
again with the same study name resumes it. A trial trained elsewhere becomes the
active model through the shared artifact folder (``MNIST_SWEEP_ARTIFACTS``).

The sweep a session started is its own wherever it shows (the queue, the buttons) and
after a reload: its study travels in the address (``?sweep=study``), as a run's name does.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from optuna import visualization
from optuna.trial import TrialState

import common
import settings_view
from mnist_core.cost import Estimate
from mnist_core.jobs import Job, QueueFull, TrainingQueue
from mnist_core.journal import TORN_SUFFIX, torn
from mnist_core.places import CheckpointError, release
from mnist_core.studies import SweepError, check_page_artifacts, check_page_storage, journal_path, view_storage
from mnist_core.sweep import DEFAULT_STUDY, FINISHED, reserve_trial_file, search_space, summary, target
from mnist_core.train import PRESETS, Progress
from mnist_core.trials import fetch as fetch_trial
from wording import describe_seconds, literal

SEARCHED = "searched"
LINES = 300  # the parallel coordinates show at most this many trials, the best ones
FIRST = "Optimisation history"
DEFAULT_TRIALS = 20
JOB_PREFIX = "sweep "  # a sweep's job is named for its study: "sweep <study>"


def own_sweep() -> Job | None:
    """This session's sweep while it is unfinished."""
    job: Job | None = st.session_state.get("sweep_job")
    return job if job is not None and not job.done else None


def from_address(queue: TrainingQueue) -> None:
    """After a reload, the sweep named in the address is this session's again, and its study the one shown."""
    name = st.query_params.get("sweep")
    if st.session_state.get("sweep_job") is not None or not name:
        return
    job = queue.find(JOB_PREFIX + name)
    if job is not None:
        st.session_state.update(sweep_job=job, sweep_study=name)


def _quiet_study(url: str | None, directory: str, name: str) -> optuna.Study | None:
    """The study, or None where there is none or its storage cannot be read (said above the panel's settings)."""
    try:
        return _load_study(url, directory, name) if name else None
    except SweepError:
        return None


def _follow_study(study: optuna.Study | None, key: tuple[str | None, str]) -> None:
    """When another study is picked, the trials and preset fields show that study's own (before they are drawn)."""
    if st.session_state.get("sweep_fields_of") == key:
        return
    if study is None:  # not made yet (a sweep just queued makes it when it starts): followed once it exists
        st.session_state.setdefault("sweep_trials", DEFAULT_TRIALS)
        return
    st.session_state.sweep_fields_of = key
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    st.session_state.sweep_trials = min(max(target(study) or done, 1), 500)
    if study.user_attrs.get("preset") in PRESETS:
        st.session_state.sweep_preset = study.user_attrs["preset"]


def _load_study(url: str | None, directory: str, name: str) -> optuna.Study | None:
    """The study to look at, or None; raises ``SweepError`` for storage that cannot be read."""
    storage = view_storage(url, directory)
    if storage is None or name not in {s.study_name for s in storage.get_all_studies()}:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def _study_names(url: str | None, directory: str) -> list[str]:
    """The studies in the storage; storage that cannot be read is said in the page, which goes on without it."""
    try:
        storage = view_storage(url, directory)
    except SweepError as exc:
        st.error(f"{literal(str(exc))}. No sweep can start until this is fixed.")
        return []
    names = [s.study_name for s in storage.get_all_studies()] if storage is not None else []
    journal = journal_path(url, directory) if url is None or url.startswith("journal:") else None
    if journal is not None and torn(journal):  # after reading: only the unread rest is looked at
        st.warning(
            f"The end of {literal(journal.name)} is torn (a full disk or a killed writer cut a line); the trials "
            f"before it are shown, and the next sweep moves the torn part aside to "
            f"{literal(journal.name + TORN_SUFFIX)}."
        )
    return names


@st.cache_resource(max_entries=16, show_spinner="Drawing the sweep's figures…")
def _figures(url: str | None, directory: str, name: str, finished: int) -> dict[str, go.Figure | str]:
    """Optuna's own plots of the study, redrawn only when a trial has finished (``finished`` is the cache key)."""
    study = _load_study(url, directory, name)
    assert study is not None
    figures: dict[str, go.Figure | str] = {
        "Optimisation history": visualization.plot_optimization_history(study, target_name="validation accuracy"),
        "Parallel coordinates": visualization.plot_parallel_coordinate(_best(study), target_name="validation accuracy"),
    }
    try:
        figures["Parameter importances"] = visualization.plot_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # too few finished trials, or none that differ
        figures["Parameter importances"] = f"Not yet: {exc}"
    return figures


def _best(study: optuna.Study) -> optuna.Study:
    """The study, or an in-memory copy of its ``LINES`` best completed trials: the parallel coordinates draw a line
    (a Plotly trace, sent to the browser on every rerun) per trial, and thousands of them hide each other anyway."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(completed) <= LINES:
        return study
    best = optuna.create_study(direction="maximize")
    best.add_trials(sorted(completed, key=lambda t: t.value or 0.0)[-LINES:])
    return best


@st.cache_resource(max_entries=16)
def _view(url: str | None, directory: str, name: str, state: tuple) -> tuple[dict, pd.DataFrame]:
    """The study's summary and trial table, made again only when a trial changed state (``state`` is the cache key):
    a study of thousands of trials costs a rerun what its table and charts cost to send, not to build."""
    study = _load_study(url, directory, name)
    assert study is not None
    result = summary(study)
    return result, _table(result)


def _state(study: optuna.Study) -> tuple:
    """What ``_view`` is made from, in a few numbers: how many trials are in each state."""
    return tuple(sorted(Counter(t.state.name for t in study.get_trials(deepcopy=False)).items()))


def _own_file(trial: dict) -> Path | None:
    """The trial's checkpoint, if it was trained into this server's checkpoints folder."""
    own = Path(trial["checkpoint"]) if trial["checkpoint"] else None
    if own is not None and own.is_file() and own.parent.resolve() == common.checkpoint_dir().resolve():
        return own
    return None


def _local_model(best: dict, study: str, url: str | None, artifacts: str | None) -> Path | None:
    """The best trial's checkpoint in this server's checkpoints folder: its own file if it was trained here, else
    fetched once from the shared artifact folder and copied in under a free name; None if neither can be."""
    own = _own_file(best)
    if own is not None:
        return own
    if best["artifact"] is None or not artifacts:
        return None
    fetched = fetch_trial(f"{study}:{best['trial']}", url, artifacts)
    for copy in common.checkpoint_dir().glob(f"{study}-trial-{best['trial']}*.pt"):
        if copy.stat().st_size == fetched.stat().st_size and copy.read_bytes() == fetched.read_bytes():
            return copy  # copied in before
    path = reserve_trial_file(common.checkpoint_dir(), f"{study}-trial-{best['trial']}")
    try:
        shutil.copyfile(fetched, path)
    finally:
        release(path)
    return path


def _start(
    queue: TrainingQueue,
    url: str | None,
    artifacts: str | None,
    study: str,
    preset: str,
    trials: int,
    epochs: int | str,
    forecast: Estimate,
    done: int,
) -> None:
    """Queue the sweep as this session's (a callback of Start sweep), its study in the address for a reload;
    ``done`` is how many trials the study had finished when the panel was drawn."""
    common.ensure_downloaded()
    fixed = {} if epochs == SEARCHED else {"epochs": int(epochs)}
    try:
        job = queue.submit_sweep(study, trials, url, preset, fixed, artifacts, units=trials - done, forecast=forecast)
    except QueueFull as exc:
        st.session_state.sweep_problem = str(exc)
        return
    st.session_state.update(sweep_job=job, sweep_problem="")
    st.query_params["sweep"] = study


def panel(queue: TrainingQueue, history: list[dict]) -> None:
    """The whole panel: settings, start and stop, then the live view of the study named in the settings.

    ``history`` (``runs.read_runs``) calibrates the sweep's estimate where no run measures the machine now."""
    st.header("Hyperparameter sweep")
    st.caption(
        "Optuna tries settings around a preset, stops poor trials after an epoch, and learns from every trial "
        "which settings to try next. Each finished trial is a run in the history below, named "
        "`<study>-trial-<number>`. More workers: `python -m mnist_core sweep --study <name>` in other terminals, "
        "or on other machines with the same shared storage."
    )
    directory = str(common.checkpoint_dir())
    job: Job | None = st.session_state.get("sweep_job")  # kept once done: the panel says how it ended
    busy = own_sweep() is not None

    storage_col, artifacts_col, follow_col = st.columns([3, 3, 1], vertical_alignment="bottom")
    url = (
        storage_col.text_input(
            "Shared storage",
            os.environ.get("MNIST_SWEEP_STORAGE", ""),
            key="sweep_storage_url",
            placeholder="the journal in the checkpoints folder",
            help="A study many machines share, such as postgresql://user@host/sweeps; empty: this server's own journal",
        ).strip()
        or None
    )
    artifacts = (
        artifacts_col.text_input(
            "Shared artifact folder",
            os.environ.get("MNIST_SWEEP_ARTIFACTS", ""),
            key="sweep_artifacts",
            placeholder="none",
            help="Where the workers upload each finished trial's checkpoint (sweep --artifacts)",
        ).strip()
        or None
    )
    url, artifacts = _permitted(url, artifacts, directory)
    follow = follow_col.toggle("Live", key="sweep_follow", help="Redraw the study every two seconds, whoever runs it")

    name_col, preset_col, trials_col, epochs_col = st.columns(4)
    studies = sorted({DEFAULT_STUDY, *_study_names(url, directory)})
    study = name_col.selectbox(
        "Study",
        studies,
        key="sweep_study",
        accept_new_options=True,
        help="Pick a study to watch or resume it, or type a new name to start one",
    )
    study_now = _quiet_study(url, directory, study)
    _follow_study(study_now, (url, study))
    preset = preset_col.selectbox("Around preset", list(PRESETS), key="sweep_preset", format_func=str.title)
    trials = trials_col.number_input(
        "Trials in the study",
        1,
        500,
        key="sweep_trials",
        help="The sweep runs until the study has this many finished (complete or pruned) trials, those of earlier "
        "sweeps and other workers included",
    )
    low, high = search_space(preset)["epochs"]
    epochs = epochs_col.selectbox("Epochs per trial", [SEARCHED, *range(int(low), int(high) + 1)], key="sweep_epochs")

    done = len(study_now.get_trials(deepcopy=False, states=FINISHED)) if study_now is not None else 0
    fixed = {} if epochs == SEARCHED else {"epochs": int(epochs)}
    trial = queue.forecast_sweep(preset, fixed, history)
    own_run = st.session_state.get("job")
    running_run = own_run is not None and not own_run.done
    start, stop, cost = st.columns([1, 1, 4], vertical_alignment="center")
    start.button(
        "Start sweep",
        disabled=busy or running_run or not study,
        help="Your run is training: cancel it above, or wait for it to end" if running_run else None,
        on_click=_start,  # a callback: the whole page, Start training included, then draws the sweep as running
        args=(queue, url, artifacts, study, preset, int(trials), epochs, trial, done),
    )
    stop.button(
        "Stop sweep",
        disabled=not busy,
        help="The trial in flight is dropped; the study keeps the rest",
        on_click=job.cancel if job is not None else None,
    )
    if st.session_state.get("sweep_problem"):
        st.error(literal(st.session_state.sweep_problem))
    if not busy:
        left = max(0, int(trials) - done)
        cost.markdown(
            f"**Takes {describe_seconds(trial.repeated(left))}** for {left} more trial(s), each "
            f"{describe_seconds(trial.work)} on average (less where Optuna prunes it)"
            if left
            else f"The study has its {int(trials)} trial(s): raise the number to run more."
        )
    st.fragment(run_every=2.0 if busy or follow else None)(_live)(job, url, artifacts, directory, study, busy)


def _permitted(url: str | None, artifacts: str | None, directory: str) -> tuple[str | None, str | None]:
    """The storage and artifact folder typed, or, where a session may not point the server there, the server's own
    journal and no artifact folder, with a message saying why."""
    try:
        check_page_storage(url, directory, os.environ.get("MNIST_SWEEP_STORAGE"))
    except SweepError as exc:
        st.error(f"Not this storage: {literal(str(exc))}. This server's own journal is shown.")
        url = None
    try:
        check_page_artifacts(artifacts, directory, os.environ.get("MNIST_SWEEP_ARTIFACTS"))
    except SweepError as exc:
        st.error(f"Not this artifact folder: {literal(str(exc))}.")
        artifacts = None
    return url, artifacts


def _job_status(job: Job, busy: bool) -> None:
    latest: Progress | None = job.latest
    if job.status == "queued":
        st.info(f"**{literal(job.name)}** is queued; it starts when the run ahead of it ends.")
    elif job.status == "running" and latest is not None:
        st.progress(
            job.fraction,
            text=f"**{literal(job.name)}** · {job.units_done} of {job.units} trial(s) done · trial in flight: "
            f"epoch {latest.epoch}/{latest.epochs}, batch {latest.batch}/{latest.batches}, "
            f"{latest.images_per_sec:,.0f} images/s · "
            f"{describe_seconds(job.remaining_seconds())} left for the sweep",
        )
    elif job.status == "running":
        st.info(f"**{literal(job.name)}**: loading MNIST and the study…")
    elif job.status == "finished":
        st.success(f"**{literal(job.name)}** finished: the study has the trials asked for.")
    elif job.status == "cancelled":
        st.warning(f"**{literal(job.name)}** was stopped; start it again to resume the study.")
    elif job.status == "failed":
        st.error(f"**{literal(job.name)}** failed: {literal(job.error)}")
    if busy and job.done:
        st.rerun()  # the sweep ended: redraw the page, so its runs join the history


def _value(trial: dict) -> str:
    """A trial's validation accuracy as the table says it: a running trial has none yet, a stopped one none."""
    if trial["value"] is not None:
        return f"{trial['value']:.2%}"
    return "running" if trial["state"] == "RUNNING" else ""


def _table(result: dict) -> pd.DataFrame:
    """One row per trial, newest first: who ran it (the worker's host), how it ended, its value and the best so far."""
    rows, best = [], None
    for t in result["trials"]:
        if t["state"] == "COMPLETE" and t["value"] is not None:
            best = t["value"] if best is None else max(best, t["value"])
        rows.append(
            {
                "trial": t["trial"],
                "worker": (t["worker"] or "").rpartition(":")[0],
                "state": t["state"].lower(),
                "val accuracy": _value(t),
                "best so far": best,
                **settings_view.worded(t["params"]),  # "0.0035", "on": as the run history says them
                "run": Path(t["checkpoint"]).stem if t["checkpoint"] else "",
            }
        )
    return pd.DataFrame(rows).iloc[::-1]


def _live(job: Job | None, url: str | None, artifacts: str | None, directory: str, name: str, busy: bool) -> None:
    """Redrawn every two seconds while a sweep runs or the study is followed: the trial in flight, the study's
    trials and Optuna's figures."""
    if job is not None:
        _job_status(job, busy)
    study = _quiet_study(url, directory, name)
    if study is None:
        st.caption(f"No study named {literal(repr(name))} yet." if name else "Name a study.")
        return
    if st.session_state.get("sweep_fields_of") != (url, name):
        st.rerun(scope="app")  # the study appeared since the panel was drawn: its fields follow it (``_follow_study``)
    result, table = _view(url, directory, name, _state(study))
    st.markdown(f"Study **{literal(name)}**: {result['done']} trial(s) done, {result['running']} running.")
    best = result["best"]
    if best is not None:
        best_run = Path(best["checkpoint"]).stem
        left, right = st.columns([3, 1])
        left.success(
            f"Best so far: trial {best['trial']}, validation accuracy {best['value']:.2%} ({literal(best_run)})."
        )
        reachable = _own_file(best) is not None or (best["artifact"] is not None and artifacts is not None)
        if right.button("Make best trial active", disabled=not reachable):
            try:
                local = _local_model(best, name, url, artifacts)
            except CheckpointError as exc:
                st.error(literal(str(exc)))
            else:
                if local is not None:
                    common.select_model(local.stem)
                    st.rerun(scope="app")  # the sidebar's picker too
    st.dataframe(
        table,
        hide_index=True,
        placeholder="",  # no best before the first complete trial: an empty cell, not "None"
        column_config={
            "val accuracy": st.column_config.TextColumn(),
            "best so far": st.column_config.NumberColumn(format="percent"),
        },
    )
    if best is not None:  # Optuna's figures need a completed trial
        figures = _figures(url, directory, name, result["done"])
        # One figure at a time: tabs would send every figure on every rerun, the hidden ones too.
        title = st.segmented_control("Figure", list(figures), default=FIRST, key="sweep_figure") or FIRST
        figure = figures[title]
        completed = sum(t["state"] == "COMPLETE" for t in result["trials"])
        if title == "Parallel coordinates" and completed > LINES:
            st.caption(f"The {LINES} best of the {completed:,} completed trials.")
        if isinstance(figure, str):
            st.caption(literal(figure))
        else:
            st.plotly_chart(figure, width="stretch", key=f"sweep-{title}")
