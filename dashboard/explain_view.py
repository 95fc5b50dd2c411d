"""Why the model decides, drawn: the Draw page's "Why" panel, the Evaluate inspector's maps,
the calibration views, and "watch it learn" on the Train page.

Pages insert one call each; the numbers come from ``mnist_core`` (explain, evaluate,
watch) and are cached here per model (by content: ``common.BY_CONTENT``) and input.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

import common
import wording
from mnist_core import explain
from mnist_core.checkpoints import Checkpoint
from mnist_core.data import to_pixels
from mnist_core.evaluate import Evaluation
from mnist_core.ood import REJECT_RATE
from mnist_core.predict import Prediction
from mnist_core.watch import DRAWING, WatchPanel

METHOD_NAMES = {
    "integrated-gradients": "Integrated gradients",
    "grad-cam": "Grad-CAM",
    "occlusion": "Occlusion",
    "saliency": "Saliency",
}
# One sentence each on what a map shows; the first is recommended: it passes both checks a map must pass best
# (its maps change when the weights are randomized; erasing what it ranks first loses the digit fastest).
METHOD_SAYS = {
    "integrated-gradients": "Recommended. How much each inked pixel adds to the digit's score, against a blank page "
    "(averaged over slightly noisy copies, so the map shows shapes rather than speckle).",
    "grad-cam": "Which regions of the last conv layer's 14×14 maps made the digit likely; coarse, and it never "
    "shows what speaks against.",
    "occlusion": "How much the score drops when a 4×4 patch of the picture is erased: the slowest, and much of it "
    "is simply where the ink is.",
    "saliency": "Where adding or removing ink would change the score most (the gradient, averaged over noisy "
    "copies): it also lights up empty paper.",
}
METHOD_HELP = " ".join(f"{METHOD_NAMES[m]}: {METHOD_SAYS[m]}" for m in METHOD_NAMES)
LEGEND = "Red: supports the digit. Blue: speaks against it."
BLUE = (31, 119, 180)


@st.cache_data(max_entries=256, show_spinner=False, hash_funcs=common.BY_CONTENT)
def overlay_image(
    checkpoint: Checkpoint, image: np.ndarray, target: int, method: str, against: int | None = None
) -> np.ndarray:
    """The map for ``target`` (less ``against``'s) over the normalized 28x28 ``image``, enlarged 8x, as RGB.

    Cached per model, drawing, method and digits: going back to a map already seen costs nothing."""
    pixels = torch.from_numpy(image).reshape(1, 1, 28, 28)
    other = None if against is None else [against]
    attribution = explain.attribute(checkpoint.model, pixels, [target], method, against=other)[0]
    return explain.overlay(pixels[0], attribution, scale=8)


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs=common.BY_CONTENT)
def refusal(checkpoint: Checkpoint, image: np.ndarray) -> tuple[float, float] | None:
    """A refused picture's distance to training digits and the threshold it passed (None: no score to ask)."""
    found = explain.distance_to_digits(checkpoint, torch.from_numpy(image).reshape(1, 1, 28, 28))
    return None if found is None else (float(found[0][0]), found[1])


def tiles(maps: torch.Tensor, columns: int, scale: int) -> np.ndarray:
    """(C, H, W) maps as one grey picture, ``columns`` across, 1-pixel gaps; scaled by the layer's largest value."""
    channels, height, width = maps.shape
    rows = -(-channels // columns)
    strength = (maps / maps.max().clamp(min=1e-12) * 255).round().byte().numpy()
    sheet = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), 40, np.uint8)
    for c in range(channels):
        r, k = divmod(c, columns)
        sheet[r * (height + 1) : r * (height + 1) + height, k * (width + 1) : k * (width + 1) + width] = strength[c]
    return common.enlarge(sheet, scale)


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs=common.BY_CONTENT)
def activation_sheets(checkpoint: Checkpoint, image: np.ndarray) -> list[np.ndarray]:
    """Each conv layer's activations for ``image`` as a sheet of small pictures, one per channel."""
    layers = explain.activations(checkpoint.model, torch.from_numpy(image).reshape(1, 1, 28, 28))
    return [tiles(layer[0], columns=8, scale=3 if layer.shape[-1] >= 28 else 4) for layer in layers]


@st.cache_data(max_entries=8, show_spinner=False, hash_funcs=common.BY_CONTENT)
def filter_sheet(checkpoint: Checkpoint) -> np.ndarray:
    """The first layer's kernels, mid-grey for zero, light for positive weights and dark for negative ones."""
    filters = explain.first_layer_filters(checkpoint.model)
    centred = filters / filters.abs().amax((1, 2), keepdim=True).clamp(min=1e-12) / 2 + 0.5
    return tiles(centred, columns=8, scale=8)


