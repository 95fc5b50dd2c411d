"""Where a model fails: accuracy, per-class metrics, the confusion matrix and every error.

Every metric derives from one pair of arrays, the true digits and the model's probabilities
(``Evaluation``); running the model to get them is ``inference``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .inference import predict_probabilities
from .model import CNN

# How the error explorer sorts: by confidence, either way, or in test-set order.
Order = Literal["most_confident", "least_confident", "index"]
ORDERS: tuple[Order, ...] = ("most_confident", "least_confident", "index")
# Another CPU, a GPU or bfloat16 moves a model's test accuracy by a few of the 10,000 images, never by 0.2 points.
RECORD_TOLERANCE = 0.002


@dataclass
class Evaluation:
    """Everything the Evaluate page and ``evaluate --json`` show, for one model on one image set."""

    labels: torch.Tensor  # (N,) true digits
    probabilities: torch.Tensor  # (N, 10) softmax outputs

    @property
    def predictions(self) -> torch.Tensor:
        return self.probabilities.argmax(1)

    @property
    def accuracy(self) -> float:
        return (self.predictions == self.labels).float().mean().item()

    @property
    def confusion(self) -> torch.Tensor:
        """(10, 10) counts; row = true digit, column = predicted digit."""
        return torch.bincount(self.labels * 10 + self.predictions, minlength=100).reshape(10, 10)

    @property
    def confidence(self) -> torch.Tensor:
        """(N,) the probability the model gave its own answer."""
        return self.probabilities.max(1).values

    def confusion_rates(self) -> torch.Tensor:
        """(10, 10) the confusion matrix as fractions of each row: how each true digit is read."""
        confusion = self.confusion.double()
        return confusion / confusion.sum(1, keepdim=True).clamp(min=1)

    def select(
        self,
        true: int | None = None,
        predicted: int | None = None,
        correct_too: bool = False,
        order: Order = "most_confident",
    ) -> torch.Tensor:
        """Indices of the images the error explorer shows: errors (or all) of a true and predicted digit, sorted.

        ``None`` means any digit. Ties keep test-set order, so a page of results is stable.
        """
        predictions = self.predictions
        shown = torch.ones_like(self.labels, dtype=torch.bool) if correct_too else predictions != self.labels
        if true is not None:
            shown &= self.labels == true
        if predicted is not None:
            shown &= predictions == predicted
        indices = shown.nonzero().flatten()
        if order == "index":
            return indices
        confidence = self.confidence[indices]
        return indices[torch.sort(-confidence if order == "most_confident" else confidence, stable=True).indices]

    @property
    def error_indices(self) -> torch.Tensor:
        """Indices of every misclassified image, in dataset order."""
        return (self.predictions != self.labels).nonzero().flatten()

    def per_class(self) -> list[dict]:
        """Precision, recall, F1 and support of each digit, as one record per digit (scikit-learn's).

        A digit never predicted or never present scores 0, without a warning: a model that
        has not learnt a digit yet is a result, not an error.
        """
        from sklearn.metrics import precision_recall_fscore_support

        precision, recall, f1, support = precision_recall_fscore_support(
            self.labels.numpy(), self.predictions.numpy(), labels=list(range(10)), zero_division=0.0
        )
        return [
            {
                "digit": d,
                "precision": float(precision[d]),
                "recall": float(recall[d]),
                "f1": float(f1[d]),
                "support": int(support[d]),
            }
            for d in range(10)
        ]

    def errors(self) -> list[dict]:
        """One record per misclassified image: its index, true and predicted digit, and the ten probabilities."""
        predictions = self.predictions
        return [
            {
                "index": i,
                "true": int(self.labels[i]),
                "predicted": int(predictions[i]),
                "confidence": float(self.probabilities[i, predictions[i]]),
                "probabilities": self.probabilities[i].tolist(),
            }
            for i in self.error_indices.tolist()
        ]

    def reliability(self, bins: int = 10) -> dict:
        """Confidence against accuracy in equal-width bins, and the expected calibration error (ECE).

        A calibrated model that says 90% is right 90% of the time. ECE is the gap between
        confidence and accuracy averaged over bins, weighted by how many images each holds
        (Guo et al., 2017). Empty bins have None for their means.
        """
        confidence, correct = self.confidence.double(), (self.predictions == self.labels).double()
        which = (confidence * bins).long().clamp(max=bins - 1)
        count = torch.bincount(which, minlength=bins).double()
        mean_confidence = torch.bincount(which, confidence, minlength=bins) / count.clamp(min=1)
        accuracy = torch.bincount(which, correct, minlength=bins) / count.clamp(min=1)
        ece = ((count / max(len(correct), 1)) * (accuracy - mean_confidence).abs()).sum().item()
        occupied = (count > 0).tolist()
        return {
            "edges": torch.linspace(0, 1, bins + 1).tolist(),
            "count": count.long().tolist(),
            "confidence": [v if keep else None for v, keep in zip(mean_confidence.tolist(), occupied)],
            "accuracy": [v if keep else None for v, keep in zip(accuracy.tolist(), occupied)],
            "ece": ece,
            **self.confidence_gap(),
        }

    def confidence_gap(self) -> dict:
        """How sure the model says it is, on average, against how often it is right.

        ``gap`` is the mean confidence less the accuracy: above 0 the model is over-confident
        (it says 99% and is right 97% of the time), below 0 under-confident (label smoothing
        trains a model to say about 90% of a digit it reads right every time).
        """
        mean_confidence = self.confidence.double().mean().item() if len(self.labels) else 0.0
        return {"mean_confidence": mean_confidence, "gap": mean_confidence - self.accuracy}

    def most_confused(self) -> tuple[int, int, int] | None:
        """The commonest error as (true digit, predicted digit, images), or None when there is none."""
        wrong = self.confusion.clone()
        wrong.fill_diagonal_(0)
        if not wrong.any():
            return None
        true, predicted = divmod(int(wrong.argmax()), 10)
        return true, predicted, int(wrong[true, predicted])

    def precision_recall(self) -> list[dict]:
        """Per digit: the precision-recall curve of "is it this digit?" as its threshold sweeps, and its area.

        Each curve scores the images by that digit's probability, whatever the model
        predicted, so it shows what a stricter or looser threshold would trade. A digit
        absent from the labels has no curve (empty lists, average precision None).
        """
        from sklearn.metrics import average_precision_score, precision_recall_curve

        curves = []
        for digit in range(10):
            truth, score = (self.labels == digit).numpy(), self.probabilities[:, digit].double().numpy()
            if not truth.any():
                curves.append({"digit": digit, "precision": [], "recall": [], "average_precision": None})
                continue
            precision, recall, _ = precision_recall_curve(truth, score)
            curves.append(
                {
                    "digit": digit,
                    "precision": precision.tolist(),
                    "recall": recall.tolist(),
                    "average_precision": float(average_precision_score(truth, score)),
                }
            )
        return curves

    def wrong_record(self, metrics: dict) -> float | None:
        """The test accuracy a checkpoint's metrics record when it is not what this evaluation measured; else None.

        A checkpoint's metrics are whatever its file says, and anyone can write any number
        there (a file with random weights claimed 99.52% and scored 9.8%). So pages show
        the measured accuracy and say when the record disagrees by more than
        RECORD_TOLERANCE, rather than trusting it.
        """
        recorded = metrics.get("test_accuracy")
        if recorded is None or abs(recorded - self.accuracy) <= RECORD_TOLERANCE:
            return None
        return float(recorded)

    def summary(self) -> dict:
        """The JSON form: ``accuracy`` (0..1), ``per_class``, ``confusion`` (10x10) and ``n_errors``."""
        return {
            "accuracy": self.accuracy,
            "per_class": self.per_class(),
            "confusion": self.confusion.tolist(),
            "n_errors": len(self.error_indices),
        }


def evaluate(model: CNN, images: torch.Tensor, labels: torch.Tensor) -> Evaluation:
    """Run the model over every image once; all metrics derive from those probabilities."""
    return Evaluation(labels=labels.cpu(), probabilities=predict_probabilities(model, images))
