"""Home: what this lab is, the dataset at a glance, and the active model's card."""

from functools import partial

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import common
from mnist_core import data
from mnist_core.data import to_pixels
from wording import literal

# The sidebar's order (the files' numbers), each page in a few words that fit a phone's width: the intro lists them so.
PAGES = (
    ("pages/1_Train.py", "**Train** a model and watch it learn", ":material/model_training:"),
    ("pages/2_Evaluate.py", "**Evaluate**: the digits it gets wrong", ":material/search_insights:"),
    ("pages/3_Draw.py", "**Draw** a digit, or show a photo", ":material/draw:"),
    ("pages/4_Compare.py", "**Compare** runs: what one fixed and broke", ":material/compare_arrows:"),
    ("pages/5_Map.py", "**Map** the test set as the model sees it", ":material/scatter_plot:"),
    ("pages/6_Network.py", "**Network**: your drawing, layer by layer", ":material/hub:"),
    ("pages/6_Teach.py", "**Teach** a model your handwriting", ":material/school:"),
)

model = common.page("Home", ":material/home:")

st.title("MNIST lab")
st.markdown(
    "Handwritten digits, a small convolutional network, and everything around it: draw a digit and watch the "
    "model read it, train your own model and see it learn, then find exactly which digits it gets wrong and why."
)
with st.container(border=True, key="first-step"):
    st.markdown(
        "**New here? Start by drawing a digit**: the model reads it as you draw. "
        "Then train a model of your own, and see whether it reads your digits better."
    )
    if st.button("Draw a digit", type="primary", icon=":material/draw:", key="start"):
        st.switch_page("pages/3_Draw.py")
st.markdown("Every page, in the sidebar's order:")
for path, label, icon in PAGES:
    st.page_link(path, label=label, icon=icon)
st.caption("The model picked in the sidebar is the one every page uses.")

st.header("Active model")
if model is None:
    st.warning("No model yet: train one on the Train page.")
else:
    card = common.describe(model)
    hardware = card.pop("Trained on")
    st.subheader(literal(model.name))
    columns = st.columns(3)
    for column, label in zip(columns, ("Test accuracy", "Parameters", "Training time")):
        on = f"on {hardware}" if label == "Training time" and hardware else None
        column.metric(label, card.pop(label), on, delta_color="off", delta_arrow="off")
    for label, text in card.items():
        st.markdown(f"**{label}:** {text}")
    st.download_button(
        "Download as ONNX",
        data=partial(common.onnx_file, model),
        file_name=f"{model.name}.onnx",
        mime="application/octet-stream",
        icon=":material/download:",
        help="For onnxruntime, browsers and phones: input (N, 1, 28, 28) in [-1, 1], ink white on black; "
        "output the ten probabilities.",
    )

st.header("The dataset")
if not data.is_downloaded():
    st.info(
        "MNIST is not on this machine yet. The Train and Evaluate pages download it on first use "
        "(about 11 MB), or you can fetch it now."
    )
    if st.button("Download MNIST"):
        common.ensure_downloaded()
        st.rerun()
    st.stop()

mnist = common.dataset()
st.markdown(
    f"{len(mnist.train_labels):,} training and {len(mnist.test_labels):,} test images of 28×28 "
    "grey pixels, each labelled with its digit."
)
counts, samples = st.columns([2, 3])
with counts:
    figure = go.Figure(
        [
            go.Bar(name=name, x=list(range(10)), y=np.bincount(labels.numpy(), minlength=10))
            for name, labels in (("training", mnist.train_labels), ("test", mnist.test_labels))
        ]
    )
    figure.update_layout(
        barmode="group",
        height=360,
        margin=dict(l=10, r=10, t=30, b=10),
        title="Images per digit",
        xaxis=dict(tickmode="linear", title="digit"),
        legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
    )
    st.plotly_chart(figure, width="stretch")
with samples:
    seed = st.number_input("Sample", min_value=0, value=0, step=1, help="Another number, other samples.")
    rng = np.random.default_rng(int(seed))
    labels = mnist.train_labels.numpy()
    picks = [rng.choice(np.flatnonzero(labels == digit), 12, replace=False) for digit in range(10)]
    pixels = to_pixels(mnist.train_images[np.concatenate(picks)]).reshape(10, 12, 28, 28)
    grid = pixels.transpose(0, 2, 1, 3).reshape(280, 336)
    st.image(common.enlarge(grid, 2), caption="Twelve training images of each digit, one row per digit")
