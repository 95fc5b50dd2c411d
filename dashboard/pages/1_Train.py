"""Train: settings in the sidebar, a live view of the run, and the history of every run."""

import dataclasses

import explain_view
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import common
from mnist_core.checkpoints import CheckpointError
from mnist_core.jobs import Job, estimate_seconds
from mnist_core.runs import read_runs
from mnist_core.train import PRESETS

TRAIN_COLUMNS = {"epochs": "epochs", "batch": "batch_size", "lr": "lr", "augment": "augment", "seed": "seed"}
MODEL_COLUMNS = {
    "conv1": "conv1_channels",
    "conv2": "conv2_channels",
    "kernel": "kernel_size",
    "hidden": "hidden_units",
    "dropout": "dropout",
    "batch norm": "batch_norm",
}

common.page("Train", ":material/model_training:")
queue = common.training_queue(str(common.checkpoint_dir()))
history = read_runs(common.checkpoint_dir())


def apply_preset() -> None:
    """Copy the chosen preset into the sliders (a callback, so it runs before they are drawn)."""
    model, train = PRESETS[st.session_state.preset]
    st.session_state.update(
        epochs=train.epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        augment=train.augment,
        seed=train.seed,
        conv1=model.conv1_channels,
        conv2=model.conv2_channels,
        hidden=model.hidden_units,
        dropout=model.dropout,
    )


def choices(*values: float) -> list:
    """Slider stops, plus every preset's value: a value a slider cannot show would silently become another."""
    return sorted(set(values))


models, trains = [m for m, _ in PRESETS.values()], [t for _, t in PRESETS.values()]
if "epochs" not in st.session_state:
    st.session_state.preset = "quick"
    apply_preset()

with st.sidebar:
    st.header("Settings")
    st.selectbox(
        "Preset",
        list(PRESETS),
        key="preset",
        format_func=str.title,
        on_change=apply_preset,
        persist_state="session",
        help="Quick: seconds. Best: the most accurate, several minutes.",
    )
    st.slider("Epochs", 1, max(30, *(t.epochs for t in trains)), key="epochs", persist_state="session")
    st.select_slider(
        "Batch size",
        choices(32, 64, 128, 256, 512, *(t.batch_size for t in trains)),
        key="batch_size",
        persist_state="session",
    )
    st.select_slider(
        "Learning rate",
        choices(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, *(t.lr for t in trains)),
        key="lr",
        format_func=lambda v: f"{v:g}",
        persist_state="session",
    )
    st.select_slider(
        "Conv 1 channels",
        choices(4, 8, 16, 32, 64, *(m.conv1_channels for m in models)),
        key="conv1",
        persist_state="session",
    )
    st.select_slider(
        "Conv 2 channels",
        choices(8, 16, 32, 64, 128, *(m.conv2_channels for m in models)),
        key="conv2",
        persist_state="session",
    )
    st.select_slider(
        "Hidden units",
        choices(16, 32, 64, 128, 256, 512, *(m.hidden_units for m in models)),
        key="hidden",
        persist_state="session",
    )
    st.slider("Dropout", 0.0, 0.5, step=0.05, key="dropout", persist_state="session")
    st.toggle(
        "Augmentation", key="augment", help="Random rotation, shift, scale and stroke width", persist_state="session"
    )
    st.number_input("Seed", min_value=0, step=1, key="seed", persist_state="session")
    run_name = st.text_input("Run name (optional)", placeholder="run-<date>-<time>", max_chars=64).strip()

preset_model, preset_train = PRESETS[st.session_state.preset]
model_config = dataclasses.replace(
    preset_model,
    conv1_channels=st.session_state.conv1,
    conv2_channels=st.session_state.conv2,
    hidden_units=st.session_state.hidden,
    dropout=st.session_state.dropout,
)
train_config = dataclasses.replace(
    preset_train,
    epochs=st.session_state.epochs,
    lr=st.session_state.lr,
    batch_size=st.session_state.batch_size,
    augment=st.session_state.augment,
    seed=int(st.session_state.seed),
)
estimate = estimate_seconds(model_config, train_config, history)
st.sidebar.caption(
    f"Estimated duration: about {estimate / 60:.0f} min"
    if estimate >= 90
    else f"Estimated duration: about {max(estimate, 5):.0f} s"
)

st.title("Train a model")
job: Job | None = st.session_state.get("job")
busy = job is not None and not job.done
start, cancel, _ = st.columns([1, 1, 4])
if start.button("Start training", type="primary", disabled=busy):
    common.ensure_downloaded()
    try:
        job = st.session_state.job = queue.submit(
            model_config, train_config, name=run_name or None, drawing=st.session_state.get("last_drawing")
        )
    except CheckpointError as exc:
        st.error(str(exc))
    busy = job is not None and not job.done
if cancel.button("Cancel", disabled=not busy) and job is not None:
    job.cancel()

