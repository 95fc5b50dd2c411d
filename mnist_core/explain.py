"""Why the model says what it says: attribution maps, each conv layer's activations, and the first layer's filters.

The attribution methods are Captum's, set up for this model's input: one channel of
normalized pixels whose background is -1, not 0. So "no ink" (-1) is the baseline
of integrated gradients and what occlusion paints over a patch; a zero baseline would
be a grey page and credit the background. Every map is for one target class, aligned
with the 28x28 input, and positive where the pixel supports that class.

The gradient methods are smoothed (SmoothGrad, Captum's NoiseTunnel): a raw gradient
is speckle that changes with every pixel, the average over noisy copies shows its shape.
``rank_correlation`` and ``deletion`` are the checks a map must pass to be trusted: it
changes when the weights are randomized (Adebayo et al., 2018), and erasing the pixels
it ranks first lowers the class's probability faster than erasing ink at random.

Captum's Grad-CAM works through forward hooks on the model. The dashboard shares one
model object between sessions, and another session's forward pass would run through
those hooks, so every method runs on a private copy of the model, made once per model
and used under a lock.
"""

from __future__ import annotations

import copy
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import network
from .inference import features_and_logits
from .model import CNN

if TYPE_CHECKING:
    from captum.attr import Attribution

    from .checkpoints import Checkpoint

METHODS = ("integrated-gradients", "grad-cam", "occlusion", "saliency")
RECOMMENDED = "integrated-gradients"  # the most faithful of the four here (bench/explain.py, bench/RESULTS.md)
BACKGROUND = -1.0  # a blank pixel after data.normalize
IG_STEPS = 8  # integrated gradients' steps per noisy copy (Gauss-Legendre): more barely change the averaged map
NOISE_SAMPLES = 6  # SmoothGrad's noisy copies of the image for integrated gradients, and
SALIENCY_SAMPLES = 16  # for saliency, whose copies cost one gradient each
NOISE = 0.3  # their noise's standard deviation: 15% of the input's range (-1 to 1), as Smilkov et al. (2017) advise
NOISE_SEED = 0  # the same noise every time: the same drawing gets the same map
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


def _smoothed(method: Attribution, images: torch.Tensor, samples: int, **kwargs: Any) -> torch.Tensor:
    """SmoothGrad (Captum's NoiseTunnel): ``method`` averaged over ``samples`` noisy copies of each image.

    Image by image, each with the same seeded noise, so a map never depends on the batch it came in.
    """
    from captum.attr import NoiseTunnel

    tunnel = NoiseTunnel(method)
    maps = []
    for i in range(len(images)):
        with torch.random.fork_rng():
            torch.manual_seed(NOISE_SEED)
            maps.append(
                tunnel.attribute(
                    images[i : i + 1],
                    nt_type="smoothgrad",
                    nt_samples=samples,
                    stdevs=NOISE,
                    **{k: v[i : i + 1] if k == "target" else v for k, v in kwargs.items()},
                )
            )
    return torch.cat(maps)


