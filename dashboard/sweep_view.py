"""The Train page's sweep panel: start and stop an Optuna sweep, watch its trials arrive, adopt the best one.

The sweep runs as one job of the server's training queue, so it waits for the run
ahead of it and a single run waits for it. Its study lives in the journal file
beside the checkpoints, so this panel shows the same trials as ``python -m mnist_core
sweep`` on that folder, those of other workers included, and a stopped sweep started
again with the same study name resumes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from optuna import visualization

import common
from mnist_core.data import MNIST
from mnist_core.jobs import Job, TrainingQueue
from mnist_core.sweep import DEFAULT_STUDY, open_storage, run_sweep, search_space, summary
from mnist_core.train import PRESETS, Progress
from wording import literal

SEARCHED = "searched"


def _load_study(directory: str, name: str) -> optuna.Study | None:
    storage = open_storage(None, directory)
    if name not in optuna.get_all_study_names(storage):
        return None
    return optuna.load_study(study_name=name, storage=storage)


@st.cache_data(max_entries=16, show_spinner="Drawing the sweep's figures…")
def _figures(directory: str, name: str, finished: int) -> dict[str, go.Figure | str]:
    """Optuna's own plots of the study, redrawn only when a trial has finished (``finished`` is the cache key)."""
    study = _load_study(directory, name)
    assert study is not None
    figures: dict[str, go.Figure | str] = {
        "Optimisation history": visualization.plot_optimization_history(study, target_name="validation accuracy"),
        "Parallel coordinates": visualization.plot_parallel_coordinate(study, target_name="validation accuracy"),
    }
    try:
        figures["Parameter importances"] = visualization.plot_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # too few finished trials, or none that differ
        figures["Parameter importances"] = f"Not yet: {exc}"
    return figures


def _start(queue: TrainingQueue, study: str, preset: str, trials: int, epochs: int | str) -> Job:
    directory = common.checkpoint_dir()
    fixed = {} if epochs == SEARCHED else {"epochs": int(epochs)}

    def work(data: MNIST, on_progress: Callable[[Progress], None], should_stop: Callable[[], bool]) -> None:
        run_sweep(
            trials, data, directory, study, preset=preset, fixed=fixed, on_progress=on_progress, should_stop=should_stop
        )

    return queue.submit_work(f"sweep {study}", work, *PRESETS[preset])


def panel(queue: TrainingQueue) -> None:
    """The whole panel: settings, start and stop, then the live view of the study named in the settings."""
    st.header("Hyperparameter sweep")
    st.caption(
        "Optuna tries settings around a preset, stops poor trials after an epoch, and learns from every trial "
        "which settings to try next. Each finished trial is a run in the history below, named "
        "`<study>-trial-<number>`. More workers: `python -m mnist_core sweep --study <name>` in other terminals."
    )
    directory = str(common.checkpoint_dir())
    job: Job | None = st.session_state.get("sweep_job")
    busy = job is not None and not job.done

    name_col, preset_col, trials_col, epochs_col = st.columns(4)
    studies = sorted({DEFAULT_STUDY, *optuna.get_all_study_names(open_storage(None, directory))})
    study = name_col.selectbox(
        "Study",
        studies,
        key="sweep_study",
        accept_new_options=True,
        help="Pick a study to watch or resume it, or type a new name to start one",
    )
    preset = preset_col.selectbox("Around preset", list(PRESETS), key="sweep_preset", format_func=str.title)
    trials = trials_col.number_input(
        "Trials in the study",
        1,
        500,
        20,
        key="sweep_trials",
        help="The sweep runs until the study has this many trials, those of earlier sweeps and other workers included",
    )
    low, high = search_space(preset)["epochs"]
    epochs = epochs_col.selectbox("Epochs per trial", [SEARCHED, *range(int(low), int(high) + 1)], key="sweep_epochs")

    start, stop, _ = st.columns([1, 1, 4])
    if start.button("Start sweep", disabled=busy or not study):
        common.ensure_downloaded()
        job = st.session_state.sweep_job = _start(queue, study, preset, int(trials), epochs)
        busy = True
    if stop.button("Stop sweep", disabled=not busy, help="The trial in flight is dropped; the study keeps the rest"):
        assert job is not None
        job.cancel()
    st.fragment(run_every=2.0 if busy else None)(_live)(job, directory, study, busy)


def _live(job: Job | None, directory: str, name: str, busy: bool) -> None:
    """Redrawn every two seconds while a sweep runs: the trial in flight, the study's trials and Optuna's figures."""
    if job is not None:
        latest: Progress | None = job.latest
        if job.status == "queued":
            st.info(f"**{literal(job.name)}** is queued; it starts when the run ahead of it ends.")
        elif job.status == "running" and latest is not None:
            st.progress(
                job.fraction,
                text=f"**{literal(job.name)}** · trial in flight: epoch {latest.epoch}/{latest.epochs} · "
                f"batch {latest.batch}/{latest.batches} · {latest.images_per_sec:,.0f} images/s",
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
    study = _load_study(directory, name) if name else None
    if study is None:
        st.caption(f"No study named {literal(repr(name))} yet." if name else "Name a study.")
        return
    result = summary(study)
    trials = pd.DataFrame(
        [
            {
                "trial": t["trial"],
                "state": t["state"].lower(),
                "val accuracy": t["value"],
                **t["params"],
                "run": Path(t["checkpoint"]).stem if t["checkpoint"] else "",
            }
            for t in result["trials"]
        ]
    )
    st.markdown(f"Study **{literal(name)}**: {result['done']} trial(s) done, {result['running']} running.")
    best = result["best"]
    if best is not None:
        best_run = Path(best["checkpoint"]).stem
        left, right = st.columns([3, 1])
        left.success(
            f"Best so far: trial {best['trial']}, validation accuracy {best['value']:.2%} ({literal(best_run)})."
        )
        if right.button("Make best trial active", disabled=not Path(best["checkpoint"]).is_file()):
            common.select_model(best_run)
            st.rerun(scope="app")  # the sidebar's picker too
    st.dataframe(
        trials.iloc[::-1],
        hide_index=True,
        column_config={"val accuracy": st.column_config.NumberColumn(format="percent")},
    )
    if best is not None:  # Optuna's figures need a completed trial
        figures = _figures(directory, name, result["done"])
        for tab, (title, figure) in zip(st.tabs(list(figures)), figures.items()):
            with tab:
                if isinstance(figure, str):
                    st.caption(literal(figure))
                else:
                    st.plotly_chart(figure, width="stretch", key=f"sweep-{title}")
