"""The CNN: two convolutional blocks (conv, optional batch norm, ReLU, 2x2 max-pool), then an MLP head."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

# Twice the widest the dashboard offers (the best preset is 64, 128, 256): wider models are not what this
# lab trains, and a checkpoint claiming one would cost gigabytes to build (14.5 M parameters at most here).
WIDTH_LIMITS = {"conv1_channels": 128, "conv2_channels": 256, "hidden_units": 1024}


@dataclass
class ModelConfig:
    conv1_channels: int = 32
    conv2_channels: int = 64
    kernel_size: int = 5
    hidden_units: int = 128
    dropout: float = 0.25
    batch_norm: bool = True

    def __post_init__(self) -> None:
        for name, limit in WIDTH_LIMITS.items():
            if not 1 <= getattr(self, name) <= limit:
                raise ValueError(f"{name} must be between 1 and {limit}, got {getattr(self, name)}")
        if self.kernel_size not in (3, 5, 7):
            raise ValueError(f"kernel_size must be 3, 5 or 7, got {self.kernel_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

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
