"""Evaluate: how good the active model is, where it is confused, and the very images it gets wrong."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

import common
import explain_view
from mnist_core.data import to_pixels
from mnist_core.evaluate import ORDERS, Order
from wording import ORDER_LABELS, literal

ANY = "any"
PER_PAGE = 24
COLUMNS = 6
TILE = 28 * 2 + 16  # pixels of one image in the grid, with the gap around it
ROW = TILE + 20  # a row of the grid: an image and its caption's two short lines, which fit a phone's narrow tiles

model = common.page("Evaluate", ":material/search_insights:")
st.title("Evaluate a model")
if model is None:
    st.warning("No model to evaluate yet: train one on the Train page.")
    st.stop()
common.ensure_downloaded()
mnist = common.dataset()
result = common.test_evaluation(model)
labels, predictions = result.labels.numpy(), result.predictions.numpy()
confidence = result.confidence.numpy()
errors = predictions != labels

# ---- Summary ----
st.caption(
    f"**{literal(model.name)}** (pick another in the sidebar) on the {len(labels):,} test images it never trained on."
)
per_class = pd.DataFrame(result.per_class()).set_index("digit")
a, b, c, d = st.columns(4)
a.metric("Accuracy", f"{result.accuracy:.2%}")
b.metric("Errors", f"{errors.sum():,} of {len(labels):,}")
c.metric("Macro F1", f"{per_class.f1.mean():.4f}")
d.metric("Mean confidence when wrong", f"{confidence[errors].mean():.0%}" if errors.any() else "–")


# ---- Confusion matrix ----
def filter_by_cell() -> None:
    """A click on cell (true i, predicted j) filters the explorer and scrolls to it (diagonal: the correct ones);
    an empty cell says so at once."""
    points = st.session_state.confusion.selection.points
    if points:
        true, predicted = int(points[0]["y"]), int(points[0]["x"])
        st.session_state.update(true_filter=true, predicted_filter=predicted, gallery=true == predicted)
        if result.confusion[true, predicted]:
            st.session_state.scroll_to_explorer = st.session_state.get("scroll_to_explorer", 0) + 1
        else:  # nothing to scroll to: said where the user is looking
            st.toast(f"Empty cell: the model never read a true {true} as a {predicted}.", icon=":material/ads_click:")


def confusion_chart(counts: np.ndarray, rates: np.ndarray, as_rates: bool) -> go.Figure:
    """The matrix as square markers, not a heatmap: Streamlit reports clicks on markers, not on heatmap cells.

    Errors are tinted by their share of the row (square root, so a few still show),
    correct answers green, and a cell that holds nothing is left blank.
    """
    true, predicted = np.divmod(np.arange(100), 10)
    counts, rates = counts.flatten(), rates.flatten()
    strength = np.sqrt(np.where(true == predicted, 0, rates) / max(np.where(true == predicted, 0, rates).max(), 1e-12))
    colors = [
        "rgba(0,0,0,0)" if n == 0 else "#c8e6c9" if t == p else f"rgba(218,54,51,{0.12 + 0.88 * s:.2f})"
        for n, t, p, s in zip(counts, true, predicted, strength)
    ]
    text = [(f"{r:.1%}" if r >= 0.0005 else "<0.1%") if as_rates else str(n) for n, r in zip(counts, rates)]
    figure = go.Figure(
        go.Scatter(
            x=predicted,
            y=true,
            mode="markers+text",
            text=[t if n else "" for t, n in zip(text, counts)],
            textfont=dict(size=12 if as_rates else 13, color=np.where(strength > 0.6, "white", "#31333f")),
            marker=dict(
                symbol="square", size=38, color=colors, line=dict(width=np.where(counts == 0, 1, 0), color="#e6e6e6")
            ),
            customdata=np.stack([counts, rates], axis=1),
            unselected=dict(marker=dict(opacity=0.5), textfont=dict(color="#31333f")),
            hovertemplate="true %{y}, predicted %{x}: %{customdata[0]} images (%{customdata[1]:.1%} of the %{y}s)"
            "<extra></extra>",
        )
    )
    figure.update_layout(
        height=470,
        margin=dict(l=10, r=10, t=10, b=10),
        clickmode="event+select",
        font=dict(size=14),
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
    view = st.segmented_control(
        "Show", ["counts", "% of each row"], key="matrix_view", default="counts", persist_state="session"
    )
    st.caption("Rows: the true digit; columns: what the model said. Click a cell to see those images below.")
    st.plotly_chart(
        confusion_chart(result.confusion.numpy(), result.confusion_rates().numpy(), view == "% of each row"),
        key="confusion",
        on_select=filter_by_cell,
        selection_mode="points",
        width="stretch",
        config={"displayModeBar": False},
    )
    confused = result.most_confused()
    st.markdown(
        f"The commonest mistake: a true **{confused[0]}** read as **{confused[1]}**, {confused[2]:,} times "
        f"({confused[2] / per_class.support[confused[0]]:.1%} of the {confused[0]}s)."
        if confused
        else "No mistakes: every test image is on the diagonal."
    )
with table:
    st.subheader("Per digit")
    st.dataframe(
        per_class,
        width="stretch",
        column_config={name: st.column_config.NumberColumn(format="%.4f") for name in ("precision", "recall", "f1")},
    )
    hardest, easiest = per_class.recall.idxmin(), per_class.recall.idxmax()
    st.markdown(
        f"Hardest digit: **{hardest}**, found {per_class.recall[hardest]:.1%} of the time (recall); the easiest: "
        f"**{easiest}**, {per_class.recall[easiest]:.1%}. Precision: how often an answer of that digit is right."
    )

explain_view.calibration(model, result)


# ---- Error explorer ----
def image_grid(on_page: np.ndarray, inspected: int) -> go.Figure:
    """The page's images as one clickable picture: each image carries an invisible marker the size of the image."""
    rows = -(-len(on_page) // COLUMNS)
    pixels = to_pixels(mnist.test_images[torch.from_numpy(on_page)])
    mosaic = np.full((rows * ROW, COLUMNS * TILE, 3), 255, np.uint8)
    for k, (index, image) in enumerate(zip(on_page, pixels)):
        top, left = (k // COLUMNS) * ROW + 4, (k % COLUMNS) * TILE + 8
        mosaic[top : top + 56, left : left + 56] = common.framed(image, not errors[index], scale=2)
    slots = np.arange(len(on_page))
    x, y = (slots % COLUMNS) * TILE + 36, (slots // COLUMNS) * ROW + 32
    picked = np.flatnonzero(on_page == inspected)
    figure = go.Figure(go.Image(z=mosaic, hoverinfo="skip"))
    figure.add_scatter(
        x=x,
        y=y,
        mode="markers",
        marker=dict(symbol="square", size=64, color="rgba(0,0,0,0.01)"),
        customdata=on_page.tolist(),
        hovertemplate=[
            f"test image #{i}: true {labels[i]}, predicted {predictions[i]} ({confidence[i]:.0%})<extra></extra>"
            for i in on_page
        ],
        unselected=dict(marker=dict(opacity=1)),
        selected=dict(marker=dict(opacity=1)),
    )
    figure.add_scatter(
        x=x,
        y=y + 45,
        mode="text",
        text=[f"{labels[i]} → {predictions[i]}<br>{confidence[i]:.0%}" for i in on_page],
        textfont=dict(size=12, color="#31333f"),
        unselected=dict(textfont=dict(color="#31333f")),
        hoverinfo="skip",
    )
    for p in picked:
        figure.add_shape(
            type="rect", x0=x[p] - 32, x1=x[p] + 32, y0=y[p] - 32, y1=y[p] + 32, line=dict(color="#1f77b4", width=3)
        )
    figure.update_layout(
        height=rows * 135 + 20,
        margin=dict(l=0, r=0, t=0, b=0),
        showlegend=False,
        clickmode="event+select",
        dragmode=False,
        xaxis=dict(visible=False, range=[0, COLUMNS * TILE]),
        yaxis=dict(visible=False, range=[rows * ROW, 0], scaleanchor="x"),
    )
    return figure


def inspect_clicked() -> None:
    points = st.session_state.grid.selection.points
    if points:
        st.session_state.inspected = int(points[0]["customdata"])


explorer = st.container(key="explorer")
with explorer:
    st.header("Error explorer")
    digits = [ANY, *range(10)]
    controls = st.columns([1, 1, 2, 2])
    true_filter = controls[0].selectbox("True digit", digits, key="true_filter", persist_state="session")
    predicted_filter = controls[1].selectbox("Predicted digit", digits, key="predicted_filter", persist_state="session")
    order: Order = controls[2].selectbox(
        "Order", ORDERS, key="order", format_func=ORDER_LABELS.__getitem__, persist_state="session"
    )
    gallery = controls[3].toggle(
        "All predictions, correct ones too",
        key="gallery",
        persist_state="session",
        help="Green frame: right. Red frame: wrong.",
    )
    true = None if true_filter == ANY else int(true_filter)
    predicted = None if predicted_filter == ANY else int(predicted_filter)
    indices = result.select(true, predicted, correct_too=gallery, order=order).numpy()

    if not len(indices):
        right = len(result.select(true, predicted, correct_too=True)) if not gallery else 0
        if right:
            st.info(
                f"The model makes no errors here. Switch on 'All predictions' to see the {right:,} "
                "images it gets right."
            )
        elif true is not None and predicted is not None and true != predicted:
            st.info(f"The model never read a true {true} as a {predicted}: no test image is in this cell.")
        else:
            st.info("No test image matches these filters.")
    else:
        pages = -(-len(indices) // PER_PAGE)
        st.caption(f"{len(indices):,} image(s), {PER_PAGE} per page. Click an image to inspect it.")
        page = st.pagination(pages, key=f"page-{true_filter}-{predicted_filter}-{order}-{gallery}")
        on_page = indices[(page - 1) * PER_PAGE : page * PER_PAGE]
        if st.session_state.get("inspected") not in on_page:  # the detail always shows an image in view
            st.session_state.inspected = int(on_page[0])
        index = st.session_state.inspected

        grid, detail = st.columns([2, 1])
        with grid:
            st.plotly_chart(
                image_grid(on_page, index),
                key="grid",
                on_select=inspect_clicked,
                selection_mode="points",
                width="stretch",
                config={"displayModeBar": False, "scrollZoom": False},
            )
        with detail:
            st.subheader(f"Test image #{index}")
            st.image(common.framed(to_pixels(mnist.test_images[index : index + 1])[0], not errors[index], 6))
            st.markdown(
                f"True **{labels[index]}**, predicted **{predictions[index]}** with {confidence[index]:.1%} confidence."
            )
            st.plotly_chart(
                common.probability_chart(result.probabilities[index].numpy(), true=int(labels[index])),
                width="stretch",
                key="detail",
            )
            explain_view.inspector_maps(model, mnist.test_images[index], int(labels[index]), int(predictions[index]))

if st.session_state.get("scroll_to_explorer"):
    # A click on a matrix cell brings its images into view: they are below the fold. The count makes each
    # script new, so the browser runs it again on the next click.
    st.html(
        f"<script>/* {st.session_state.scroll_to_explorer} */ setTimeout(() => document.querySelector("
        "'.st-key-explorer')?.scrollIntoView({behavior: 'smooth', block: 'start'}), 300);</script>",
        unsafe_allow_javascript=True,
    )
    st.session_state.scroll_to_explorer = 0