def _one_target(net: CNN, images: torch.Tensor, target: torch.Tensor, method: str) -> torch.Tensor:
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency

    if method == "saliency":
        return _smoothed(Saliency(net), images.clone().requires_grad_(), SALIENCY_SAMPLES, target=target, abs=False)
    if method == "integrated-gradients":
        ig = IntegratedGradients(net)
        return _smoothed(ig, images, NOISE_SAMPLES, target=target, baselines=BACKGROUND, n_steps=IG_STEPS)
    if method == "occlusion":
        return Occlusion(net).attribute(
            images,
            sliding_window_shapes=(1, OCCLUSION_WINDOW, OCCLUSION_WINDOW),
            strides=(1, OCCLUSION_STRIDE, OCCLUSION_STRIDE),
            baselines=BACKGROUND,
            target=target,
            perturbations_per_eval=169,  # all 13x13 window positions of one image in one forward pass
        )
    # Selvaraju et al. (2017): the last conv layer's maps weighted by their mean gradient, summed, and only
    # what raises the class kept (the ReLU), then brought up to the input's size.
    coarse = LayerGradCam(net, _relu_layers(net)[-1]).attribute(images, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(coarse, (28, 28), interpolate_mode="bilinear")


def attribute(
    model: CNN,
    images: torch.Tensor,
    targets: torch.Tensor | list[int],
    method: str,
    against: torch.Tensor | list[int] | None = None,
) -> torch.Tensor:
    """(N, 28, 28) maps: for each normalized image (N, 1, 28, 28), how each pixel bears on its target class.

    Integrated gradients and occlusion credit the ink that is there against a blank page;
    saliency is the gradient of the target's logit (where adding ink would raise it); both
    gradient methods are smoothed (SmoothGrad). Grad-CAM shows the regions the last conv
    layer found telling for the class, never against it. With ``against``, the map is the
    target's less the ``against`` class's: why the target and not that one.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    images = images.detach().float().cpu()
    target = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    other = None if against is None else torch.as_tensor(against, dtype=torch.long).reshape(-1)
    if (
        images.ndim != 4
        or images.shape[1:] != (1, 28, 28)
        or len(target) != len(images)
        or (other is not None and len(other) != len(images))
    ):
        raise ValueError(f"expected images (N, 1, 28, 28) and N targets, got {tuple(images.shape)} and {len(target)}")
    with _lock:
        net = _private_copy(model)
        if other is None:
            maps = _one_target(net, images, target, method)
        else:  # both targets in one batch
            both = _one_target(net, torch.cat([images, images]), torch.cat([target, other]), method)
            maps = both[: len(images)] - both[len(images) :]
    return maps.detach()[:, 0]


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each pair of maps (N, 28, 28), as Adebayo et al. (2018) compare them.

    Ties get the mean of their ranks; a constant map (a Grad-CAM that found nothing) correlates 0 with any.
    """
    from scipy.stats import rankdata

    ranks = [torch.from_numpy(rankdata(m.flatten(1).numpy(), axis=1)) for m in (a, b)]
    x, y = (r - r.mean(1, keepdim=True) for r in ranks)
    return ((x * y).sum(1) / (x.norm(dim=1) * y.norm(dim=1)).clamp(min=1e-12)).float()


@torch.inference_mode()
def deletion(
    model: CNN, images: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor | None, steps: int = 10
) -> torch.Tensor:
    """(N, steps + 1) probability of each target as its ink is erased, a tenth more at a time (for ``steps`` 10).

    The ink pixels go most-supporting first by ``maps``, or in a random order (seeded) for ``maps`` None:
    a faithful map's curve falls faster than a random order's (the deletion metric of Petsiuk et al., 2018).
    """
    images = images.detach().float().cpu()
    ink = images[:, 0].flatten(1) > BACKGROUND + 0.5
    if maps is None:
        score = torch.rand(ink.shape, generator=torch.Generator().manual_seed(NOISE_SEED))
    else:
        score = maps.detach().float().cpu().flatten(1)
    order = torch.where(ink, score, torch.tensor(-torch.inf)).argsort(dim=1, descending=True)
    counts = ink.sum(1)
    curves = []
    net = _private_copy(model)
    for step in range(steps + 1):
        erased = images.flatten(1).clone()
        for i in range(len(images)):
            erased[i, order[i, : int(counts[i] * step / steps)]] = BACKGROUND
        with _lock:
            probabilities = net(erased.view_as(images)).softmax(1)
        curves.append(probabilities[torch.arange(len(images)), targets])
    return torch.stack(curves, dim=1)


def faithfulness(model: CNN, images: torch.Tensor, targets: torch.Tensor, method: str) -> tuple[float, float]:
    """The mean probability of the target while its ink is erased, most-supporting pixels first by ``method``'s
    maps, and in a random order: the lower the first against the second, the more faithful the map."""
    maps = attribute(model, images, targets, method)
    return deletion(model, images, targets, maps).mean().item(), deletion(model, images, targets, None).mean().item()


def distance_to_digits(checkpoint: Checkpoint, images: torch.Tensor) -> tuple[torch.Tensor, float] | None:
    """Why a picture was refused as "not a digit": its distance to training digits (N,) and the threshold it
    passed (``ood.DigitScore``: 0 is a typical digit), or None for a checkpoint without the score and no MNIST."""
    from .predict import digit_score  # reading pictures (OpenCV) is not needed for the maps

    score = digit_score(checkpoint)
    if score is None:
        return None
    return score.scores(features_and_logits(checkpoint.model, images.detach().float().cpu())[0]), score.threshold


def activations(model: CNN, images: torch.Tensor) -> list[torch.Tensor]:
    """Each conv block's output after its ReLU, before pooling: [(N, C1, 28, 28), (N, C2, 14, 14)]."""
    return [stage.values for stage in network.stages(model, images) if stage.kind == "conv"]


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
