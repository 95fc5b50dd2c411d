"""What every page shares: cached models and data, the active model in the sidebar, and display helpers.

Pages stay thin: the work is in ``mnist_core``; this module only caches it for a
server that many browser sessions use at once. Models, the dataset and the training
queue are one copy per server (``st.cache_resource``); per-model test predictions are
cached arrays (``st.cache_data``); what a user chose lives in ``st.session_state``,
so two sessions never see each other's choices.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image, ImageDraw, ImageFont

import settings_view
from mnist_core import data, places
from mnist_core.checkpoints import Checkpoint, scan_checkpoints
from mnist_core.data import MNIST, DataError
from mnist_core.evaluate import Evaluation
from mnist_core.inference import predict_probabilities
from mnist_core.jobs import Job, TrainingQueue
from wording import describe_seconds, literal, trained_on, wrong_record

GREEN, RED = (46, 160, 67), (218, 54, 51)
# Streamlit's own copy of the Material Symbols font: inline icons use it, but a ":material/...:"
# page icon makes the browser fetch an SVG from fonts.gstatic.com, which fails offline.
MATERIAL_FONT = next((Path(st.__file__).parent / "static" / "static" / "media").glob("MaterialSymbols-Rounded*.woff2"))
OWN_RUN_HEARTBEAT_S = 5.0


def page(title: str, icon: str, own_run: bool = True) -> Checkpoint | None:
    """Set up a page (the first Streamlit call each page makes) and return the active model.

    With ``own_run`` the sidebar says how this session's unfinished run is doing (the
    Train page, which shows it in full, turns that off).
    """
    st.set_page_config(page_title=f"{title} · MNIST lab", page_icon=icon_image(icon), layout="wide")
    job = st.session_state.get("job")
    if own_run and job is not None and not job.done:
        with st.sidebar:
            own_run_status()
    return active_model()


@st.cache_resource
def icon_image(icon: str) -> Image.Image:
    """A ``:material/name:`` icon drawn from the font Streamlit serves itself, so the tab icon works offline."""
    name = icon.removeprefix(":material/").removesuffix(":")
    font = ImageFont.truetype(str(MATERIAL_FONT), 56)
    image = Image.new("RGBA", (64, 64))
    ImageDraw.Draw(image).text((32, 32), name, font=font, fill="#ff4b4b", anchor="mm")
    return image


def status_line(job: Job, queue: TrainingQueue) -> str:
    """What a job is doing right now, in words: the same sentence on every page and in every session."""
    now = time.time()
    if job.cancel_requested and not job.done:
        return "stopping after the current batch…"
    if job.phase == "queued":
        ahead = queue.ahead_of(job)
        return (
            f"queued behind {', '.join(literal(j.name) for j in ahead)}: number {len(ahead) + 1} in line, "
            f"starts in {describe_seconds(queue.starts_in(job))}"
        )
    if job.phase == "loading":
        return f"loading MNIST and building the model… {now - (job.started or now):.0f} s"
    if job.phase == "training" and job.latest is not None:
        p = job.latest
        trial = f"trial {job.units_done + 1} of {job.units} · " if job.units > 1 else ""
        return (
            f"{trial}epoch {p.epoch}/{p.epochs} · batch {p.batch}/{p.batches} · "
            f"ETA {describe_seconds(job.remaining_seconds())} · {p.images_per_sec:,.0f} images/s"
        )
    if job.phase == "evaluating":
        left = describe_seconds(job.remaining_seconds())
        return f"training done; testing on the 10,000 test images and saving… {left} left"
    return job.status


def show_progress(job: Job, queue: TrainingQueue) -> None:
    """A progress bar (or, while queued, a note) with ``status_line``."""
    if job.phase == "queued":
        st.info(f"**{literal(job.name)}** is {status_line(job, queue)}.")
    else:
        st.progress(job.fraction, text=f"**{literal(job.name)}** · {status_line(job, queue)}")


@st.fragment(run_every=OWN_RUN_HEARTBEAT_S)
def own_run_status() -> None:
    """This session's unfinished run, on every page; each refresh tells the queue the run is still wanted."""
    job: Job | None = st.session_state.get("job")
    if job is None:
        return
    job.heartbeat()
    if job.done:
        st.rerun()  # redraw the page: the model picker may now hold the new model
    queue = training_queue(str(checkpoint_dir()))
    st.caption(f"Your run **{literal(job.name)}**: {status_line(job, queue)}")


