"""Compare: two to four runs side by side, and the test images one run fixed or broke relative to another."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

import common
import settings_view
from mnist_core.compare import Comparison, settings_diff
from mnist_core.data import to_pixels
from mnist_core.train import run_settings
from wording import chart_text, literal

PER_PAGE = 24
COLUMNS = 6
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")  # one per run, in the order picked

active = common.page("Compare", ":material/compare_arrows:")
st.title("Compare runs")
good, _ = common.all_checkpoints()
by_name = {c.name: c for c in good}
if len(by_name) < 2:
    st.warning("Comparing needs two models or more: train another on the Train page.")
    st.stop()

if not [n for n in st.session_state.get("compare_runs", []) if n in by_name]:
    first = active.name if active is not None else good[0].name
    st.session_state.compare_runs = [first, next(n for n in by_name if n != first)]
names = st.multiselect(
    "Runs to compare (2 to 4; the first is the baseline A)",
    list(by_name),
    key="compare_runs",
    max_selections=4,
    persist_state="session",
    format_func=lambda n: f"{n} · {by_name[n].metrics.get('test_accuracy', 0):.2%}",
)
if len(names) < 2:
    st.info("Pick at least two runs.")
    st.stop()
runs = [by_name[n] for n in names]
color = dict(zip(names, COLORS))

common.ensure_downloaded()
mnist = common.dataset()
evaluations = {c.name: common.test_evaluation(c) for c in runs}
baseline = evaluations[names[0]]
for column, name in zip(st.columns(len(names)), names):
    accuracy = evaluations[name].accuracy
    delta = None if name == names[0] else f"{(accuracy - baseline.accuracy) * 100:+.2f} points vs A"
    column.metric(f"{'A' if name == names[0] else 'vs A'} · {literal(name)}", f"{accuracy:.2%}", delta)


def curves() -> go.Figure:
    """Each run's loss and accuracy per epoch: validation solid, training dashed, one color per run."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    for run in runs:
        epochs = [h["epoch"] for h in run.history]
        for col, (train_key, val_key) in enumerate((("loss", "val_loss"), ("accuracy", "val_accuracy")), start=1):
            for key, dash, label in ((val_key, "solid", "validation"), (train_key, "dash", "training")):
                figure.add_scatter(
                    x=epochs,
                    y=[h[key] for h in run.history],
                    name=chart_text(f"{run.name} ({label})"),
                    legendgroup=run.name,
                    mode="lines+markers",
                    line=dict(color=color[run.name], dash=dash),
                    showlegend=col == 1,
                    row=1,
                    col=col,
                )
    figure.update_xaxes(title="epoch", dtick=1)
    figure.update_yaxes(tickformat=".1%", row=1, col=2)
    figure.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return figure


st.header("Learning curves")
st.plotly_chart(curves(), width="stretch", key="curves")

# Full width: with three or four runs, a column of the page is too narrow for the table.
st.subheader("Settings that differ")
diff = settings_diff(runs)
if diff:
    words = [settings_view.shown(run.model_config, run.train_config) for run in runs]
    declared = {s.name: s for s in run_settings()}
    st.dataframe(
        pd.DataFrame(
            {name: [w[field] for field in diff] for name, w in zip(names, words)},
            index=[declared[field].label for field in diff],
        ),
        width="stretch",
    )
else:
    st.caption("The runs were made with the same settings (a different seed or data would still differ).")

st.subheader("Accuracy per digit")
figure = go.Figure(
    [
        go.Bar(
            name=chart_text(name),
            x=list(range(10)),
            y=[row["recall"] for row in evaluations[name].per_class()],
            marker_color=color[name],
            hovertemplate="%{fullData.name}<br>digit %{x}: %{y:.2%}<extra></extra>",
        )
        for name in names
    ]
)
lowest = min(row["recall"] for e in evaluations.values() for row in e.per_class())
figure.update_layout(
    barmode="group",
    height=320,
    margin=dict(l=10, r=10, t=10, b=10),
    xaxis=dict(tickmode="linear", title="digit"),
    yaxis=dict(range=[max(0.0, lowest - 0.01), 1.0], tickformat=".1%", title="test accuracy"),
    legend=dict(orientation="h", y=1.12),
)
st.plotly_chart(figure, width="stretch", key="per-digit")

st.header("Fixed and broken")
a_name = names[0]
b_name = names[1] if len(names) == 2 else st.selectbox("Run B", names[1:], key="compare_b")
comparison = Comparison(evaluations[a_name], evaluations[b_name])
fixed, broken = comparison.fixed.numpy(), comparison.broken.numpy()
m1, m2, m3 = st.columns(3)
m1.metric("Agreement", f"{comparison.agreement:.2%}", help="Images both models give the same digit, right or wrong")
m2.metric("Fixed by B", f"{len(fixed):,}", help=f"Test images {literal(a_name)} gets wrong and {literal(b_name)} right")
m3.metric(
    "Broken by B", f"{len(broken):,}", help=f"Test images {literal(a_name)} gets right and {literal(b_name)} wrong"
)

kind = st.radio("Show", ["fixed", "broken"], key="compare_kind", horizontal=True, format_func=lambda k: f"{k} by B")
indices = fixed if kind == "fixed" else broken
if not len(indices):
    st.info(
        f"{literal(b_name)} {'fixes' if kind == 'fixed' else 'breaks'} no test image relative to {literal(a_name)}."
    )
    st.stop()

labels = mnist.test_labels.numpy()
a_predicted, b_predicted = comparison.a.predictions.numpy(), comparison.b.predictions.numpy()
st.caption(f"{len(indices):,} image(s), {PER_PAGE} per page; under each: true → A's digit / B's digit.")
page = st.pagination(-(-len(indices) // PER_PAGE), key=f"compare-page-{a_name}-{b_name}-{kind}")
on_page = indices[(page - 1) * PER_PAGE : page * PER_PAGE]
if st.session_state.get("compared") not in indices:
    st.session_state.compared = int(on_page[0])

pixels = to_pixels(mnist.test_images[torch.from_numpy(on_page)])
grid, detail = st.columns([3, 2])
with grid:
    for row in range(0, len(on_page), COLUMNS):
        for column, index, image in zip(st.columns(COLUMNS), on_page[row : row + COLUMNS], pixels[row : row + COLUMNS]):
            column.image(common.framed(image, kind == "fixed"), width="stretch")
            column.button(
                f"{labels[index]} → {a_predicted[index]} / {b_predicted[index]}",
                key=f"compare-{index}",
                width="stretch",
                type="primary" if index == st.session_state.compared else "secondary",
                on_click=st.session_state.update,
                kwargs={"compared": int(index)},
                help=f"Test image #{index}: true {labels[index]}, A says {a_predicted[index]}, B {b_predicted[index]}",
            )
with detail:
    index = st.session_state.compared
    st.subheader(f"Test image #{index}: a {labels[index]}")
    st.image(common.enlarge(to_pixels(mnist.test_images[index : index + 1])[0], 5))
    for name, evaluation in ((a_name, comparison.a), (b_name, comparison.b)):
        st.markdown(f"**{literal(name)}** reads **{int(evaluation.predictions[index])}**")
        st.plotly_chart(
            common.probability_chart(evaluation.probabilities[index].numpy(), true=int(labels[index])),
            width="stretch",
            key=f"detail-{name}",
        )