def method_picker(key: str, narrow: bool = False) -> str:
    """The attribution method: buttons where there is room, a drop-down (saying which is recommended) if narrow."""
    options = list(METHOD_NAMES)

    def name(method: str) -> str:
        return (
            f"{METHOD_NAMES[method]} (recommended)"
            if method == explain.RECOMMENDED and narrow
            else METHOD_NAMES[method]
        )

    method: str | None
    if narrow:
        method = st.selectbox("Method", options, format_func=name, key=key, help=METHOD_HELP)
    else:
        method = st.segmented_control("Method", options, format_func=name, key=key, help=METHOD_HELP)
    return method or explain.RECOMMENDED


def why_panel(checkpoint: Checkpoint, prediction: Prediction) -> None:
    """The Draw page's "Why": a map for every reading, a contrast ("why 4 and not 9"), and the conv layers."""
    if not prediction.digits:  # nothing read: nothing to explain
        return
    st.subheader("Why?")
    st.session_state.setdefault("why_method", explain.RECOMMENDED)
    method = method_picker("why_method")
    st.caption(METHOD_SAYS[method])
    if prediction.image is None:  # a number, or a piece that is not a digit: every reading's map
        readings(checkpoint, prediction, method)
        return
    predicted, pixels = prediction.digits[0].digit, prediction.image.reshape(28, 28).numpy()
    target = st.pills(
        "Explain the digit",
        list(range(10)),
        key="why_target",
        help="Pick any digit to ask why (or why not) the model would say it; none picked: the prediction.",
    )
    target = predicted if target is None else int(target)
    against = st.pills(
        "… and not",
        [d for d in range(10) if d != target],
        key="why_against",
        help="Pick a second digit to ask why the first and not this one: the map of the first less the second's.",
    )
    picture, words = st.columns([1, 1])
    if against is None:
        picture.image(overlay_image(checkpoint, pixels, target, method), caption=f"{METHOD_NAMES[method]} for {target}")
        words.markdown(
            f"**Why {target}**" if target == predicted else f"**Why not {target}?** (it said {predicted})",
        )
        words.caption(LEGEND)
    else:
        picture.image(
            overlay_image(checkpoint, pixels, target, method, int(against)),
            caption=f"{METHOD_NAMES[method]}: {target} and not {against}",
        )
        words.markdown(f"**Why {target} and not {against}?**")
        words.caption(f"Red: speaks for {target} more than for {against}. Blue: speaks for {against} more.")
    with st.expander("Inside the network: what each conv layer sees"):
        first, second = activation_sheets(checkpoint, pixels)
        st.image(first, caption=f"Conv layer 1: {checkpoint.model_config.conv1_channels} maps, 28×28, after ReLU")
        st.image(second, caption=f"Conv layer 2: {checkpoint.model_config.conv2_channels} maps, 14×14, after ReLU")
        st.image(
            filter_sheet(checkpoint),
            caption="The first layer's filters: light pixels add ink's weight, dark ones subtract it",
        )
        st.page_link("pages/6_Network.py", label="Follow it through the whole network", icon=":material/hub:")


def readings(checkpoint: Checkpoint, prediction: Prediction, method: str) -> None:
    """Each digit of a number with its map and its probabilities; a refused piece with its closest digit's map and
    why it was refused."""
    for reading in prediction.digits:
        pixels = reading.image.reshape(28, 28).numpy()
        picture, chart = st.columns([1, 2])
        label = f"{reading.digit}" if reading.is_digit else f"not a digit (closest: {reading.digit})"
        picture.image(
            overlay_image(checkpoint, pixels, reading.digit, method),
            caption=f"{METHOD_NAMES[method]} for {reading.digit}",
        )
        with chart:
            st.markdown(f"**{label}** · {max(reading.probabilities):.0%}")
            if not reading.is_digit and (numbers := refusal(checkpoint, pixels)) is not None:
                st.caption(wording.refused(*numbers, REJECT_RATE))
            st.plotly_chart(
                common.probability_chart(reading.probabilities),
                width="stretch",
                key=f"reading-{id(reading)}",
                on_select="ignore",
            )
    st.caption(LEGEND)


def inspector_maps(checkpoint: Checkpoint, image: torch.Tensor, true: int, predicted: int) -> None:
    """The Evaluate inspector: why the model said ``predicted``, and what would have supported ``true``."""
    method = method_picker("inspect_method", narrow=True)
    pixels = image.reshape(28, 28).numpy()
    said, truth, contrast = st.columns(3)
    said.image(overlay_image(checkpoint, pixels, predicted, method), caption=f"Why it said {predicted}")
    if true != predicted:
        truth.image(overlay_image(checkpoint, pixels, true, method), caption=f"What supports {true}")
        contrast.image(
            overlay_image(checkpoint, pixels, predicted, method, true), caption=f"Why {predicted} and not {true}"
        )
    st.caption(f"{METHOD_NAMES[method]}. {LEGEND}")


