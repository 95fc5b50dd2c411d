"""The CNN: two convolutional blocks (conv, optional batch norm, ReLU, 2x2 max-pool), then an MLP head."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from . import settings
from .settings import Interval, setting


@dataclass
class ModelConfig:
    """The network's shape. The widths' limits are twice the widest a preset uses: wider models are not what this
    lab trains, and a checkpoint claiming one would cost gigabytes to build."""

    conv1_channels: int = setting(
        32,
        "Conv 1 channels",
        "filters in the first conv layer",
        low=1,
        high=128,
        presets={"quick": 16, "best": 64},
        search={"quick": (8, 16, 32), "default": (16, 32, 64), "best": (32, 64)},
        stops=(4, 8, 16, 32, 64),
    )
    conv2_channels: int = setting(
        64,
        "Conv 2 channels",
        "filters in the second conv layer",
        low=1,
        high=256,
        presets={"quick": 32, "best": 128},
        search={"quick": (16, 32, 64), "default": (32, 64, 128), "best": (64, 128)},
        stops=(8, 16, 32, 64, 128),
    )
    kernel_size: Literal[3, 5, 7] = setting(5, "Kernel size", "conv kernel size", rare=True)
    hidden_units: int = setting(
        128,
        "Hidden units",
        "units in the hidden fully connected layer",
        low=1,
        high=1024,
        presets={"best": 256},
        search={"quick": (64, 128, 256), "default": (128, 256), "best": (128, 256, 512)},
        stops=(16, 32, 64, 128, 256, 512),
    )
    # The quick preset's one epoch is too few for dropout to pay.
    dropout: float = setting(
        0.25,
        "Dropout",
        "dropout probability before each fully connected layer",
        low=0.0,
        below=1.0,
        presets={"quick": 0.0, "best": 0.3},
        search={"quick": Interval(0.0, 0.3), "default": Interval(0.0, 0.4), "best": Interval(0.1, 0.5)},
        stops=Interval(0.0, 0.5),
    )
    batch_norm: bool = setting(True, "Batch norm", "batch norm after each conv", rare=True)

    def __post_init__(self) -> None:
        settings.check(self)

    def to_dict(self) -> dict:
        return asdict(self)


class CNN(nn.Module):
    """28x28 -> conv block -> 14x14 -> conv block -> 7x7 -> hidden -> 10 logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

        def block(c_in: int, c_out: int) -> nn.Sequential:
            # Batch norm makes the conv bias redundant, so it is dropped when BN is on.
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, config.kernel_size, padding=config.kernel_size // 2, bias=not config.batch_norm)
            ]
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            return nn.Sequential(*layers)

        self.features = nn.Sequential(
            block(1, config.conv1_channels), block(config.conv1_channels, config.conv2_channels)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(config.conv2_channels * 7 * 7, config.hidden_units),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_units, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
