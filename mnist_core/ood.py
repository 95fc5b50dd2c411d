"""Is it a digit at all? A score for letters, symbols, smileys and scribbles, which softmax alone cannot give.

Softmax spreads all belief over ten digits, so an "A" or a smiley still gets a confident
answer. The score here asks how far a picture's last convolutional features lie from
those of digits the model trained on, in three ways, each blind to what another sees,
and on which side of a line between digits and letters they fall:

- what strokes: the channels averaged over the image, their Mahalanobis distance to the
  nearest class mean (Lee et al., 2018; per-class means, one shared covariance);
- what strokes, without a Gaussian: one minus the cosine similarity of those channel
  means to the nearest of REFERENCES training digits (k-nearest-neighbour distance on
  normalised features, Sun et al., 2022, with k = 1);
- where the strokes are, which tells an "A" from a 4: the same nearest-neighbour
  distance on the whole 7x7 map, normalised and projected on its first LAYOUT_AXES
  principal axes so that it costs little;
- which side of a line it is on, which tells a B from an 8 better than any distance: a
  logistic regression on the 7x7 map pooled to 3x3 and to channel means, fitted on
  training digits (plain and augmented) against letters and symbols (``letters``) and
  scribbles (``data.outliers``). Distances only know digits, so a letter that lies as
  close to them as an untidy digit does passes; the line is drawn where letters lie.
  It is weighted as much as the three distances together (SIDE_WEIGHT).

Each part is put on one scale by its median and its 1 - REJECT_RATE quantile on held-out
digits, and the score is their weighted sum: one number, one threshold, the value only
REJECT_RATE of held-out MNIST digits exceed, so real digits are almost never refused.

bench/digit_score.py --figures measures each part and the softmax scores on letters
written like digits (tests/not_digits.py), and bench/photos.py on letters, shapes and
scribbles; bench/RESULTS.md has the figures. Each distance alone, the distance on
penultimate features, the energy score (Liu et al., 2020), the top softmax probability,
Mahalanobis on pooled maps, relative Mahalanobis (Ren et al., 2021), per-layer ensembles
and a pixel-space PCA reconstruction error all flagged fewer than the sum, and the sum
of the distances flagged fewer letters than the sum with the line. Outlier exposure to
the same letters in training, without the line, moved the distances little and cost
MNIST accuracy.

The fit runs at the end of every training run, so its size is set by what it costs.
More references flag a little more (20,000 with 64 axes: 82%, 78%, 85% with the axes
from 2,000 of them, 86%, 82%, 89% from all), but each one is a forward pass at fit
time and C + LAYOUT_AXES half-precision numbers in the checkpoint, and held-out digits
(the training set's writers) find closer neighbours than the test set's writers do, so
MNIST test refusals creep towards 1% (0.95% with all 55,000). 10,000 references and 32
axes from 2,000 of them cost about what the Mahalanobis score alone did; the line adds
SIDE_AUGMENTED + SIDE_OTHERS forward passes, fewer of them flagging fewer letters.
bench/digit_score.py measures the fit's time and memory and the stored score's size
(``digit_score``, 2 MB for the default model). Scoring one digit costs well under a
millisecond on one thread, most of it the two nearest-neighbour searches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain

import torch
import torch.nn.functional as F

from .data import MNIST, augment, outliers
from .inference import features_and_logits
from .letters import written_letters
from .model import CNN

REJECT_RATE = 0.005  # of held-out MNIST digits, refused as "not a digit": half the 1% allowed on the test set
REFERENCES = 10000  # training digits kept as neighbours, and for the means and covariance
AXIS_DIGITS = 2000  # of those, the ones the principal axes are fitted on: a few axes need far fewer than all
LAYOUT_AXES = 32  # principal axes of the normalised 7x7 map that its nearest-neighbour distance compares
RIDGE = 1e-3  # added to the covariance's diagonal (relative to its mean variance), so it always inverts
CHUNK = 1000  # digits per forward pass and per distance matrix: (CHUNK, C*49) maps, never all references' at once
SIDE_AUGMENTED = 2000  # references augmented once more for the line, so that it keeps untidy digits on their side
SIDE_OTHERS = 4000  # letters and scribbles it is fitted against, a third scribbles
SIDE_WEIGHT = 3.0  # the line's part counts as much as the three distances together
SIDE_STEPS = 50  # L-BFGS iterations: the loss has settled well before
SIDE_RIDGE = 1e-4  # weight decay on the line's standardised weights
PARTS = (
    "Mahalanobis, channel means",
    "nearest neighbour, channel means",
    "nearest neighbour, 7x7 layout",
    "digits' side of a line, pooled maps",
)
WEIGHTS = (1.0, 1.0, 1.0, SIDE_WEIGHT)


@dataclass(frozen=True)
class DigitScore:
    """What the score compares a picture's last conv maps (N, C, 7, 7) with, and where it draws the line."""

    means: torch.Tensor  # (10, C) class means of the channel means
    precision: torch.Tensor  # (C, C) inverse of their shared covariance
    channels: torch.Tensor  # (R, C) reference digits' channel means, unit length
    centre: torch.Tensor  # (C*49,) mean of the reference digits' maps, each flattened to unit length
    axes: torch.Tensor  # (C*49, LAYOUT_AXES) their principal axes
    layouts: torch.Tensor  # (R, LAYOUT_AXES) reference digits' projected maps, unit length
    side: torch.Tensor  # (10 C + 1,) the line's weights on _pooled maps, then its bias; above 0: not a digit
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
        side = _pooled(maps) @ self.side[:-1] + self.side[-1]
        return torch.stack([mahalanobis, nearest_channels, nearest_layout, side], dim=1)

    def scores(self, maps: torch.Tensor) -> torch.Tensor:
        """The score, (N,): the parts' weighted sum, each in units of its held-out spread (0 = a typical digit)."""
        return self.scaled(self.parts(maps))

    def scaled(self, parts: torch.Tensor) -> torch.Tensor:
        median, high = self.scale[:, 0], self.scale[:, 1]
        return ((parts - median) / (high - median) * torch.tensor(WEIGHTS)).sum(dim=1)

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
            "side": self.side,
            "scale": self.scale,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, payload: dict) -> DigitScore:
        tensors = {
            k: payload[k].float() for k in ("means", "precision", "channels", "centre", "axes", "layouts", "side")
        }
        return cls(**tensors, scale=payload["scale"].float(), threshold=float(payload["threshold"]))


