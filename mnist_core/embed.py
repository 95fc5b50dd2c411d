"""The model's view of an image: the hidden layer that feeds the ten logits, the features a map is made of.

The map itself (``projection``) needs no torch, so the process that computes it
in the background does not import it.
"""

from __future__ import annotations

import numpy as np
import torch

from .inference import forward_batches
from .model import CNN


@torch.inference_mode()
def hidden_layer(model: CNN, maps: torch.Tensor) -> np.ndarray:
    """(N, hidden_units) activations of the hidden layer that feeds the ten logits, from the last conv
    block's maps (``inference.forward_batches``), so a caller that also needs the logits runs one pass."""
    if model.training:
        raise ValueError("the model must be in eval mode (dropout would make the map random)")
    return model.classifier[:-1](maps.float().cpu()).numpy()  # all but the last Linear: flatten, ..., ReLU


def penultimate(model: CNN, images: torch.Tensor) -> np.ndarray:
    """(N, hidden_units) hidden-layer activations of normalized images, through the one forward pass, batch by
    batch, so the conv maps of all the test images are never held at once."""
    chunks = [hidden_layer(model, maps) for maps, _ in forward_batches(model, images)]
    return np.concatenate(chunks) if chunks else np.empty((0, model.config.hidden_units), np.float32)
