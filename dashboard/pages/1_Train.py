"""Train: every setting in the sidebar, a live view of your run, the server's queue, and the history of every run.

The page always shows the true state of what the user started, from any session and
after a reload: the run's name travels in the address (``?run=name``, and a sweep's study
as ``?sweep=study``), so a reloaded tab finds its run or sweep again in the server's queue.
"""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import common
import experiments_view
import explain_view
import settings_view
import sweep_view
from mnist_core.checkpoints import CheckpointError
from mnist_core.cost import steps_per_epoch, watched
from mnist_core.jobs import Job, QueueFull
from mnist_core.runs import history_rows, scan_runs
from mnist_core.train import CHECK_IMAGES, PRESETS, Progress
from wording import describe_seconds, literal, no_model_reason

common.page("Train", ":material/model_training:", own_run=False)
queue = common.training_queue(str(common.checkpoint_dir()))
history, skipped_lines = scan_runs(common.checkpoint_dir())  # damaged log lines are skipped, never fatal

# ---- Your run after a reload: the address names it ----
if st.session_state.get("job") is None and (name := st.query_params.get("run")):
    st.session_state.job = queue.find(name)
sweep_view.from_address(queue)


# ---- Settings: every setting, from its declaration (or a shared experiment's link) ----
experiments_view.from_address()
if "preset" not in st.session_state:
    st.session_state.preset = "quick"

with st.sidebar:
    st.header("Settings")
    st.selectbox(
        "Preset",
        list(PRESETS),
        key="preset",
        format_func=str.title,
        on_change=settings_view.fill,
        persist_state="session",
        help="Quick: seconds. Best: the most accurate, several minutes.",
    )
    model_config, train_config, refused = settings_view.form(st.session_state.preset)
    if refused:
        st.error(f"Not these settings: {literal(refused)}")
    if train_config.augment and (clean := train_config.epochs - train_config.augmented_epochs):
        st.caption(f"The last {clean} epoch(s) see the images as they are.")
    st.text_input(
        "Run name (optional)",
        placeholder="<preset>-<date>-<time>",
        max_chars=64,
        key="run_name",
    )

unchanged = (model_config, train_config) == PRESETS[st.session_state.preset]


def start() -> None:
    """Submit the run (a callback: the page then draws Start disabled in the same rerun)."""
    common.ensure_downloaded()
    typed = st.session_state.run_name.strip()
    try:
        job = queue.submit(
            model_config,
            train_config,
            name=typed or None,
            prefix=st.session_state.preset if unchanged else "custom",
            drawing=st.session_state.get("last_drawing"),
            forecast=st.session_state.forecast,  # the estimate shown, so the time left starts from it
        )
    except (CheckpointError, QueueFull) as exc:
        st.session_state.start_problem = str(exc)
        return
    st.session_state.update(job=job, start_problem="")
    st.query_params["run"] = job.name


# ---- Start, with the estimate beside it ----
st.title("Train a model")
job: Job | None = st.session_state.get("job")
busy = job is not None and not job.done
sweeping = sweep_view.own_sweep() is not None
left, middle, right = st.columns([1, 1, 4], vertical_alignment="center")
left.button(
    "Start training",
    type="primary",
    disabled=busy or sweeping or bool(refused),
    on_click=start,
    help="Your sweep is running: stop it below, or wait for it to end" if sweeping else None,
)
middle.button(
    "Cancel",
    key="cancel-own",
    disabled=not busy or (job is not None and job.cancel_requested),
    on_click=job.cancel if job else None,
)