def _layout(maps: torch.Tensor, centre: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """Where the strokes are: each map flattened to unit length, centred, projected on the principal axes, and
    brought to unit length again, so that a dot product with a reference's is their cosine similarity."""
    return F.normalize((F.normalize(maps.float().flatten(1), dim=1) - centre) @ axes, dim=1)


def _pooled(maps: torch.Tensor) -> torch.Tensor:
    """The channel means and the 3x3 pooled map side by side, (N, 10 C): where strokes are, at a tenth of the size."""
    return torch.cat([maps.float().mean(dim=(2, 3)), F.adaptive_avg_pool2d(maps.float(), 3).flatten(1)], dim=1)


def _side(model: CNN, pooled: torch.Tensor, digits: torch.Tensor, seed: int) -> torch.Tensor:
    """A logistic regression on pooled last conv maps: the references' (``pooled``) and SIDE_AUGMENTED of their
    ``digits`` augmented below 0, letters, symbols and scribbles above. Weights then bias, (10 C + 1,), on the
    maps as they are (standardised only to fit). The references' maps are at hand already: only the rest cost
    a forward pass."""
    generator = torch.Generator().manual_seed(seed)
    scribbles = outliers(digits[: SIDE_OTHERS // 3], generator)
    others = torch.cat([scribbles, written_letters(SIDE_OTHERS - len(scribbles), generator, torch.device("cpu"))])
    images = torch.cat([augment(digits[:SIDE_AUGMENTED], generator), others])
    x = torch.cat([pooled, *(_pooled(maps) for maps in _maps(model, images, torch.arange(len(images))))])
    y = torch.cat([torch.zeros(len(x) - len(others)), torch.ones(len(others))])
    mean, std = x.mean(dim=0), x.std(dim=0) + 1e-4
    x = (x - mean) / std
    weights = torch.zeros(x.shape[1] + 1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], max_iter=SIDE_STEPS, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = F.binary_cross_entropy_with_logits(x @ weights[:-1] + weights[-1], y)
        value = value + SIDE_RIDGE * weights[:-1].square().sum()
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(loss)
    w, b = weights.detach()[:-1] / std, weights.detach()[-1]
    return torch.cat([w, (b - mean @ w)[None]])


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
    channel_means, layouts, pooled = [], [], []
    for maps in chain(first.split(CHUNK), _maps(model, data.train_images, fit_index[AXIS_DIGITS:])):
        pooled.append(_pooled(maps))
        channel_means.append(maps.mean(dim=(2, 3)))
        layouts.append(_layout(maps, centre, axes))
    means_of_all = torch.cat(channel_means)
    far = torch.full_like(means_of_all[0], 1e6)  # a digit missing from a small training set is never the nearest
    means = torch.stack([means_of_all[labels == d].mean(dim=0) if (labels == d).any() else far for d in range(10)])
    centred = (means_of_all - means[labels]).double()
    covariance = centred.T @ centred / len(centred)
    covariance += RIDGE * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=torch.float64)
    side = _side(model, torch.cat(pooled), data.train_images[fit_index], seed)
    unscaled = DigitScore(
        means=means,
        precision=torch.linalg.inv(covariance).float(),
        channels=F.normalize(means_of_all, dim=1),
        centre=centre,
        axes=axes,
        layouts=torch.cat(layouts),
        side=side,
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
