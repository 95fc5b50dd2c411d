"""Network: your drawing followed through every layer, left to right, and one filter sliding over its input."""

import streamlit as st
import torch

import common
import network_view

model = common.page("Network", ":material/hub:")
st.title("Follow your drawing through the network")
if model is None:
    st.warning("No model to look inside yet: train one on the Train page.")
    st.stop()
drawing = st.session_state.get("last_drawing")
if drawing is None:
    common.ensure_downloaded()
    drawing = common.dataset().test_images[4]  # a 4, until there is a drawing
    st.caption("Draw a digit on the Draw page to follow it here; until then, a 4 from the test set.")
image = drawing.reshape(28, 28).numpy()
stages = network_view.stages(model, image)
config = model.model_config

# ---- Every stage, left to right as the data flows ----
st.caption(
    f"**{model.name}**: {model.model.num_parameters:,} parameters. Each conv layer's {config.kernel_size}×"
    f"{config.kernel_size} filters slide over their input, then "
    + ("batch norm and " if config.batch_norm else "")
    + "a ReLU keeps what is positive; each pooling keeps the largest of every 2×2."
)
for column, stage in zip(st.columns([1, 1.3, 1.3, 1.3, 1.3, 1, 1.2, 1.2]), stages):
    with column:
        st.markdown(f"**{stage.name}**")
        if stage.name in ("logits", "softmax"):
            figure = network_view.bars(stage.values[0], percent=stage.kind == "softmax")
            st.plotly_chart(figure, width="stretch", key=f"stage-{stage.name}", config={"staticPlot": True})
        else:
            st.image(network_view.picture(stage), width="stretch")
        st.caption(
            " × ".join(map(str, stage.shape)) + (f" · {stage.parameters:,} parameters" if stage.parameters else "")
        )

# ---- One channel, beside its filter, and the filter sliding over the input ----
st.header("Open a channel")
convs = [s for s in stages if s.kind == "conv"]
left, middle, right = st.columns(3)
layer = left.radio("Conv layer", [s.name for s in convs], horizontal=True, key="net_layer")
conv = [s.name for s in convs].index(layer or convs[0].name)
maps = convs[conv].values[0]
channel = middle.number_input("Channel", 0, maps.shape[0] - 1, 0, key=f"net_channel-{conv}")
size = maps.shape[-1]
strongest = int(maps[int(channel)].argmax())  # the filter starts where its pattern is strongest
position = right.slider(
    "Position of the filter",
    0,
    size * size - 1,
    strongest,
    key=f"net_position-{conv}-{channel}",
    help="Move the filter over its input, row by row: the products below are computed from the model's weights.",
)
row, col = divmod(int(position), size)
slid = network_view.slide(model, image, conv, int(channel), row, col)
k, pad = config.kernel_size, config.kernel_size // 2
inputs = slid.patch.shape[0]
# The second conv layer's filter has a slice for each of its input channels: one of them, or all added up.
part = None
if conv > 0:
    part = st.selectbox(
        "Input channel",
        [None, *range(inputs)],
        format_func=lambda c: f"all {inputs}, added up" if c is None else f"pool 1, channel {c}",
        key="net_input",
        help="The filter multiplies each input channel by its own slice; the channel's value adds them all up.",
    )


def shown(values: torch.Tensor) -> torch.Tensor:
    """One input channel's slice, or the slices added up."""
    return values.sum(0) if part is None else values[part]


source = stages[0].values[0, 0] if conv == 0 else shown(stages[2].values[0])
scale = 8 if size == 28 else 16
slice_of = "" if conv == 0 else (" (all input channels)" if part is None else f" (input channel {part})")
pictures = st.columns(5)
pictures[0].image(network_view.boxed(source, row - pad, col - pad, k, scale), caption="its input" + slice_of)
pictures[1].image(network_view.signed(shown(slid.kernel), 24), caption="the filter" + slice_of)
pictures[2].image(network_view.signed(shown(slid.patch), 24), caption="the patch under it")
pictures[3].image(network_view.signed(shown(slid.product), 24), caption="patch × filter")
pictures[4].image(network_view.boxed(maps[int(channel)], row, col, 1, scale), caption=f"{layer}, channel {channel}")
after = "after batch norm and the ReLU" if config.batch_norm else "after the ReLU"
st.markdown(
    f"At row {row}, column {col}: the products add up to {slid.total - slid.bias:.3f}, plus the bias "
    f"{slid.bias:.3f} makes **{slid.total:.3f}**; {after} the channel holds **{slid.value:.3f}** there."
)
st.caption("Red: positive, blue: negative. Over many positions, the filter lights the channel where its pattern is.")
