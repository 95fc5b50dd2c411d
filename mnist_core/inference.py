"""Running a model over many images: the one batched forward pass that evaluation, prediction,
the "not a digit" score and the embedding map all share."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch

from .model import CNN


def forward_batches(
    model: CNN, images: torch.Tensor, batch_size: int = 128
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The one batched forward pass every caller uses, batch by batch: the last conv block's maps
    (B, C, 7, 7), which the "not a digit" score and the embedding read, and the logits (B, 10), both in
    float32 on the CPU so they are the model's own.

    It never changes the caller's model: the dashboard shares one cached model between
    sessions, and switching its layout in place while another session predicted with it
    gave wrong digits. Speed comes from the input instead: batches laid out channels-last
    make oneDNN's convolutions take their faster path, and with a single channel only
    explicit strides say so. A model still in training mode is run as an eval-mode copy.
    Small batches keep each layer's activations in cache (bench/RESULTS.md).
    """
    worker = copy.deepcopy(model).eval() if model.training else model
    device = next(worker.parameters()).device
    with torch.inference_mode():
        for batch in images.split(batch_size):
            _, c, h, w = batch.shape
            channels_last = torch.empty_strided(batch.shape, (c * h * w, 1, w * c, c), device=device).copy_(batch)
            maps = worker.features(channels_last)
            yield maps.float().cpu(), worker.classifier(maps).float().cpu()


def features_and_logits(model: CNN, images: torch.Tensor, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image's last conv maps (N, C, 7, 7) and logits (N, 10), from ``forward_batches``."""
    batches = list(forward_batches(model, images, batch_size))
    if not batches:
        return torch.empty(0, model.config.conv2_channels, 7, 7), torch.empty(0, 10)
    return torch.cat([maps for maps, _ in batches]), torch.cat([logits for _, logits in batches])


def predict_probabilities(model: CNN, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Softmax outputs (N, 10) for normalized images (N, 1, 28, 28), from ``forward_batches``.

    Only the logits are kept: the maps of every image at once would cost several times
    the memory of the logits (bench/RESULTS.md).
    """
    logits = [logits for _, logits in forward_batches(model, images, batch_size)]
    return torch.cat(logits).softmax(dim=1) if logits else torch.empty(0, 10)
