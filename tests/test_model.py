import pytest
import torch

from mnist_core.model import CNN, ModelConfig


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(conv1_channels=4, conv2_channels=8, kernel_size=3, hidden_units=16, dropout=0.0, batch_norm=False),
        ModelConfig(conv1_channels=8, conv2_channels=8, kernel_size=7, hidden_units=32, dropout=0.5),
    ],
)
def test_outputs_ten_logits_per_image(config):
    model = CNN(config).eval()
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)


def test_parameter_count_matches_the_layers():
    c = ModelConfig(conv1_channels=4, conv2_channels=8, kernel_size=3, hidden_units=16, batch_norm=False)
    expected = (1 * 4 * 9 + 4) + (4 * 8 * 9 + 8) + (8 * 7 * 7 * 16 + 16) + (16 * 10 + 10)
    assert CNN(c).num_parameters == expected
    with_bn = CNN(ModelConfig(conv1_channels=4, conv2_channels=8, kernel_size=3, hidden_units=16, batch_norm=True))
    assert with_bn.num_parameters == expected - 4 - 8 + 2 * (4 + 8)  # conv biases dropped, BN scale and shift added


@pytest.mark.parametrize("bad", [dict(conv1_channels=0), dict(kernel_size=4), dict(dropout=1.0), dict(hidden_units=-3)])
def test_invalid_configs_are_refused(bad):
    with pytest.raises(ValueError):
        ModelConfig(**bad)
