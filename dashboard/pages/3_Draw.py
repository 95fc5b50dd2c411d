"""Draw: a digit on the canvas (or an uploaded picture), what the model sees, and what it says."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas

import common
import explain_view
from mnist_core.images import ImageError
from mnist_core.predict import predict

model = common.page("Draw", ":material/draw:")
st.title("Draw a digit")
if model is None:
    st.warning("No model to ask yet: train one on the Train page.")
    st.stop()
st.caption(f"Draw one digit, large, in the box: **{model.name}** reads it each time you lift the pen.")

st.session_state.setdefault("canvas_number", 0)  # a new canvas key is a blank canvas
drawing, answer = st.columns([1, 1], gap="large")
with drawing:
    st.space("medium")  # room for the canvas's toolbar, which floats above it
    canvas = st_canvas(
        stroke_width=st.session_state.get("stroke_width", 18),
        stroke_color="#000000",
        background_color="#FFFFFF",
        height=320,
        width=320,
        drawing_mode="freedraw",
        update_streamlit=True,
        return_image_data=True,
        key=f"canvas-{st.session_state.canvas_number}",
    )
    width, clear = st.columns([3, 1], vertical_alignment="bottom")
    width.slider("Stroke width", 6, 40, 18, key="stroke_width")
    clear.button(
        "Clear",
        width="stretch",
        on_click=lambda: st.session_state.update(canvas_number=st.session_state.canvas_number + 1),
    )
    upload = st.file_uploader("…or upload a picture of a digit", type=["png", "jpg", "jpeg", "bmp", "gif", "webp"])

source = upload.getvalue() if upload is not None else canvas.image_data
with answer:
    if upload is not None:
        st.caption(f"Reading **{upload.name}**; remove it to go back to the canvas.")
    try:  # a canvas that has sent nothing yet is an empty canvas
        prediction = predict(source, checkpoint=model)[0] if source is not None else None
    except ImageError as exc:
        st.error(f"That file cannot be read as an image: {exc}")
        st.stop()
    if prediction is None or prediction.probabilities is None:
        st.markdown("### No digit found")
        st.caption("Draw a digit (or upload a picture of one) and the prediction appears here.")
        st.stop()
    seen, verdict = st.columns([1, 1])
    seen.image(common.enlarge(prediction.steps["28x28"], 6), caption="What the model sees: 28×28 pixels")
    verdict.markdown(
        f"<div style='font-size:7rem;font-weight:700;line-height:1;text-align:center' "
        f"data-testid='predicted-digit'>{prediction.digit}</div>",
        unsafe_allow_html=True,
    )
    verdict.markdown(
        f"<p style='text-align:center'>{max(prediction.probabilities):.1%} sure</p>", unsafe_allow_html=True
    )
    st.plotly_chart(
        common.probability_chart(prediction.probabilities), width="stretch", key="probabilities", on_select="ignore"
    )
    st.session_state.last_drawing = prediction.image  # watched by the next training run, and shown on the Map
    explain_view.why_panel(model, prediction)
    with st.expander("How the picture becomes 28×28"):
        steps = list(prediction.steps.items())
        for column, (name, image) in zip(st.columns(len(steps)), steps):
            column.image(image, caption=name, width="stretch")
