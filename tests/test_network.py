"""Following a drawing through the network: every stage of any model the lab trains, and one filter's slide."""

import pytest
import torch
import torch.nn.functional as F

from mnist_core import network
from mnist_core.model import CNN, ModelConfig

KINDS = [
    ModelConfig(conv1_channels=2, conv2_channels=3, kernel_size=3, hidden_units=5, batch_norm=True),
    ModelConfig(conv1_channels=4, conv2_channels=1, kernel_size=5, hidden_units=8, batch_norm=False),
    ModelConfig(conv1_channels=1, conv2_channels=6, kernel_size=7, hidden_units=3, batch_norm=True),
]


def tiny(config: ModelConfig) -> CNN:
    """A random model whose batch norm has statistics of its own (not the identity a fresh one starts as)."""
    torch.manual_seed(0)
    model = CNN(config)
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2)
            layer.weight.data.uniform_(0.5, 1.5)
            layer.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("config", KINDS, ids=lambda c: f"k{c.kernel_size}-bn{int(c.batch_norm)}")
def test_every_stage_in_order_with_its_shape_and_parameters(config):
    model = tiny(config)
    image = torch.rand(1, 1, 28, 28) * 2 - 1
    stages = network.stages(model, image)
    c1, c2, h = config.conv1_channels, config.conv2_channels, config.hidden_units
    assert [(s.name, s.shape) for s in stages] == [
        ("input", (1, 28, 28)),
        ("conv 1", (c1, 28, 28)),
        ("pool 1", (c1, 14, 14)),
        ("conv 2", (c2, 14, 14)),
        ("pool 2", (c2, 7, 7)),
        ("hidden", (h,)),
        ("logits", (10,)),
        ("softmax", (10,)),
    ]
    assert sum(s.parameters for s in stages) == model.num_parameters
    k = config.kernel_size
    assert stages[1].parameters == c1 * k * k + (2 * c1 if config.batch_norm else c1)  # BN's scale and shift, or bias
    torch.testing.assert_close(stages[-2].values, model(image), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(stages[-1].values.sum(), torch.tensor(1.0))
    assert all(s.values.min() >= 0 for s in stages[1:5])  # after the ReLU, and pooled from it
    assert not model.training


@pytest.mark.parametrize("config", KINDS, ids=lambda c: f"k{c.kernel_size}-bn{int(c.batch_norm)}")
def test_a_filter_slides_over_its_input_as_the_conv_computes(config):
    model = tiny(config)
    image = torch.rand(1, 28, 28) * 2 - 1
    stages = network.stages(model, image[None])
    for conv, channels, size in ((0, config.conv1_channels, 28), (1, config.conv2_channels, 14)):
        layer = network.conv_layers(model)[conv]
        source = stages[0 if conv == 0 else 2].values
        with torch.no_grad():  # the conv alone, before batch norm and the ReLU
            raw = F.conv2d(source, layer.weight, layer.bias, padding=layer.padding)
        for channel, row, col in ((0, 0, 0), (channels - 1, size // 2, size - 1), (channels // 2, size - 1, 3)):
            slide = network.slide(model, image, conv, channel, row, col)
            k, inputs = config.kernel_size, source.shape[1]
            assert slide.patch.shape == slide.kernel.shape == slide.product.shape == (inputs, k, k)
            torch.testing.assert_close(slide.product, slide.patch * slide.kernel)
            assert slide.total == pytest.approx(float(raw[0, channel, row, col]), rel=1e-4, abs=1e-5)
            assert slide.value == pytest.approx(float(stages[1 + 2 * conv].values[0, channel, row, col]))
            if not config.batch_norm:
                assert slide.value == pytest.approx(max(slide.total, 0.0), rel=1e-4, abs=1e-5)
    corner = network.slide(model, image, 0, 0, 0, 0)
    assert (corner.patch[:, : config.kernel_size // 2] == 0).all()  # outside the picture: the layer's zero padding


def test_a_model_in_training_mode_is_walked_as_in_eval_and_left_training():
    model = tiny(KINDS[0]).train()
    image = torch.rand(2, 1, 28, 28) * 2 - 1
    first = network.stages(model, image)[-1].values
    assert model.training
    torch.testing.assert_close(first, network.stages(model, image)[-1].values)  # no dropout: the same twice