@st.fragment(run_every=3.0 if queue.active() or not watched() else None)
def forecast_line() -> None:
    """The estimate, redrawn while anything trains (it follows the speed the run in flight measures), and on a page
    opened before the server had watched the machine for a second (it was drawn from a moment's look)."""
    forecast = st.session_state.forecast = queue.forecast(model_config, train_config, history)
    busy_now = (job is not None and not job.done) or sweep_view.own_sweep() is not None
    st.markdown(
        f"**{'Takes' if not busy_now else 'A new run takes'} {describe_seconds(forecast.total)}** "
        f"· {'the ' + st.session_state.preset + ' preset' if unchanged else 'custom settings'} "
        f"· {train_config.epochs} epoch(s) × {steps_per_epoch(train_config):,} batches of {train_config.batch_size} "
        f"({train_config.images_per_epoch:,} images)",
        help="From a model of the work (start, arithmetic, optimizer steps, augmentation, evaluation), scaled by the "
        "speed the run in flight or one just ended measures, else by this machine's recent runs of a similar size "
        "and the CPU other programs leave a training process now (it runs at a lower priority than they do).",
    )


with right:
    forecast_line()
if st.session_state.get("start_problem"):
    st.error(literal(st.session_state.start_problem))


# ---- Your run ----
def curves(job: Job) -> go.Figure:
    """Loss and accuracy of the training and validation images, both measured the same way at every check
    (``train.checks_per_epoch``), and the running mean of the batches as they are trained on, in grey."""
    events = list(job.events)
    step = max(1, len(events) // 400)  # a few hundred points draw fast and look the same
    batches = [e for e in events[::step] if e.kind == "batch"]
    checks = [e for e in events if e.val_loss is not None]

    def at(e: Progress) -> float:
        return e.epoch - 1 + e.batch / e.batches

    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    for col, (running, training, validation) in enumerate(
        (("loss", "train_loss", "val_loss"), ("accuracy", "train_accuracy", "val_accuracy")), start=1
    ):
        for name, color, points, attribute in (
            ("batches (running mean)", "#bbbbbb", batches, running),
            ("training", "#1f77b4", checks, training),
            ("validation", "#ff7f0e", checks, validation),
        ):
            figure.add_scatter(
                x=[at(e) for e in points],
                y=[getattr(e, attribute) for e in points],
                name=name,
                row=1,
                col=col,
                mode="lines" if points is batches else "lines+markers",
                line_color=color,
                showlegend=col == 1,
            )
    figure.update_xaxes(title="epoch", range=[0, job.train_config.epochs * 1.03])  # room for the last marker
    figure.update_yaxes(tickformat=".0%", row=1, col=2)
    figure.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return figure


def curves_note(job: Job) -> str:
    """Why the grey line reads worse than the two measured ones: what the batches are trained with."""
    extras = [
        what
        for what, applies in (
            ("augmentation", job.train_config.augmented_epochs > 0),
            ("label smoothing", job.train_config.label_smoothing > 0),
            ("dropout", job.model_config.dropout > 0),
        )
        if applies
    ]
    trained_with = f", with {', '.join(extras)}" if extras else ""
    return (
        f"Training and validation are measured the same way at each point: the model as it is now, on {CHECK_IMAGES:,} "
        "fixed training images and on the held-out validation images, as they are. The grey line is the mean over "
        f"this epoch's batches as they were trained on{trained_with}: it lags behind the model."
    )


# Fragments redraw parts of the page on a timer without rerunning the rest. The progress line is cheap and
# redrawn every second; the curves cost more (a Plotly figure) and the queue changes slowly, so they are
# redrawn less often: on a busy server, redraws that take longer than their interval pile up and the
# page falls behind the run.
@st.fragment(run_every=1.0 if busy else None)
def live_progress(job: Job) -> None:
    job.heartbeat()
    if not job.done:
        common.show_progress(job, queue)
    if job.done and busy:
        st.rerun()  # the run just ended: redraw the whole page, history and sidebar included


@st.fragment(run_every=4.0 if busy else None)
def live_curves(job: Job) -> None:
    if job.events:
        st.plotly_chart(curves(job), width="stretch", key="curves", on_select="ignore")
        st.caption(curves_note(job))
        explain_view.watch_live(job.watch, [e.watch for e in job.epochs() if e.watch is not None])


if job is not None:
    st.subheader(f"Your run: {literal(job.name)}")
    if job.status == "finished" and job.checkpoint is not None:
        st.success(f"**{literal(job.name)}** saved: test accuracy {job.checkpoint.metrics['test_accuracy']:.2%}.")
        st.button("Make it the active model", on_click=common.select_model, args=(job.name,))
    elif job.status == "cancelled":
        why = f" ({literal(job.error)})" if job.error else ""
        st.warning(f"**{literal(job.name)}** was cancelled{why}; nothing was saved.")
    elif job.status == "failed":
        st.error(f"**{literal(job.name)}** failed: {literal(job.error)}")
    live_progress(job)
    live_curves(job)

experiments_view.panel(job)


# ---- The queue: every session's runs, with progress and a way to cancel them ----
@st.fragment(run_every=3.0 if queue.active() else None)
def queue_view() -> None:
    """Every unfinished run on this server, whoever started it: what is running, who waits, and when each starts."""
    active = queue.active()
    if not active:
        st.caption("Nothing is training now; a run you start begins at once.")
        return
    for position, other in enumerate(active):
        mine = other is st.session_state.get("job") or other is sweep_view.own_sweep()
        text, cancel = st.columns([6, 1], vertical_alignment="center")
        with text:
            who = "yours" if mine else "another session's"
            if other.status == "running":
                st.markdown(f"**{literal(other.name)}** ({who}) · {common.status_line(other, queue)}")
                st.progress(other.fraction)
            else:
                st.markdown(
                    f"**{literal(other.name)}** ({who}) · waiting, number {position + 1} in line · starts in "
                    f"{describe_seconds(queue.starts_in(other))} · takes {describe_seconds(other.remaining_seconds())}"
                )
        cancel.button(
            "Cancel",
            key=f"cancel-{other.name}",
            on_click=other.cancel,
            disabled=other.cancel_requested,
            help="Any session may cancel any run: the server trains one at a time for everyone.",
        )
    if all(j.done for j in active):
        st.rerun()


st.header("Queue")
queue_view()

# ---- Sweeps: Optuna searches the settings, one trial at a time through the same queue ----
sweep_view.panel(queue, history)

# ---- Replay: how a finished run's predictions changed, epoch by epoch ----
explain_view.watch_replay(common.all_checkpoints()[0], preferred=job.name if job is not None else None)

# ---- Run history ----
st.header("Run history")
if skipped_lines:
    with st.expander(f"{len(skipped_lines)} damaged line(s) of the run log were skipped", icon="⚠️"):
        for problem in skipped_lines[:20]:
            st.caption(literal(problem))
if not history:
    st.caption("No runs yet.")
else:
    readable = {c.name for c in common.all_checkpoints()[0]}
    rows = history_rows(history, active=st.session_state.get("active_model"))
    table = pd.DataFrame(settings_view.history_words(rows))

    def activate() -> None:
        rows = st.session_state.history.selection.rows
        if not rows:
            return
        row = table.iloc[rows[0]]
        if row["name"] in readable:
            common.select_model(row["name"])
            st.session_state.history_note = ""
        else:
            st.session_state.history_note = no_model_reason(row.to_dict())

    st.caption("Click a column to sort; select a finished run to make it the active model (marked ●).")
    if st.session_state.get("history_note"):
        st.warning(st.session_state.history_note)
    table["active"] = table["active"].map({True: "●", False: ""})
    st.dataframe(
        table,
        key="history",
        on_select=activate,
        selection_mode="single-row",
        hide_index=True,
        placeholder="",  # a cancelled run has no accuracy: an empty cell, not the word "None"
        column_config={
            "active": st.column_config.TextColumn("", width=30, pinned=True, help="the active model"),
            "name": st.column_config.TextColumn(pinned=True, width="medium"),
            "status": st.column_config.TextColumn(width="small"),
            "test accuracy": st.column_config.NumberColumn(format="percent"),
            "val accuracy": st.column_config.NumberColumn(format="percent"),
            "seconds": st.column_config.NumberColumn(format="%.0f"),
            **settings_view.history_columns(),
            "error": st.column_config.TextColumn(width="large"),
        },
    )
