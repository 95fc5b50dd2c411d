"""Evaluate: how good the active model is, where it is confused, and the very images it gets wrong."""

import explain_view
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

import common
from mnist_core.evaluate import Evaluation

ANY = "any"
PER_PAGE = 24
COLUMNS = 6

model = common.page("Evaluate", ":material/search_insights:")
st.title("Evaluate a model")
if model is None:
    st.warning("No model to evaluate yet: train one on the Train page.")
    st.stop()
common.ensure_downloaded()
mnist = common.dataset()
probabilities = common.test_probabilities(model, f"{model.path}:{model.created}")
result = Evaluation(labels=mnist.test_labels, probabilities=torch.from_numpy(probabilities))
labels, predictions = result.labels.numpy(), result.predictions.numpy()
confidence = probabilities[np.arange(len(labels)), predictions]
errors = predictions != labels

st.caption(f"**{model.name}** (pick another in the sidebar) on the {len(labels):,} test images it never trained on.")
per_class = pd.DataFrame(result.per_class()).set_index("digit")
a, b, c, d = st.columns(4)
a.metric("Accuracy", f"{result.accuracy:.2%}")
b.metric("Errors", f"{errors.sum():,} of {len(labels):,}")
c.metric("Macro F1", f"{per_class.f1.mean():.4f}")
d.metric("Mean confidence when wrong", f"{confidence[errors].mean():.0%}" if errors.any() else "–")


def filter_by_cell() -> None:
    """A click on cell (true i, predicted j) filters the explorer; a diagonal cell shows the correct ones."""
    points = st.session_state.confusion.selection.points
    if points:
        true, predicted = int(points[0]["y"]), int(points[0]["x"])
        st.session_state.update(true_filter=true, predicted_filter=predicted)
        if true == predicted:
            st.session_state.gallery = True


def confusion_chart(confusion: np.ndarray) -> go.Figure:
    """The matrix as square markers, not a heatmap: Streamlit reports clicks on markers, not on heatmap cells."""
    true, predicted = np.divmod(np.arange(100), 10)
    counts = confusion.flatten()
    off = np.where(true == predicted, 0, counts)
    strength = np.sqrt(off / max(off.max(), 1))  # square root: a few errors still show
    colors = np.where(true == predicted, "#c8e6c9", [f"rgba(218,54,51,{0.08 + 0.92 * a:.2f})" for a in strength])
    figure = go.Figure(
        go.Scatter(
            x=predicted,
            y=true,
            mode="markers+text",
            text=[str(n) if n else "" for n in counts],
            textfont=dict(size=13, color=np.where(strength > 0.6, "white", "#31333f")),
            marker=dict(symbol="square", size=38, color=colors),
            unselected=dict(marker=dict(opacity=0.5), textfont=dict(color="#31333f")),
            hovertemplate="true %{y}, predicted %{x}: %{text} images<extra></extra>",
        )
    )
    figure.update_layout(
        height=470,
        margin=dict(l=10, r=10, t=10, b=10),
        clickmode="event+select",
        xaxis=dict(
            title="predicted digit",
            tickvals=list(range(10)),
            range=[-0.6, 9.6],
            side="top",
            showgrid=False,
            zeroline=False,
        ),
        yaxis=dict(
            title="true digit",
            tickvals=list(range(10)),
            range=[9.6, -0.6],
            showgrid=False,
            zeroline=False,
            scaleanchor="x",
        ),
    )
    return figure


matrix, table = st.columns([3, 2])
with matrix:
    st.subheader("Confusion matrix")
    st.caption("Rows: the true digit; columns: what the model said. Click a cell to see those images below.")
    st.plotly_chart(
        confusion_chart(result.confusion.numpy()),
        key="confusion",
        on_select=filter_by_cell,
        selection_mode="points",
        width="stretch",
        config={"displayModeBar": False},
    )
with table:
    st.subheader("Per digit")
    st.dataframe(
        per_class,
        width="stretch",
        column_config={name: st.column_config.NumberColumn(format="%.4f") for name in ("precision", "recall", "f1")},
    )

explain_view.calibration(result, f"{model.path}:{model.created}")

st.header("Error explorer")
digits = [ANY, *range(10)]
controls = st.columns([1, 1, 2, 2])
true_filter = controls[0].selectbox("True digit", digits, key="true_filter", persist_state="session")
predicted_filter = controls[1].selectbox("Predicted digit", digits, key="predicted_filter", persist_state="session")
order = controls[2].selectbox(
    "Order", ["most confident first", "least confident first", "test set order"], key="order", persist_state="session"
)
gallery = controls[3].toggle(
    "All predictions, correct ones too",
    key="gallery",
    persist_state="session",
    help="Green frame: right. Red frame: wrong.",
)

shown = np.ones(len(labels), bool) if gallery else errors.copy()
if true_filter != ANY:
    shown &= labels == true_filter
if predicted_filter != ANY:
    shown &= predictions == predicted_filter
indices = np.flatnonzero(shown)
if order != "test set order":
    indices = indices[
        np.argsort(-confidence[indices] if order.startswith("most") else confidence[indices], kind="stable")
    ]

if not len(indices):
    st.info(
        "No test image matches these filters."
        if gallery
        else "The model makes no errors here. Switch on 'All predictions' to see the images it gets right."
    )
    st.stop()

pages = -(-len(indices) // PER_PAGE)
st.caption(f"{len(indices):,} image(s), {PER_PAGE} per page.")
page = st.pagination(pages, key=f"page-{true_filter}-{predicted_filter}-{order}-{gallery}")
on_page = indices[(page - 1) * PER_PAGE : page * PER_PAGE]
if st.session_state.get("inspected") not in indices:
    st.session_state.inspected = int(on_page[0])

pixels = common.to_pixels(mnist.test_images[torch.from_numpy(on_page)])
grid, detail = st.columns([3, 1])
with grid:
    for row in range(0, len(on_page), COLUMNS):
        for column, index, image in zip(st.columns(COLUMNS), on_page[row : row + COLUMNS], pixels[row : row + COLUMNS]):
            right = predictions[index] == labels[index]
            column.image(common.framed(image, right), width="stretch")
            column.button(
                f"{labels[index]} → {predictions[index]} · {confidence[index]:.0%}",
                key=f"inspect-{index}",
                width="stretch",
                type="primary" if index == st.session_state.inspected else "secondary",
                on_click=st.session_state.update,
                kwargs={"inspected": int(index)},
                help=f"Test image #{index}: true {labels[index]}, predicted {predictions[index]}",
            )
with detail:
    index = st.session_state.inspected
    st.subheader(f"Test image #{index}")
    st.image(common.framed(common.to_pixels(mnist.test_images[index : index + 1])[0], not errors[index], scale=6))
    st.markdown(
        f"True **{labels[index]}**, predicted **{predictions[index]}** with {confidence[index]:.1%} confidence."
    )
    st.plotly_chart(
        common.probability_chart(probabilities[index], true=int(labels[index])), width="stretch", key="detail"
    )
    explain_view.inspector_maps(model, mnist.test_images[index], int(labels[index]), int(predictions[index]))
