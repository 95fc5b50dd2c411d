"""Why the model says what it says: attribution maps, each conv layer's activations, and the first layer's filters.

The attribution methods are Captum's, set up for this model's input: one channel of
normalized pixels whose background is -1, not 0. So "no ink" (-1) is the baseline
of integrated gradients and what occlusion paints over a patch; a zero baseline would
be a grey page and credit the background. Every map is for one target class, aligned
with the 28x28 input, and positive where the pixel supports that class.

Captum's Grad-CAM works through forward hooks on the model. The dashboard shares one
model object between sessions, and another session's forward pass would run through
those hooks, so every method runs on a private copy of the model, made once per model
and used under a lock.
"""

from __future__ import annotations

import copy
import threading
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import CNN

METHODS = ("saliency", "integrated-gradients", "occlusion", "grad-cam")
BACKGROUND = -1.0  # a blank pixel after data.normalize
IG_STEPS = 32  # integrated gradients' Riemann steps: more barely change the map (bench/RESULTS.md)
OCCLUSION_WINDOW = 4  # pixels, about a stroke's width at 28x28
OCCLUSION_STRIDE = 2

_lock = threading.Lock()


@lru_cache(maxsize=8)
def _private_copy(model: CNN) -> CNN:
    """A copy in eval mode whose weights need no gradients (the maps need them only for the input).

    Models are never changed in place in this project (a new model is a new object),
    so a copy made once stays true to its model.
    """
    private = copy.deepcopy(model).cpu().eval()
    return private.requires_grad_(False)


def _relu_layers(model: CNN) -> list[nn.Module]:
    """The activation that ends each conv block: what 'the output of conv layer k' means here."""
    return [next(layer for layer in block.children() if isinstance(layer, nn.ReLU)) for block in model.features]


def attribute(model: CNN, images: torch.Tensor, targets: torch.Tensor | list[int], method: str) -> torch.Tensor:
    """(N, 28, 28) maps: for each normalized image (N, 1, 28, 28), how each pixel bears on its target class.

    Saliency is the raw gradient of the target's logit (where adding ink would raise it);
    integrated gradients and occlusion credit the ink that is there against a blank page;
    Grad-CAM weighs the last conv layer's channels by their gradient, upsampled from 14x14.
    """
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    images = images.detach().float().cpu()
    target = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if images.ndim != 4 or images.shape[1:] != (1, 28, 28) or len(target) != len(images):
        raise ValueError(f"expected images (N, 1, 28, 28) and N targets, got {tuple(images.shape)} and {len(target)}")
    with _lock:
        net = _private_copy(model)
        if method == "saliency":
            maps = Saliency(net).attribute(images.clone().requires_grad_(), target=target, abs=False)
        elif method == "integrated-gradients":
            maps = IntegratedGradients(net).attribute(
                images, baselines=BACKGROUND, target=target, n_steps=IG_STEPS, internal_batch_size=256
            )
        elif method == "occlusion":
            maps = Occlusion(net).attribute(
                images,
                sliding_window_shapes=(1, OCCLUSION_WINDOW, OCCLUSION_WINDOW),
                strides=(1, OCCLUSION_STRIDE, OCCLUSION_STRIDE),
                baselines=BACKGROUND,
                target=target,
                perturbations_per_eval=169,  # all 13x13 window positions of one image in one forward pass
            )
        else:
            coarse = LayerGradCam(net, _relu_layers(net)[-1]).attribute(images, target=target)
            maps = LayerAttribution.interpolate(coarse, (28, 28), interpolate_mode="bilinear")
    return maps.detach()[:, 0]


@torch.inference_mode()
def activations(model: CNN, images: torch.Tensor) -> list[torch.Tensor]:
    """Each conv block's output after its ReLU, before pooling: [(N, C1, 28, 28), (N, C2, 14, 14)].

    Computed by walking the layers of the private copy in eval mode (no hooks).
    """
    x, found = images.float().cpu(), []
    with _lock:
        for block in _private_copy(model).features:
            for layer in block.children():
                x = layer(x)
                if isinstance(layer, nn.ReLU):
                    found.append(x.clone())  # the ReLU may be in place: keep this layer's own copy
    return found


def first_layer_filters(model: CNN) -> torch.Tensor:
    """The first conv layer's kernels as (C, k, k): the strokes and edges the model looks for first."""
    conv = next(layer for layer in model.features[0].children() if isinstance(layer, nn.Conv2d))
    return conv.weight.detach()[:, 0].clone()


def overlay(image: torch.Tensor, attribution: torch.Tensor, scale: int = 1) -> np.ndarray:
    """The digit in grey with the map on top, as (28*scale, 28*scale, 3) uint8: red supports, blue opposes.

    ``image`` is normalized (background -1). The map is divided by its largest absolute
    value, so the strongest pixel is full colour and the sign keeps its meaning.
    """
    grey = (image.detach().float().cpu().reshape(28, 28) + 1) / 2
    strength = attribution.detach().float().cpu().reshape(28, 28)
    strength = strength / strength.abs().max().clamp(min=1e-12)
    base = 0.25 + 0.5 * grey  # ink light grey, background dark grey: the colours read on both
    red = torch.tensor([1.0, 0.1, 0.1]).view(3, 1, 1)
    blue = torch.tensor([0.1, 0.4, 1.0]).view(3, 1, 1)
    weight = strength.abs().pow(0.7)  # lift weak values a little so the map's shape shows
    colour = torch.where(strength > 0, red, blue)
    rgb = base.expand(3, 28, 28) * (1 - weight) + colour * weight
    if scale > 1:
        rgb = F.interpolate(rgb[None], scale_factor=scale, mode="nearest")[0]
    return (rgb.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
