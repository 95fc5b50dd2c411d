"""Draw: a digit on the canvas, or a photo or picture of digits or a number, what the model sees, and what it says."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit_drawable_canvas import st_canvas

import common
import explain_view
import teach_view
from mnist_core.checkpoints import Checkpoint
from mnist_core.images import ImageError, load_image
from mnist_core.predict import NOT_A_DIGIT, TOO_MANY_LINES, Prediction, predict
from wording import certainty, literal

SHOWN = 720  # pixels on the picture's longer side, as drawn on the page
CANVAS = 320  # the canvas's side in pixels, where the columns stand side by side
# Where the columns stack (Streamlit's breakpoint: a phone), the canvas is drawn at 80% (256 px), leaving a
# margin of a third of a 390 px screen to scroll the page with (the canvas takes every touch on it for drawing);
# the drawing keeps its pixels (the pen follows the finger: the component maps touches through the scaling). The
# title shrinks, rows of buttons wrap, and the reading shows right under the canvas, the big answer being below
# the fold; side by side, only the big one.
NARROW = """<style>
@media (min-width: 640px) {.st-key-phone-reading {display: none}}
@media (max-width: 639.98px) {
  h1 {font-size: 1.6rem !important; padding: 0 !important}
  [data-testid='stMainBlockContainer'] {padding-top: 3.5rem !important}
  [class*='st-key-canvas-'] {transform: scale(0.8); transform-origin: top left; margin-bottom: -64px}
  [data-testid='stButtonGroup'] > div {flex-wrap: wrap}
}
</style>"""


# Clear empties the canvas in the browser, at once, with the component's own reset (whose toolbar is hidden):
# a new canvas from Python arrives only after a rerun, up to seconds under load, and a stroke drawn on the old
# one meanwhile was lost with it. The canvas stays the same, so every stroke after Clear reaches Python.
CLEAR_IN_THE_BROWSER = """<script>
if (!window.mnistClear) {
  window.mnistClear = true;
  document.addEventListener("click", (event) => {
    if (!event.target.closest(".st-key-clear")) return;
    for (const host of document.querySelectorAll("[class*='st-key-canvas-'] *")) {
      host.shadowRoot?.querySelector("button[aria-label='Reset canvas & history']")?.click();
    }
  }, true);
}
</script>"""


def runner_up(probabilities: list[float]) -> tuple[int, float]:
    """The second most likely digit and its probability: what an unsure answer might be instead."""
    second = int(np.argsort(probabilities)[-2])
    return second, probabilities[second]


def new_canvas() -> None:
    """A new canvas key is a blank canvas: after a new pen width (the canvas redraws empty then)."""
    st.session_state.canvas_number += 1


def picture_with_boxes(source: bytes, prediction: Prediction) -> go.Figure:
    """The picture with a box around each digit read and the digit above it ("?" for a piece that is not one)."""
    image = load_image(source, max_side=SHOWN).convert("RGB")
    image.thumbnail((SHOWN, SHOWN))
    scale = image.width / prediction.size[0]
    figure = go.Figure(go.Image(z=np.asarray(image), hoverinfo="skip"))
    for reading in prediction.digits:
        x0, y0, x1, y1 = (v * scale for v in reading.box)
        colour = "#2ea043" if reading.is_digit else "#da3633"
        figure.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line={"color": colour, "width": 3})
        figure.add_annotation(
            x=(x0 + x1) / 2,
            y=y0,
            yshift=14,
            text=f"<b>{reading.digit if reading.is_digit else '?'}</b>",
            showarrow=False,
            font={"size": 22, "color": colour},
        )
    figure.update_layout(margin={"l": 0, "r": 0, "t": 10, "b": 0}, xaxis_visible=False, yaxis_visible=False)
    return figure


def show_reading(
    model: Checkpoint, source: np.ndarray | bytes | None, picture_slot: DeltaGenerator, phone_reading: DeltaGenerator
) -> Prediction | None:
    """What the model reads in ``source`` and why; None where there is nothing to read (a message says so).

    It returns rather than stopping the script: ``st.stop()`` inside the fragment during a full run (a model
    switch) dropped the fragment rerun a stroke had asked for meanwhile, and the stroke was lost."""
    try:  # a canvas that has sent nothing yet is an empty canvas
        prediction = predict(source, checkpoint=model)[0] if source is not None else None
        if prediction is not None and isinstance(source, bytes):
            with picture_slot:
                st.plotly_chart(picture_with_boxes(source, prediction), key="picture", config={"staticPlot": True})
    except ImageError as exc:
        st.error(f"That file cannot be read as an image: {literal(exc)}")
        return None
    if prediction is not None and prediction.error == TOO_MANY_LINES:
        st.markdown("### Too many lines to read at once")
        st.caption(f"Read: {prediction.error}.")
        return None
    if prediction is None or not prediction.digits:
        st.markdown("### No digit found")
        st.caption("Draw a digit (or upload or snap a picture of one, or of a number) and the prediction appears here.")
        return None

    if prediction.error == NOT_A_DIGIT:
        st.markdown("### This does not look like a digit")
        phone_reading.markdown("**Not a digit**, it seems: details below.")
        closest = prediction.digits[0]
        st.caption(
            f"The closest digit is **{closest.digit}**, at {max(closest.probabilities):.0%}; "
            "a digit written plainly is read with far more certainty."
        )
    else:
        single = len(prediction.digits) == 1
        sure = min(max(reading.probabilities) for reading in prediction.digits)
        alternative = runner_up(prediction.probabilities) if prediction.probabilities is not None else None
        size, colour, words = certainty(sure, alternative)
        lines = "<br>".join(prediction.lines)  # digits and "?" only, one line of the picture each
        st.markdown(
            f"<div style='font-size:{size * (1 if single else 0.7)}rem;font-weight:700;line-height:1;"
            f"text-align:center;color:{colour}' data-testid='{'predicted-digit' if single else 'predicted-number'}'>"
            f"{lines}</div><p style='text-align:center' data-testid='certainty'>{words}</p>",
            unsafe_allow_html=True,
        )
        with phone_reading:
            st.markdown(
                f"<div style='display:flex;gap:0.8rem;align-items:baseline' data-testid='phone-reading'>"
                f"<span style='font-size:{size * 0.45}rem;font-weight:700;color:{colour}'>{prediction.number}</span>"
                f"<span>{words}</span></div>",
                unsafe_allow_html=True,
            )
        if "?" in (prediction.number or ""):
            st.caption("“?” marks a piece of ink that does not look like any digit.")

    st.caption("What the model sees: each digit as 28×28 pixels")
    for column, reading in zip(st.columns(max(len(prediction.digits), 4)), prediction.digits):
        label = f"{reading.digit}" if reading.is_digit else f"? (closest {reading.digit})"
        column.image(common.enlarge(reading.steps["28x28"], 4), caption=f"{label} · {max(reading.probabilities):.0%}")
    if prediction.probabilities is not None:
        st.plotly_chart(
            common.probability_chart(prediction.probabilities),
            width="stretch",
            key="probabilities",
            on_select="ignore",
        )
    if prediction.image is not None:  # exactly one digit: watched by the next training run, shown on the Map
        st.session_state.last_drawing = prediction.image
    explain_view.why_panel(model, prediction)
    with st.expander("How the picture becomes 28×28"):
        steps = list(prediction.steps.items())
        for column, (name, image) in zip(st.columns(len(steps)), steps):
            column.image(image, caption=name, width="stretch")
    return prediction


@st.fragment
def reader(model: Checkpoint) -> None:
    """The canvas (or a picture) and all that is read from it, a fragment: a stroke (or Clear) reruns this part
    alone, not the sidebar and the title above it, whose rerun and redrawing in every browser cost as much again
    when a class draws at once. A model picked in the sidebar reruns the whole page, and this with it."""
    drawing, answer = st.columns([1, 1], gap="large")
    with drawing:
        picture_slot = st.container()  # the canvas, or the picture being read, first: on a phone it is what fits
        phone_reading = st.container(key="phone-reading")  # the answer right under it, where the columns stack
        upload_column, camera_column = st.columns(2)
        upload = upload_column.file_uploader(
            "Upload a picture",
            type=["png", "jpg", "jpeg", "bmp", "gif", "webp"],
            accept_multiple_files=False,
            key="upload",
        )
        with camera_column.expander("Take a photo", icon=":material/photo_camera:"):
            photo = st.camera_input("Photo of a digit or a number", label_visibility="collapsed")
        picture = photo or upload
    with picture_slot:
        if picture is None:
            canvas = st_canvas(
                stroke_width=st.session_state.get("stroke_width", 18),
                stroke_color="#000000",
                background_color="#FFFFFF",
                height=CANVAS,
                width=CANVAS,
                drawing_mode="freedraw",
                update_streamlit=True,
                return_image_data=True,
                key=f"canvas-{st.session_state.canvas_number}",
            )
            with st.container(horizontal=True, vertical_alignment="bottom"):  # side by side on a phone too
                st.slider(
                    "Pen width",
                    6,
                    40,
                    18,
                    key="stroke_width",
                    on_change=new_canvas,
                    help="A new width starts a new drawing.",
                )
                st.button("Clear", key="clear")
            st.html(CLEAR_IN_THE_BROWSER, unsafe_allow_javascript=True)
            source = canvas.image_data
        else:
            source = picture.getvalue()
            st.caption(
                f"Reading **{'the camera photo' if photo else literal(picture.name)}**; "
                f"{'clear the photo' if photo else 'remove the file'} to draw again."
            )

    with answer:
        prediction = show_reading(model, source, picture_slot, phone_reading)
    if prediction is not None:
        teach_view.corrections(prediction)


model = common.page("Draw", ":material/draw:")
st.title("Draw a digit, or show a number")
if model is None:
    st.warning("No model to ask yet: train one on the Train page.")
    st.stop()
st.caption(
    f"Draw one digit, large, in the box, or upload or snap a photo of a digit or a whole number written on paper: "
    f"**{literal(model.name)}** reads it each time you lift the pen."
)

st.session_state.setdefault("canvas_number", 0)
# One way to start again (Clear) and one picture at a time: the canvas component has no option to hide its own
# toolbar (send, undo, redo, edit, reset), which pops up above the drawing, so its container clips what lies
# outside the drawing; the uploader's "+" would add a second file, of which only one is read.
st.html(
    "<style>[class*='st-key-canvas-'] {clip-path: inset(0)} "
    ".st-key-upload button[aria-label='Add files'] {display: none}</style>"
)
st.html(NARROW)
reader(model)