def checkpoint_dir() -> Path:
    """Read at call time (not import time) so tests can point the app at a temporary folder."""
    return places.checkpoint_dir()


def all_checkpoints() -> tuple[list[Checkpoint], dict[str, str]]:
    """(readable checkpoints newest first, unreadable file name -> why); only changed files are read again.

    The default model is listed even when the folder has none: it ships with the package."""
    return scan_checkpoints(checkpoint_dir(), also=places.default_checkpoint())


def active_model() -> Checkpoint | None:
    """The sidebar's model picker, shared by all pages of this browser session.

    The choice starts as the committed default model (or the newest one if that is
    missing) and stays until the user picks another, here or in the Train page's history.
    """
    good, bad = all_checkpoints()
    by_name = {c.name: c for c in good}
    with st.sidebar:
        if not good:
            st.error(f"No usable checkpoint in {literal(checkpoint_dir())}. Train one on the Train page.")
        else:
            if st.session_state.get("active_model") not in by_name:
                st.session_state.active_model = "default" if "default" in by_name else good[0].name
            # The widget has its own key, refreshed from ours on every run: Streamlit forgets a
            # widget's state when the user switches pages, but not a plain session value.
            st.session_state.model_picker = st.session_state.active_model
            active = by_name[st.session_state.active_model]
            measured = measured_evaluation(active)

            def label(name: str) -> str:
                accuracy = (
                    measured.accuracy
                    if measured and name == active.name
                    else by_name[name].metrics.get("test_accuracy", 0)
                )
                return f"{name} · {accuracy:.2%} · {summary(by_name[name])}"

            st.selectbox(
                "Active model",
                list(by_name),
                key="model_picker",
                on_change=lambda: select_model(st.session_state.model_picker),
                format_func=label,
                help="Used by every page: Draw predicts with it, Evaluate examines it. The active model's accuracy "
                "is measured on the 10,000 test images; the others' are as recorded in their files.",
            )
            # The box cuts a label at the sidebar's edge ("...conv 32->64, 8 e"): the picked one, whole, in words.
            accuracy = measured.accuracy if measured else active.metrics.get("test_accuracy", 0)
            st.caption(f"{accuracy:.2%} on the test images · {summary(active, words=True)}")
            recorded = measured.wrong_record(active.metrics) if measured else None
            if measured and recorded is not None:
                problem = wrong_record(recorded, measured.accuracy, len(measured.labels))
                st.warning(f"**{literal(active.name)}**: {problem}.", icon=":material/gpp_maybe:")
        if bad:
            with st.expander(f"{len(bad)} unreadable checkpoint(s)", icon=":material/warning:"):
                for name, problem in bad.items():
                    st.caption(f"**{literal(name)}**: {literal(problem)}")
    return by_name.get(st.session_state.get("active_model", ""))


def summary(checkpoint: Checkpoint, words: bool = False) -> str:
    """A few words that tell runs apart in the model picker: the network's size and the training length."""
    m, t = checkpoint.model_config, checkpoint.train_config
    epochs = f"{t.epochs} epoch{'s' * (t.epochs != 1)}" if words else f"{t.epochs} ep"
    return f"conv {m.conv1_channels}→{m.conv2_channels}, {epochs}"


def select_model(name: str) -> None:
    """Make ``name`` the active model of this session (for callbacks, before the sidebar is drawn)."""
    st.session_state.active_model = name


def ensure_downloaded() -> None:
    """Fetch MNIST on first use, with a progress bar; stop the page with a message if that fails."""
    if data.is_downloaded():
        return
    bar = st.progress(0.0, text="Downloading MNIST (about 11 MB)…")

    def report(name: str, done: int, total: int) -> None:
        bar.progress(min(done / total, 1.0) if total else 1.0, text=f"Downloading {name}: {done / 1e6:.1f} MB")

    try:
        data.fetch(progress=report)
    except DataError as exc:
        st.error(f"MNIST could not be downloaded: {literal(exc)}")
        st.stop()
    bar.empty()


@st.cache_resource(show_spinner="Loading MNIST into memory…")
def dataset() -> MNIST:
    """One in-memory copy per server, shared by pages and the training worker."""
    return data.load_mnist()


@st.cache_resource
def training_queue(directory: str) -> TrainingQueue:
    """The server's only training queue for that folder: every session submits here; its training process loads
    MNIST itself."""
    return TrainingQueue(directory)


