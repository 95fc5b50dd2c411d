"""Calibration numbers on probabilities made in the test, where the right answer is known."""

import pytest
import torch

from mnist_core.evaluate import Evaluation


def confident(n_right: int, n_wrong: int, confidence: float) -> Evaluation:
    """Images of digit 0 predicted with ``confidence``: as 0 for the right ones, as 1 for the wrong ones."""
    rest = (1 - confidence) / 9
    right = torch.full((n_right, 10), rest)
    right[:, 0] = confidence
    wrong = torch.full((n_wrong, 10), rest)
    wrong[:, 1] = confidence
    return Evaluation(labels=torch.zeros(n_right + n_wrong, dtype=torch.long), probabilities=torch.cat([right, wrong]))


def test_a_model_right_as_often_as_it_is_sure_has_no_calibration_error():
    result = confident(90, 10, 0.95)
    reliability = result.reliability(bins=10)
    assert reliability["ece"] == pytest.approx(0.05)  # 95% sure, 90% right
    assert confident(95, 5, 0.95).reliability()["ece"] == pytest.approx(0.0, abs=1e-6)


def test_the_confidence_gap_says_under_or_over_confident_and_by_how_much():
    under, over = confident(100, 0, 0.9), confident(90, 10, 0.99)
    assert under.confidence_gap()["gap"] == pytest.approx(-0.1)  # right every time, 90% sure
    reliability = over.reliability()
    assert reliability["gap"] == pytest.approx(0.09) and reliability["mean_confidence"] == pytest.approx(0.99)


def test_the_commonest_mistake_is_named_with_its_count():
    assert confident(90, 10, 0.9).most_confused() == (0, 1, 10)  # ten 0s read as 1
    assert confident(10, 0, 0.9).most_confused() is None


def test_reliability_bins_hold_their_images():
    probabilities = torch.full((3, 10), 0.05)
    probabilities[:, 0] = torch.tensor([0.35, 0.35, 0.95])
    result = Evaluation(labels=torch.tensor([0, 1, 0]), probabilities=probabilities)
    reliability = result.reliability(bins=5)
    assert reliability["edges"] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert reliability["count"] == [0, 2, 0, 0, 1]
    assert reliability["confidence"][0] is None and reliability["confidence"][1] == pytest.approx(0.35)
    assert reliability["accuracy"][1] == pytest.approx(0.5)  # the second image is a 1 read as a 0
    assert reliability["accuracy"][4] == pytest.approx(1.0)
    assert reliability["ece"] == pytest.approx((2 * 0.15 + 1 * 0.05) / 3)


def test_precision_recall_per_digit():
    labels = torch.tensor([0, 0, 1, 1])
    probabilities = torch.zeros(4, 10)
    probabilities[:, 0] = torch.tensor([0.9, 0.4, 0.6, 0.1])  # one 1 scores above one 0
    probabilities[:, 1] = 1 - probabilities[:, 0]
    curves = Evaluation(labels=labels, probabilities=probabilities).precision_recall()
    assert [c["digit"] for c in curves] == list(range(10))
    zero = curves[0]
    # Thresholds 0.9, 0.6, 0.4: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    assert zero["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert max(zero["recall"]) == 1.0 and zero["precision"][-1] == 1.0
    assert curves[5] == {"digit": 5, "precision": [], "recall": [], "average_precision": None}  # no 5 to find
