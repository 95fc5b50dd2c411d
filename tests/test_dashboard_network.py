"""The Network page under AppTest: every stage of the drawing, and a channel opened beside its filter."""

import pytest
from dashboard_helpers import open_page, texts

from mnist_core.checkpoints import save_checkpoint
from mnist_core.model import CNN, ModelConfig
from mnist_core.train import TrainConfig


@pytest.mark.slow  # a page under AppTest: seconds
def test_network_page_follows_a_digit_and_opens_a_channel(folder):
    at = open_page("6_Network.py")
    said = texts(at)
    for stage in ("input", "conv 1", "pool 1", "conv 2", "pool 2", "hidden", "logits", "softmax"):
        assert f"**{stage}**" in said
    assert "32 × 28 × 28 · 864 parameters" in said and "64 × 7 × 7" in said and "10 · 1,290 parameters" in said
    at.number_input(key="net_channel-0").set_value(5).run()
    at.slider(key="net_position-0-5").set_value(28 * 14 + 14).run()
    assert not at.exception, at.exception
    assert "At row 14, column 14" in texts(at)
    at.radio(key="net_layer").set_value("conv 2").run()
    assert not at.exception, at.exception
    shown = [i.proto.imgs[0].caption for i in at.image if i.proto.imgs]
    assert "its input (all input channels)" in shown and "the filter (all input channels)" in shown
    at.selectbox(key="net_input").set_value(3).run()
    assert "the filter (input channel 3)" in [i.proto.imgs[0].caption for i in at.image if i.proto.imgs]


@pytest.mark.slow  # a page under AppTest: seconds
def test_network_page_draws_any_model_the_lab_trains(folder):
    config = ModelConfig(conv1_channels=2, conv2_channels=3, kernel_size=7, hidden_units=5, batch_norm=False)
    save_checkpoint(folder / "tiny.pt", CNN(config).eval(), TrainConfig(), {"test_accuracy": 0.1}, [], "x")
    at = open_page()
    at.session_state["active_model"] = "tiny"
    at.switch_page("pages/6_Network.py").run()
    assert not at.exception, at.exception
    said = texts(at)
    assert "2 × 28 × 28 · 100 parameters" in said and "3 × 7 × 7" in said and "Each conv layer's 7×7 filters" in said
    at.radio(key="net_layer").set_value("conv 2").run()
    at.selectbox(key="net_input").set_value(1).run()
    assert not at.exception, at.exception
    assert "after the ReLU the channel holds" in texts(at)  # no batch norm to mention