# The three weakest digits' precision-recall curves, drawn bold in these colours: the others are close to perfect
# and lie on top of each other, in grey.
WEAKEST_COLOURS = ("#d62728", "#ff7f0e", "#1f77b4")
PR_FLOOR = 1e-4  # 1 - precision where it is 0 (a log axis has no 0): one image in ten thousand


@st.cache_data(max_entries=8, show_spinner=False, hash_funcs=common.BY_CONTENT)
def _calibration(checkpoint: Checkpoint, _result: Evaluation) -> tuple[dict, list[dict]]:
    return _result.reliability(bins=10), _result.precision_recall()


def calibration(checkpoint: Checkpoint, result: Evaluation) -> None:
    """The Evaluate page's calibration: a reliability diagram with its ECE, and per-digit precision-recall, of
    ``result``, the test-set evaluation of ``checkpoint``, each with a sentence on what it shows of this model."""
    reliability, curves = _calibration(checkpoint, result)
    st.header("Calibration")
    st.caption(
        "Is the model as sure as it is right? On the left, each bar is the accuracy of the images whose "
        "confidence falls in that band; a calibrated model's bars reach the diagonal. On the right, what a "
        "stricter or looser threshold on each digit's probability would trade."
    )
    left, right = st.columns(2)
    with left:
        edges = np.array(reliability["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        figure = go.Figure()
        figure.add_bar(
            x=centres,
            y=reliability["accuracy"],
            width=edges[1] - edges[0],
            name="accuracy",
            marker_color="#1f77b4",
            customdata=np.stack([reliability["count"], [c or 0 for c in reliability["confidence"]]], axis=1),
            hovertemplate="confidence %{customdata[1]:.1%}: accuracy %{y:.1%} of %{customdata[0]:,} images"
            "<extra></extra>",
        )
        figure.add_scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="calibrated", line=dict(dash="dash", color="#888"), hoverinfo="skip"
        )
        figure.update_layout(
            title=f"Reliability · ECE {reliability['ece']:.2%}",
            height=380,
            margin=dict(l=10, r=10, t=40, b=10),
            xaxis=dict(title="confidence", range=[0, 1], tickformat=".0%"),
            yaxis=dict(title="accuracy", range=[0, 1.02], tickformat=".0%"),
            legend=dict(orientation="h", y=-0.2),
            bargap=0.05,
        )
        st.plotly_chart(figure, width="stretch", key="reliability")
        smoothing = checkpoint.train_config.label_smoothing
        st.markdown(
            wording.calibration(reliability["gap"], result.accuracy, reliability["mean_confidence"], smoothing),
            help="ECE: the gap between confidence and accuracy in each band, averaged over the images.",
        )
    with right:
        scored = sorted((c for c in curves if c["average_precision"] is not None), key=lambda c: c["average_precision"])
        weakest = {c["digit"]: colour for c, colour in zip(scored, WEAKEST_COLOURS)}
        figure = go.Figure()
        for curve in sorted(scored, key=lambda c: c["digit"] in weakest):  # the weakest drawn last, on top
            step = max(1, len(curve["recall"]) // 300)  # a few hundred points per curve draw the same
            wrong = np.maximum(1 - np.array(curve["precision"][::step] + curve["precision"][-1:]), PR_FLOOR)
            strong = curve["digit"] in weakest
            figure.add_scatter(
                x=curve["recall"][::step] + curve["recall"][-1:],
                y=wrong,
                mode="lines",
                name=f"{curve['digit']} · AP {curve['average_precision']:.4f}",
                line=dict(width=3 if strong else 1, color=weakest.get(curve["digit"], "#c7d3e0")),
                hovertemplate=f"digit {curve['digit']}: recall %{{x:.2%}}, wrong among accepted %{{y:.2%}}"
                "<extra></extra>",
            )
        figure.update_layout(
            title="Precision-recall per digit (log scale; lower is better)",
            height=380,
            margin=dict(l=10, r=10, t=40, b=10),
            xaxis=dict(title="recall: share of the digit found", range=[0.9, 1.003], tickformat=".0%"),
            yaxis=dict(
                title="1 − precision: wrong among accepted",
                type="log",
                range=[np.log10(PR_FLOOR) - 0.1, np.log10(0.2)],
                tickformat=".2~%",
            ),
        )
        st.plotly_chart(figure, width="stretch", key="precision_recall")
        if scored:
            named = ", ".join(f"{c['digit']} (AP {c['average_precision']:.4f})" for c in scored[: len(weakest)])
            st.markdown(
                f"Weakest digits, drawn bold: {named}; the strongest is {scored[-1]['digit']} "
                f"(AP {scored[-1]['average_precision']:.4f}). A curve higher up accepts more wrong images "
                "to find the same share of its digit."
            )


def _panel_images(panel: WatchPanel, probabilities: list[list[float]]) -> list[tuple[np.ndarray, str]]:
    """Each watched image framed green (right), red (wrong) or blue (the drawing), with what the model said."""
    pixels = to_pixels(panel.images)
    shown = []
    for image, label, probs in zip(pixels, panel.labels, probabilities):
        said = int(np.argmax(probs))
        if label == DRAWING:
            big = common.enlarge(image, 3)
            picture = np.repeat(big[:, :, None], 3, axis=2)
            picture[:3], picture[-3:], picture[:, :3], picture[:, -3:] = [BLUE] * 4
            shown.append((picture, f"yours: {said} · {probs[said]:.0%}"))
        else:
            shown.append((common.framed(image, said == label), f"{label}: {said} · {probs[said]:.0%}"))
    return shown


def _flip_chart(panel: WatchPanel, epochs: list[list[list[float]]], current: int) -> go.Figure:
    """Probability of the true digit for each watched image after each epoch: wrong-to-right shows as red to green."""
    history = np.array(epochs)  # (epochs, images, 10)
    final = history[-1].argmax(1)
    reference = [final[i] if label == DRAWING else label for i, label in enumerate(panel.labels)]
    p_true = history[:, np.arange(len(reference)), reference].T  # (images, epochs)
    names = [
        f"#{i + 1} yours ({reference[i]}?)" if lab == DRAWING else f"#{i + 1} a {lab}"
        for i, lab in enumerate(panel.labels)
    ]
    figure = go.Figure(
        go.Heatmap(
            z=p_true,
            x=list(range(1, len(epochs) + 1)),
            y=names,
            zmin=0,
            zmax=1,
            colorscale=[[0, "#da3633"], [0.5, "#f2cc60"], [1, "#2ea043"]],
            colorbar=dict(title="p(true)", tickformat=".0%"),
            hovertemplate="%{y}, epoch %{x}: %{z:.1%}<extra></extra>",
        )
    )
    figure.add_vline(x=current, line_color="#31333f", line_width=2)
    figure.update_layout(
        height=120 + 16 * len(names),
        margin=dict(l=10, r=10, t=30, b=10),
        title="Probability of the right digit, epoch by epoch",
        xaxis=dict(title="epoch", dtick=1),
        yaxis=dict(autorange="reversed"),
    )
    return figure


def _show_panel(panel: WatchPanel, epochs: list[list[list[float]]], current: int, key: str) -> None:
    """The watched images as they were judged after epoch ``current`` (1-based), and the flip chart."""
    shown = _panel_images(panel, epochs[current - 1])
    per_row = 11
    for start in range(0, len(shown), per_row):
        for column, (picture, caption) in zip(st.columns(per_row), shown[start : start + per_row]):
            column.image(picture, caption=caption, width="stretch")
    st.plotly_chart(_flip_chart(panel, epochs, current), width="stretch", key=key, on_select="ignore")


def watch_live(panel: WatchPanel | None, epochs: list[list[list[float]]]) -> None:
    """During training: the panel after the latest finished epoch (for the Train page's live view)."""
    if panel is None:
        return
    st.subheader("Watch it learn")
    if not epochs:
        st.caption(
            "After each epoch, what the model says about these test images (two per digit, one of them "
            "hard) and your last drawing appears here."
        )
        return
    st.caption(f"After epoch {len(epochs)}: green frames right, red wrong, blue your drawing from the Draw page.")
    _show_panel(panel, epochs, len(epochs), key="watch_live")


def watch_replay(checkpoints: list[Checkpoint], preferred: str | None = None) -> None:
    """Replay a finished run from its checkpoint's history, epoch by epoch (for the Train page)."""
    watched = {c.name: c for c in checkpoints if c.watch and all("watch" in h for h in c.history)}
    st.header("Watch it learn: replay a run")
    if not watched:
        st.caption("Runs trained here from now on record how their predictions change, epoch by epoch.")
        return
    names = list(watched)
    # Your run, once, as soon as it has finished; after that the choice stays yours.
    if preferred in watched and st.session_state.get("replay_shown") != preferred:
        st.session_state.replay_run = st.session_state.replay_shown = preferred
    name = st.selectbox("Run", names, key="replay_run")
    checkpoint = watched[name or names[0]]
    epochs = [h["watch"] for h in checkpoint.history]
    current = (
        st.slider("After epoch", 1, len(epochs), len(epochs), key=f"replay_epoch-{checkpoint.name}")
        if len(epochs) > 1
        else 1
    )
    _show_panel(WatchPanel.from_payload(checkpoint.watch), epochs, current, key="watch_replay")
