"""Is it a digit at all? A score for letters, symbols, smileys and scribbles, which softmax alone cannot give.

Softmax spreads all belief over ten digits, so an "A" or a smiley still gets a confident
answer. The score here asks how far a picture's last convolutional features lie from
those of digits the model trained on, in three ways, each blind to what another sees:

- what strokes: the channels averaged over the image, their Mahalanobis distance to the
  nearest class mean (Lee et al., 2018; per-class means, one shared covariance);
- what strokes, without a Gaussian: one minus the cosine similarity of those channel
  means to the nearest of REFERENCES training digits (k-nearest-neighbour distance on
  normalised features, Sun et al., 2022, with k = 1);
- where the strokes are, which tells an "A" from a 4: the same nearest-neighbour
  distance on the whole 7x7 map, normalised and projected on its first LAYOUT_AXES
  principal axes so that it costs little.

Each part is put on one scale by its median and its 1 - REJECT_RATE quantile on held-out
digits, and the score is their sum: one number, one threshold, the value only
REJECT_RATE of held-out MNIST digits exceed, so real digits are almost never refused.
The sum flags far more letters, symbols and scribbles than any part alone or the usual
scores (energy, top softmax, Mahalanobis on other layers); bench/RESULTS.md has each
one's share, measured with ``bench/photos.py`` on seeds the tests do not assert on.

The fit runs at the end of every training run, so its size is set by what it costs
(``bench/digit_score.py``). More references flag a little more, but each one is a
forward pass at fit time and numbers in the checkpoint, and held-out digits (the
training set's writers) find closer neighbours than the test set's writers do, so
MNIST test refusals creep up with them: REFERENCES, AXIS_DIGITS and LAYOUT_AXES are
where the gain stopped paying.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain

import torch
import torch.nn.functional as F

from .data import MNIST
from .inference import features_and_logits
from .model import CNN

REJECT_RATE = 0.005  # of held-out MNIST digits, refused as "not a digit": half the 1% allowed on the test set
REFERENCES = 10000  # training digits kept as neighbours, and for the means and covariance
AXIS_DIGITS = 2000  # of those, the ones the principal axes are fitted on: a few axes need far fewer than all
LAYOUT_AXES = 32  # principal axes of the normalised 7x7 map that its nearest-neighbour distance compares
RIDGE = 1e-3  # added to the covariance's diagonal (relative to its mean variance), so it always inverts
CHUNK = 1000  # digits per forward pass and per distance matrix: (CHUNK, C*49) maps, never all references' at once
PARTS = ("Mahalanobis, channel means", "nearest neighbour, channel means", "nearest neighbour, 7x7 layout")


@dataclass(frozen=True)
class DigitScore:
    """What the score compares a picture's last conv maps (N, C, 7, 7) with, and where it draws the line."""

    means: torch.Tensor  # (10, C) class means of the channel means
    precision: torch.Tensor  # (C, C) inverse of their shared covariance
    channels: torch.Tensor  # (R, C) reference digits' channel means, unit length
    centre: torch.Tensor  # (C*49,) mean of the reference digits' maps, each flattened to unit length
    axes: torch.Tensor  # (C*49, LAYOUT_AXES) their principal axes
    layouts: torch.Tensor  # (R, LAYOUT_AXES) reference digits' projected maps, unit length
    scale: torch.Tensor  # (len(PARTS), 2) each part's held-out median and 1 - REJECT_RATE quantile
    threshold: float

    def parts(self, maps: torch.Tensor) -> torch.Tensor:
        """Each part's distance to the digits, (N, len(PARTS)), before scaling; in chunks, so that scoring the
        test set never holds a (10000, REFERENCES) similarity matrix."""
        if len(maps) > CHUNK:
            return torch.cat([self.parts(chunk) for chunk in maps.split(CHUNK)])
        channel_means = maps.float().mean(dim=(2, 3))
        diff = channel_means.unsqueeze(1) - self.means.unsqueeze(0)  # (N, 10, C)
        mahalanobis = torch.einsum("nch,hk,nck->nc", diff, self.precision, diff).min(dim=1).values
        nearest_channels = 1 - (F.normalize(channel_means, dim=1) @ self.channels.T).max(dim=1).values
        layout = _layout(maps, self.centre, self.axes)
        nearest_layout = 1 - (layout @ self.layouts.T).max(dim=1).values
        return torch.stack([mahalanobis, nearest_channels, nearest_layout], dim=1)

    def scores(self, maps: torch.Tensor) -> torch.Tensor:
        """The score, (N,): the parts' sum, each in units of its held-out spread (0 = a typical digit)."""
        return self.scaled(self.parts(maps))

    def scaled(self, parts: torch.Tensor) -> torch.Tensor:
        median, high = self.scale[:, 0], self.scale[:, 1]
        return ((parts - median) / (high - median)).sum(dim=1)

    def is_digit(self, maps: torch.Tensor) -> torch.Tensor:
        return self.scores(maps) <= self.threshold

    def to_dict(self) -> dict:
        """For the checkpoint: the reference digits and their axes in half precision (they only pick a nearest one)."""
        return {
            "means": self.means,
            "precision": self.precision,
            "channels": self.channels.half(),
            "centre": self.centre.half(),
            "axes": self.axes.half(),
            "layouts": self.layouts.half(),
            "scale": self.scale,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, payload: dict) -> DigitScore:
        tensors = {k: payload[k].float() for k in ("means", "precision", "channels", "centre", "axes", "layouts")}
        return cls(**tensors, scale=payload["scale"].float(), threshold=float(payload["threshold"]))