others = queue.running()
if not busy and others is not None:
    st.info(f"Another session is training {others.name}; a run you start now waits until it ends.")


def curves(job: Job) -> go.Figure:
    """Loss and accuracy: the running training mean after each batch, validation after each epoch."""
    events = list(job.events)
    step = max(1, len(events) // 400)  # a few hundred points draw fast and look the same
    batches = [e for e in events[::step] if e.kind == "batch"]
    epochs = [e for e in events if e.kind == "epoch"]
    x = [e.epoch - 1 + e.batch / e.batches for e in batches]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    for col, train_of, val_of in (
        (1, lambda e: e.loss, lambda e: e.val_loss),
        (2, lambda e: e.accuracy, lambda e: e.val_accuracy),
    ):
        figure.add_scatter(
            x=x,
            y=[train_of(e) for e in batches],
            name="training",
            row=1,
            col=col,
            line_color="#1f77b4",
            showlegend=col == 1,
        )
        figure.add_scatter(
            x=[e.epoch for e in epochs],
            y=[val_of(e) for e in epochs],
            name="validation",
            row=1,
            col=col,
            mode="lines+markers",
            line_color="#ff7f0e",
            showlegend=col == 1,
        )
    figure.update_xaxes(title="epoch", range=[0, job.train_config.epochs * 1.03])  # room for the last marker
    figure.update_yaxes(tickformat=".0%", row=1, col=2)
    figure.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return figure


@st.fragment(run_every=1.0 if busy else None)
def live_view(job: Job) -> None:
    """Redrawn every second while the job runs, without rerunning (or freezing) the rest of the page."""
    if job.status == "queued":
        ahead = ", ".join(j.name for j in queue.ahead_of(job))
        st.info(f"**{job.name}** is queued behind {ahead}; it starts as soon as that run ends.")
    elif job.status == "running" and job.latest is None:
        st.info(f"**{job.name}**: loading MNIST and preparing…")
    elif job.latest is not None:
        p = job.latest
        done = ((p.epoch - 1) * p.batches + p.batch) / (p.epochs * p.batches)
        st.progress(
            done,
            text=f"**{job.name}** · epoch {p.epoch}/{p.epochs} · batch {p.batch}/{p.batches} · "
            f"ETA {p.eta_s:.0f} s · {p.images_per_sec:,.0f} images/s",
        )
        st.plotly_chart(curves(job), width="stretch", key="curves", on_select="ignore")
        explain_view.watch_live(job.watch, [e.watch for e in job.epochs() if e.watch is not None])
    if job.done and busy:
        st.rerun()  # the run just ended: redraw the whole page, history and sidebar included


if job is not None:
    live_view(job)
    if (
        job.status == "finished" and job.checkpoint is not None
    ):  # outside the fragment, so the button reruns the sidebar too
        st.success(f"**{job.name}** saved: test accuracy {job.checkpoint.metrics['test_accuracy']:.2%}.")
        st.button("Make it the active model", on_click=common.select_model, args=(job.name,))
    elif job.status == "cancelled":
        st.warning(f"**{job.name}** was cancelled; nothing was saved.")
    elif job.status == "failed":
        st.error(f"**{job.name}** failed: {job.error}")

explain_view.watch_replay(common.all_checkpoints()[0], preferred=job.name if job is not None else None)

st.header("Run history")
if not history:
    st.caption("No runs yet.")
else:
    readable = {c.name for c in common.all_checkpoints()[0]}
    table = pd.DataFrame(
        [
            {
                "name": r["name"],
                "status": r.get("status"),
                "error": r.get("error", ""),
                "started": r.get("started", "").replace("T", " ")[:19],
                "test accuracy": (r.get("metrics") or {}).get("test_accuracy"),
                "val accuracy": (r.get("metrics") or {}).get("val_accuracy"),
                "seconds": (r.get("metrics") or {}).get("train_seconds"),
                **{label: (r.get("train_config") or {}).get(field) for label, field in TRAIN_COLUMNS.items()},
                **{label: (r.get("model_config") or {}).get(field) for label, field in MODEL_COLUMNS.items()},
            }
            for r in history
        ]
    )

    def activate() -> None:
        rows = st.session_state.history.selection.rows
        if rows and table.name[rows[0]] in readable:
            common.select_model(table.name[rows[0]])

    st.caption("Click a column to sort; select a row to make that run the active model.")
    st.dataframe(
        table,
        key="history",
        on_select=activate,
        selection_mode="single-row",
        hide_index=True,
        column_config={
            "test accuracy": st.column_config.NumberColumn(format="percent"),
            "val accuracy": st.column_config.NumberColumn(format="percent"),
            "seconds": st.column_config.NumberColumn(format="%.0f"),
            "lr": st.column_config.NumberColumn(format="%g"),
        },
    )
