"""Is it a digit at all? A score for letters, symbols, smileys and scribbles, which softmax alone cannot give.

Softmax spreads all belief over ten digits, so an "A" or a smiley still gets a confident
answer. The score used here is the Mahalanobis distance (Lee et al., 2018) of the
model's last convolutional features (each channel averaged over the image) to the
nearest digit class: per-class means and one shared covariance, fitted on training
digits. A picture whose features lie far from every class is not a digit. The threshold
is the distance that only REJECT_RATE of held-out MNIST digits exceed, so real digits
are almost never refused.

Measured on generated letters, symbols and scribbles against MNIST test digits
(bench/photos.py), at the same share of MNIST digits refused, this flagged more
non-digits and fewer real handwritten digits than the distance on the penultimate
layer's features, the energy score (log-sum-exp of the logits, Liu et al., 2020) or the
top softmax probability. The fitted statistics are stored in the checkpoint
(``digit_score``), and fitted on demand for checkpoints saved without them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import MNIST
from .evaluate import features_and_logits
from .model import CNN

REJECT_RATE = 0.005  # of held-out MNIST digits, refused as "not a digit": half the 1% allowed on the test set
FIT_IMAGES = 10000  # training digits for the means and covariance: 1,000 a class is plenty for 256 features
RIDGE = 1e-3  # added to the covariance's diagonal (relative to its mean variance), so it always inverts


@dataclass(frozen=True)
class DigitScore:
    """Class means (10, H), the shared precision matrix (H, H) and the distance threshold."""

    means: torch.Tensor
    precision: torch.Tensor
    threshold: float

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance of each feature row to its nearest class mean, (N,)."""
        diff = features.unsqueeze(1) - self.means.unsqueeze(0)  # (N, 10, H)
        return torch.einsum("nch,hk,nck->nc", diff, self.precision, diff).min(dim=1).values

    def is_digit(self, features: torch.Tensor) -> torch.Tensor:
        return self.distances(features) <= self.threshold

    def to_dict(self) -> dict:
        return {"means": self.means, "precision": self.precision, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, payload: dict) -> DigitScore:
        return cls(payload["means"].float(), payload["precision"].float(), float(payload["threshold"]))


def fit_digit_score(model: CNN, data: MNIST, val_size: int, seed: int) -> DigitScore:
    """Fit means and covariance on training digits, and the threshold on digits the model never trained on.

    Those are the validation split that training held out (``val_size`` and ``seed`` as
    in its TrainConfig), or the test set when training held none out.
    """
    train_index, val_index = data.validation_indices(val_size, seed)
    fit_index = train_index[torch.randperm(len(train_index), generator=torch.Generator().manual_seed(seed))]
    fit_index = fit_index[:FIT_IMAGES]
    features, _ = features_and_logits(model, data.train_images[fit_index])
    labels = data.train_labels[fit_index]
    far = torch.full_like(features[0], 1e6)  # a digit missing from a small training set is never the nearest
    means = torch.stack([features[labels == d].mean(dim=0) if (labels == d).any() else far for d in range(10)])
    centred = (features - means[labels]).double()
    covariance = centred.T @ centred / len(centred)
    covariance += RIDGE * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=torch.float64)
    score = DigitScore(means, torch.linalg.inv(covariance).float(), 0.0)
    held_out = data.train_images[val_index] if len(val_index) else data.test_images
    distances = score.distances(features_and_logits(model, held_out)[0])
    return DigitScore(means, score.precision, float(torch.quantile(distances, 1 - REJECT_RATE)))