def _layout(maps: torch.Tensor, centre: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """Where the strokes are: each map flattened to unit length, centred, projected on the principal axes, and
    brought to unit length again, so that a dot product with a reference's is their cosine similarity."""
    return F.normalize((F.normalize(maps.float().flatten(1), dim=1) - centre) @ axes, dim=1)


def _maps(model: CNN, images: torch.Tensor, index: torch.Tensor) -> Iterator[torch.Tensor]:
    """The last conv maps of ``images[index]``, CHUNK at a time, so memory stays flat."""
    for chunk in index.split(CHUNK):
        yield features_and_logits(model, images[chunk])[0]


def fit_digit_score(model: CNN, data: MNIST, val_size: int, seed: int) -> DigitScore:
    """Fit on REFERENCES training digits, and the scale and threshold on digits the model never trained on.

    Those are the validation split that training held out (``val_size`` and ``seed`` as
    in its TrainConfig), or the test set when training held none out. It runs at the end
    of every training run, so it keeps only what it stores: each chunk of references is
    reduced to its channel means and projected layout as soon as it is computed, on
    principal axes fitted on the first AXIS_DIGITS of them by a seeded randomized SVD.
    """
    train_index, val_index = data.validation_indices(val_size, seed)
    fit_index = train_index[torch.randperm(len(train_index), generator=torch.Generator().manual_seed(seed))]
    fit_index = fit_index[:REFERENCES]
    labels = data.train_labels[fit_index]

    first = features_and_logits(model, data.train_images[fit_index[:AXIS_DIGITS]])[0]
    flat = F.normalize(first.flatten(1), dim=1)
    centre = flat.mean(dim=0)
    with torch.random.fork_rng():  # randomized, but the same axes every time, and the caller's RNG untouched
        torch.manual_seed(seed)
        axes = torch.svd_lowrank(flat - centre, q=LAYOUT_AXES, niter=2)[2].contiguous()
    del flat
    channel_means, layouts = [], []
    for maps in chain(first.split(CHUNK), _maps(model, data.train_images, fit_index[AXIS_DIGITS:])):
        channel_means.append(maps.mean(dim=(2, 3)))
        layouts.append(_layout(maps, centre, axes))
    means_of_all = torch.cat(channel_means)
    far = torch.full_like(means_of_all[0], 1e6)  # a digit missing from a small training set is never the nearest
    means = torch.stack([means_of_all[labels == d].mean(dim=0) if (labels == d).any() else far for d in range(10)])
    centred = (means_of_all - means[labels]).double()
    covariance = centred.T @ centred / len(centred)
    covariance += RIDGE * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=torch.float64)
    unscaled = DigitScore(
        means=means,
        precision=torch.linalg.inv(covariance).float(),
        channels=F.normalize(means_of_all, dim=1),
        centre=centre,
        axes=axes,
        layouts=torch.cat(layouts),
        scale=torch.tensor([[0.0, 1.0]] * len(PARTS)),
        threshold=0.0,
    )
    held_out = (
        (data.train_images, val_index) if len(val_index) else (data.test_images, torch.arange(len(data.test_images)))
    )
    parts = torch.cat([unscaled.parts(maps) for maps in _maps(model, *held_out)])
    scale = torch.quantile(parts, torch.tensor([0.5, 1 - REJECT_RATE]), dim=0).T.contiguous()
    scale[:, 1] = torch.maximum(scale[:, 1], scale[:, 0] + 1e-6)  # a part that never varies cannot divide by 0
    scored = replace(unscaled, scale=scale)
    return replace(scored, threshold=float(torch.quantile(scored.scaled(parts), 1 - REJECT_RATE)))
