"""One drawing followed through the network, layer by layer, and one filter sliding over its input.

What a student sees in CNN Explainer, computed from the model's own weights: every stage's
output for the image (input, each conv layer after its ReLU, each pooling, the hidden
layer, the logits and the softmax), with its shape and the parameters it adds, and for
one channel of a conv layer at one position the patch of its input, the kernel, their
product and the sum that becomes that channel's value there. Works for any ``CNN`` the
lab builds: its channel counts, kernel size and batch norm are read from its layers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .model import CNN


@dataclass
class Stage:
    """One stage's output for a batch: ``values`` is (N, C, H, W) for maps, (N, units) for vectors."""

    name: str  # "input", "conv 1", "pool 1", ..., "hidden", "logits", "softmax"
    kind: str  # "input", "conv", "pool", "dense" or "softmax"
    values: torch.Tensor
    parameters: int  # the weights this stage adds (a conv's with its batch norm's)

    @property
    def shape(self) -> tuple[int, ...]:
        """One image's output shape: (C, H, W) or (units,)."""
        return tuple(self.values.shape[1:])


@dataclass
class Slide:
    """One conv channel at one position: ``patch`` of its input (C_in, k, k) times ``kernel`` (C_in, k, k).

    ``total`` is the products' sum plus ``bias``: the conv's output there. ``value`` is that channel's
    value in the conv stage (after batch norm, if any, and the ReLU), what the stage's map shows there.
    """

    patch: torch.Tensor
    kernel: torch.Tensor
    product: torch.Tensor
    bias: float
    total: float
    value: float


def _eval(model: CNN) -> CNN:
    """The model in eval mode, never switched in place: the dashboard shares one model between sessions."""
    return copy.deepcopy(model).eval() if model.training else model


def _count(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


@torch.inference_mode()
def stages(model: CNN, images: torch.Tensor) -> list[Stage]:
    """Every stage's output for normalized ``images`` (N, 1, 28, 28), in the order the data flows."""
    net = _eval(model)
    x = images.detach().float().to(next(net.parameters()).device)
    found = [Stage("input", "input", x.cpu(), 0)]
    for number, block in enumerate(net.features, start=1):
        pool = next(layer for layer in block.children() if isinstance(layer, nn.MaxPool2d))
        before = [layer for layer in block.children() if layer is not pool]
        for layer in before:
            x = layer(x)
        found.append(Stage(f"conv {number}", "conv", x.clone().cpu(), _count(*before)))  # the ReLU may be in place
        x = pool(x)
        found.append(Stage(f"pool {number}", "pool", x.cpu(), 0))
    linear = [layer for layer in net.classifier.children() if isinstance(layer, nn.Linear)]
    hidden = torch.relu(linear[0](x.flatten(1)))  # dropout is off in eval mode
    logits = linear[1](hidden)
    found.append(Stage("hidden", "dense", hidden.cpu(), _count(linear[0])))
    found.append(Stage("logits", "dense", logits.cpu(), _count(linear[1])))
    found.append(Stage("softmax", "softmax", logits.softmax(dim=1).cpu(), 0))
    return found


def conv_layers(model: CNN) -> list[nn.Conv2d]:
    """The conv layers, first to last."""
    return [next(layer for layer in block.children() if isinstance(layer, nn.Conv2d)) for block in model.features]


@torch.inference_mode()
def slide(model: CNN, image: torch.Tensor, conv: int, channel: int, row: int, col: int) -> Slide:
    """Conv layer ``conv`` (0-based), output ``channel`` at (``row``, ``col``) for one normalized image (1, 28, 28).

    Its input is the image for the first conv layer and the previous pooling's output after that, padded
    with zeros as the layer pads it.
    """
    found = stages(model, image.reshape(1, 1, 28, 28))
    layer = conv_layers(model)[conv]
    inputs = found[0] if conv == 0 else found[2 * conv]  # the input, or pool ``conv``
    k, pad = layer.kernel_size[0], int(layer.padding[0])
    padded = F.pad(inputs.values[0], (pad, pad, pad, pad))
    patch = padded[:, row : row + k, col : col + k].clone()
    kernel = layer.weight.detach()[channel].float().cpu()
    bias = float(layer.bias[channel]) if layer.bias is not None else 0.0
    product = patch * kernel
    value = float(found[1 + 2 * conv].values[0, channel, row, col])
    return Slide(patch, kernel, product, bias, float(product.sum()) + bias, value)
