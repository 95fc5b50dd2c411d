"""Two runs side by side: what run B fixed and what it broke relative to run A, and how their settings differ.

Every number comes from each model's own ``Evaluation`` on the same test images, so a
comparison always agrees with what the Evaluate page says about each model alone:
``fixed`` is exactly A's errors that B does not make, ``broken`` exactly B's errors that
A did not make.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .checkpoints import Checkpoint
from .evaluate import Evaluation, evaluate


@dataclass
class Comparison:
    """Run A (the baseline) and run B, evaluated on the same labelled images."""

    a: Evaluation
    b: Evaluation

    def __post_init__(self) -> None:
        if not torch.equal(self.a.labels, self.b.labels):
            raise ValueError("both evaluations must be on the same images, in the same order")

    @property
    def agreement(self) -> float:
        """The share of images both models give the same digit, right or wrong."""
        return (self.a.predictions == self.b.predictions).float().mean().item()

    @property
    def fixed(self) -> torch.Tensor:
        """Indices of the images A got wrong and B gets right, in dataset order."""
        labels = self.a.labels
        return ((self.a.predictions != labels) & (self.b.predictions == labels)).nonzero().flatten()

    @property
    def broken(self) -> torch.Tensor:
        """Indices of the images A got right and B gets wrong, in dataset order."""
        labels = self.a.labels
        return ((self.a.predictions == labels) & (self.b.predictions != labels)).nonzero().flatten()

    def summary(self) -> dict:
        """The JSON form: ``accuracy`` of each, ``agreement``, and the ``fixed`` and ``broken`` indices."""
        return {
            "accuracy": {"a": self.a.accuracy, "b": self.b.accuracy},
            "agreement": self.agreement,
            "fixed": self.fixed.tolist(),
            "broken": self.broken.tolist(),
        }


def compare(a: Checkpoint, b: Checkpoint, images: torch.Tensor, labels: torch.Tensor) -> Comparison:
    """Evaluate both models on the same images (normalized, as ``data.MNIST`` holds them)."""
    return Comparison(evaluate(a.model, images, labels), evaluate(b.model, images, labels))


def settings(checkpoint: Checkpoint) -> dict:
    """Every setting a run was made with, model and training together, as field -> value."""
    return {**checkpoint.model_config.to_dict(), **checkpoint.train_config.to_dict()}


def settings_diff(checkpoints: Sequence[Checkpoint]) -> dict[str, list]:
    """Only the settings that differ between the runs: field -> one value per run, in the order given."""
    values = [settings(c) for c in checkpoints]
    fields = dict.fromkeys(field for v in values for field in v)  # every field, first-seen order
    rows = {field: [v.get(field) for v in values] for field in fields}
    return {field: row for field, row in rows.items() if any(value != row[0] for value in row)}