# How a cache names a model: by its file's bytes (Checkpoint.sha256). A copy of a file is the same model and is
# not measured again; a file retrained under the same name is another. Every cache that takes a model uses it.
BY_CONTENT: dict[str | type, Callable[[Any], Any]] = {Checkpoint: lambda checkpoint: checkpoint.sha256}


@st.cache_data(show_spinner="Running the model over the 10,000 test images…", max_entries=8, hash_funcs=BY_CONTENT)
def test_probabilities(checkpoint: Checkpoint) -> np.ndarray:
    """(10000, 10) softmax outputs."""
    return predict_probabilities(checkpoint.model, dataset().test_images).numpy()


def test_evaluation(checkpoint: Checkpoint) -> Evaluation:
    """The model measured on the test set, its predictions cached per model; MNIST must be downloaded."""
    return Evaluation(labels=dataset().test_labels, probabilities=torch.from_numpy(test_probabilities(checkpoint)))


def measured_evaluation(checkpoint: Checkpoint) -> Evaluation | None:
    """``test_evaluation``, or None while MNIST is not downloaded.

    A file's recorded accuracy is only a claim; what the pages show as a model's accuracy is this.
    """
    return test_evaluation(checkpoint) if data.is_downloaded() else None


@st.cache_data(show_spinner=False, max_entries=4, hash_funcs=BY_CONTENT)
def onnx_file(checkpoint: Checkpoint) -> bytes:
    """The model as ONNX bytes."""
    from mnist_core.export import onnx_bytes

    return onnx_bytes(checkpoint.model)


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """Blow pixels up into blocks: the browser would blur a small image when scaling it."""
    return np.kron(image, np.ones((scale, scale, *[1] * (image.ndim - 2)), dtype=image.dtype))


def framed(image: np.ndarray, correct: bool, scale: int = 3) -> np.ndarray:
    """An enlarged RGB copy of a 28x28 digit with a green (right) or red (wrong) frame."""
    big = enlarge(image, scale)
    rgb = np.repeat(big[:, :, None], 3, axis=2)
    border = max(2, scale)
    rgb[:border], rgb[-border:], rgb[:, :border], rgb[:, -border:] = [GREEN if correct else RED] * 4
    return rgb


def probability_chart(probabilities: list[float] | np.ndarray, true: int | None = None) -> go.Figure:
    """Ten bars; the predicted digit is highlighted, and the true one outlined when known."""
    probabilities = [float(p) for p in probabilities]
    best = int(np.argmax(probabilities))
    colors = ["#1f77b4" if d == best else "#c7d3e0" for d in range(10)]
    fig = go.Figure(
        go.Bar(
            x=list(range(10)),
            y=probabilities,
            marker_color=colors,
            marker_line_color=["#2ea043" if d == true else "rgba(0,0,0,0)" for d in range(10)],
            marker_line_width=3,
            text=[f"{p:.0%}" if p >= 0.01 else "" for p in probabilities],
            textposition="outside",
            textfont=dict(size=14),
            cliponaxis=False,
            hovertemplate="digit %{x}: %{y:.2%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=280,
        margin=dict(l=10, r=10, t=20, b=10),
        showlegend=False,
        font=dict(size=15),  # readable in the narrow detail column of a 1400 px window
        uniformtext=dict(minsize=13, mode="show"),
        xaxis=dict(tickmode="linear", title="digit"),
        yaxis=dict(range=[0, 1.15], tickformat=".0%", title="probability"),
    )
    return fig


def describe(checkpoint: Checkpoint) -> dict[str, str]:
    """A model's card as label -> text: what it is, how good, and how it was made (and on what)."""
    metrics, measured = checkpoint.metrics, measured_evaluation(checkpoint)
    recorded = f"{metrics['test_accuracy']:.2%} (recorded)" if "test_accuracy" in metrics else "unknown"
    return {
        "Test accuracy": f"{measured.accuracy:.2%}" if measured else recorded,
        "Parameters": f"{checkpoint.model.num_parameters:,}",
        "Training time": f"{metrics['train_seconds']:.0f} s" if "train_seconds" in metrics else "unknown",
        "Trained on": trained_on(metrics),
        "Created": checkpoint.created.replace("T", " ").replace("+00:00", " UTC") or "unknown",
        "Architecture": settings_view.line(checkpoint.model_config, rare=True),
        "Training": settings_view.line(checkpoint.train_config),
    }
