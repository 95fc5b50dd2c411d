"""Experiments a class can run: settings that break a model on purpose, and what a run's own numbers show.

Each experiment is a preset with a few settings changed, small enough to train in seconds to a
minute on a laptop. ``outcome`` reads what happened from the run's epoch history: the gap
between training and validation accuracy (memorising), whether the loss blew up (divergence).
The pages say it in words (``dashboard/experiments_view.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import settings
from .model import ModelConfig
from .train import PRESETS, TrainConfig

CHANCE = 0.1  # ten digits: what guessing scores


@dataclass(frozen=True)
class Experiment:
    key: str  # its name in the address (?experiment=key)
    preset: str
    changes: dict[str, Any] = field(default_factory=dict)  # settings that differ from the preset

    def configs(self) -> tuple[ModelConfig, TrainConfig]:
        model, train = PRESETS[self.preset]
        return settings.apply(model, self.changes), settings.apply(train, self.changes)

    def values(self) -> dict[str, Any]:
        """Every setting's value in this experiment: the preset's, then the changes."""
        model, train = self.configs()
        return {**model.to_dict(), **train.to_dict()}


# Validation on 1,000 images: the many epochs of the small ones would spend most of their time validating.
EXPERIMENTS = {
    e.key: e
    for e in (
        Experiment("tiny-data", "quick", {"train_size": 1000, "epochs": 10, "val_size": 1000}),
        Experiment("lr-too-high", "quick", {"lr": 1.0, "schedule": "constant", "train_size": 10000}),
        Experiment("no-augmentation", "quick", {"augment": False, "epochs": 2}),
        Experiment("two-filters", "quick", {"conv1_channels": 2}),
        Experiment(
            "shuffled-labels",
            "quick",
            {"shuffle_labels": True, "train_size": 1000, "epochs": 30, "val_size": 1000, "label_smoothing": 0.0},
        ),
    )
}


@dataclass(frozen=True)
class Outcome:
    """What a run's epoch history shows."""

    epochs: int
    first_loss: float
    last_loss: float
    train_accuracy: float  # the last epoch's running training accuracy
    val_accuracy: float | None  # the last epoch's, None without a validation split
    best_val_accuracy: float | None

    @property
    def gap(self) -> float | None:
        """Training less validation accuracy: how much of what it learnt holds only for its own images."""
        return None if self.val_accuracy is None else self.train_accuracy - self.val_accuracy

    @property
    def diverged(self) -> bool:
        """The loss blew up or went non-finite, and the model guesses no better than chance."""
        blew_up = not math.isfinite(self.last_loss) or self.last_loss > 10 * math.log(10)
        return blew_up and self.train_accuracy < 2 * CHANCE

    @property
    def memorised(self) -> bool:
        """Near-perfect on its training images, near chance on others."""
        return self.train_accuracy > 0.9 and self.val_accuracy is not None and self.val_accuracy < 2 * CHANCE


def outcome(history: list[dict]) -> Outcome | None:
    """From a run's epoch reports (``TrainResult.history``, a checkpoint's history); None before the first epoch."""
    if not history:
        return None
    vals = [h["val_accuracy"] for h in history if h.get("val_accuracy") is not None]
    return Outcome(
        epochs=len(history),
        first_loss=float(history[0]["loss"]),
        last_loss=float(history[-1]["loss"]),
        train_accuracy=float(history[-1]["accuracy"]),
        val_accuracy=float(vals[-1]) if vals else None,
        best_val_accuracy=max(vals) if vals else None,
    )


def matching(model: ModelConfig, train: TrainConfig) -> Experiment | None:
    """The experiment these settings are, if any (the device is not part of an experiment)."""
    values = {**model.to_dict(), **train.to_dict()}
    for experiment in EXPERIMENTS.values():
        theirs = experiment.values()
        if all(values[k] == theirs[k] for k in theirs if k != "device"):
            return experiment
    return None
