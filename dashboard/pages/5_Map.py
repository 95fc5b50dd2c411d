"""Map: the 10,000 test images as the model sees them, in two dimensions, with your drawing among them."""

import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

import common
from mnist_core import embed, projection
from mnist_core.checkpoints import Checkpoint
from mnist_core.data import to_pixels
from wording import literal

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
SHOWN = 24  # selected images shown in the inspector
BRAILLE = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]])  # dot bits of a 2x4 braille cell


@st.cache_data(
    show_spinner="Reading the model's penultimate layer for the 10,000 test images…",
    max_entries=8,
    hash_funcs=common.BY_CONTENT,
)
def features(checkpoint: Checkpoint) -> np.ndarray:
    return embed.penultimate(checkpoint.model, common.dataset().test_images)


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=common.BY_CONTENT)
def pca(checkpoint: Checkpoint) -> np.ndarray:
    return projection.project(features(checkpoint), "pca")


@st.cache_resource(max_entries=8, hash_funcs=common.BY_CONTENT)
def umap_job(checkpoint: Checkpoint) -> projection.BackgroundProjection:
    """UMAP of one model's features, asked once per model for the whole server; one map is made at a time."""
    return projection.project_in_background(features(checkpoint), "umap")


@st.cache_data(show_spinner=False)
def hover_pictures() -> list[str]:
    """Each test image as 7 lines of braille (one dot per pixel): a picture in the hover label, no images needed."""
    ink = to_pixels(common.dataset().test_images) > 100  # (N, 28, 28)
    cells = ink.reshape(-1, 7, 4, 14, 2).transpose(0, 1, 3, 2, 4)  # (N, row, col, 4, 2)
    codes = 0x2800 + (cells * BRAILLE).sum((3, 4))
    return ["<br>".join("".join(map(chr, row)) for row in image) for image in codes.tolist()]


model = common.page("Map", ":material/scatter_plot:")
st.title("Map of the test set")
if model is None:
    st.warning("No model to map yet: train one on the Train page.")
    st.stop()
common.ensure_downloaded()
mnist = common.dataset()
values = features(model)
labels = mnist.test_labels.numpy()
predictions = common.test_evaluation(model).predictions.numpy()
wrong = predictions != labels

job = umap_job(model)
umap_points = job.points
ready = umap_points is not None
method = st.segmented_control(
    "Projection",
    ["UMAP", "PCA"],
    key="map_method",
    help="PCA: a straight projection, instant. UMAP: keeps each image near its neighbours, so digits form islands.",
) or ("UMAP" if ready else "PCA")
st.caption(
    f"Each dot is a test image, placed by **{literal(model.name)}**'s {values.shape[1]} hidden-layer activations, "
    "coloured by its true digit; crosses are the images it gets wrong. Hover to see one, click or lasso to inspect."
)


@st.fragment(run_every=None if job.done() else 2.0)
def umap_status() -> None:
    """Polls the background UMAP; when it becomes ready, the whole page reruns to draw it."""
    if not job.done() and job.started is None:
        st.info(
            f"UMAP waits its turn: this server makes one map at a time, for every session, and "
            f"{job.ahead} {'is' if job.ahead == 1 else 'are'} ahead of this one. The PCA map is shown meanwhile.",
            icon=":material/hourglass_top:",
        )
    elif not job.done():
        st.info(
            f"UMAP is being computed in the background: {time.time() - (job.started or time.time()):.0f} s so far "
            "(about 20 s on 2 cores). The PCA map is shown meanwhile.",
            icon=":material/hourglass_top:",
        )
    elif job.error is not None:
        st.error(f"UMAP failed ({literal(job.error)}); the PCA map is shown.")
    elif not ready:  # it finished since this page was drawn
        st.rerun()


umap_status()
points = umap_points if method == "UMAP" and umap_points is not None else pca(model)
shown_method = "UMAP" if points is umap_points else "PCA"

pictures = hover_pictures()
figure = go.Figure()
for digit in range(10):
    for is_wrong in (False, True):
        index = np.flatnonzero((labels == digit) & (wrong == is_wrong))
        figure.add_scattergl(
            x=points[index, 0],
            y=points[index, 1],
            mode="markers",
            name=f"{digit}" if not is_wrong else f"{digit}, misread",
            legendgroup=str(digit),
            showlegend=not is_wrong,
            customdata=np.stack([index, predictions[index]], axis=1).tolist(),  # a list: selections send it back
            text=[pictures[i] for i in index],
            marker=dict(
                color=COLOURS[digit],
                size=9 if is_wrong else 4,
                symbol="x" if is_wrong else "circle",
                line=dict(width=1, color="black") if is_wrong else dict(width=0),
                opacity=1 if is_wrong else 0.6,
            ),
            hovertemplate=f"#%{{customdata[0]}}: a {digit}, read as %{{customdata[1]}}<br>%{{text}}<extra></extra>",
        )
drawing = st.session_state.get("last_drawing")
if drawing is not None:
    spot = projection.place(embed.penultimate(model.model, drawing[None]), values, points)
    figure.add_scattergl(
        x=spot[:, 0],
        y=spot[:, 1],
        mode="markers+text",
        name="your drawing",
        text=["your drawing"],
        textposition="top center",
        marker=dict(symbol="star", size=22, color="gold", line=dict(width=2, color="black")),
        hovertemplate="your last drawing from the Draw page<extra></extra>",
    )
figure.update_layout(
    height=700,
    margin=dict(l=10, r=10, t=40, b=10),
    title=f"{shown_method} of the penultimate layer",
    hoverlabel=dict(font_family="monospace", bgcolor="white"),
    legend=dict(title="true digit", itemsizing="constant"),
    dragmode="lasso",
    xaxis=dict(showticklabels=False, zeroline=False),
    yaxis=dict(showticklabels=False, zeroline=False),
)
if drawing is None:
    st.caption("Draw a digit on the Draw page and it appears here as a star, among the images it resembles most.")
chart = st.plotly_chart(
    figure, key=f"map-{shown_method}", on_select="rerun", selection_mode=("points", "box", "lasso"), width="stretch"
)

picked = {int(p["customdata"][0]) for p in chart.selection.points if p.get("customdata")}
selected = sorted(picked, key=lambda i: (not wrong[i], i))  # the misread ones first: they are why one looks
st.header("Inspector")
if not selected:
    st.caption("Click a dot, or drag a lasso or box around some, to see those images here.")
    st.stop()
errors = int(wrong[selected].sum())
counts = np.bincount(labels[selected], minlength=10)
st.markdown(
    f"**{len(selected):,}** image(s) selected, **{errors}** of them misread; mostly "
    + ", ".join(f"{d}s ({counts[d]})" for d in np.argsort(-counts)[:3] if counts[d])
    + (f". Showing {SHOWN}, misread ones first." if len(selected) > SHOWN else ".")
)
pixels = to_pixels(mnist.test_images[torch.tensor(selected[:SHOWN])])
for start in range(0, min(len(selected), SHOWN), 8):
    for column, number, image in zip(st.columns(8), selected[start : start + 8], pixels[start : start + 8]):
        column.image(
            common.framed(image, not wrong[number]),
            caption=f"#{number}: {labels[number]} → {predictions[number]}",
            width="stretch",
        )
