"""What the Evaluate and Train pages show, computed in mnist_core: the explorer's selection and the history rows."""

import pytest
import torch

from mnist_core.evaluate import Evaluation
from mnist_core.runs import history_rows


@pytest.fixture
def made_up() -> Evaluation:
    """Six images: 0 and 3 right, 1, 2, 4 and 5 wrong, with confidences that order them."""
    labels = torch.tensor([3, 3, 3, 5, 5, 3])
    predicted = torch.tensor([3, 8, 8, 5, 3, 5])
    confidence = torch.tensor([0.9, 0.6, 0.8, 0.7, 0.5, 0.8])
    probabilities = torch.full((6, 10), 0.0)
    probabilities[torch.arange(6), predicted] = confidence
    probabilities += (1 - probabilities.sum(1, keepdim=True)) / 10  # rows sum to 1, the argmax unchanged
    return Evaluation(labels=labels, probabilities=probabilities)


def test_select_filters_errors_by_true_and_predicted_digit(made_up):
    assert sorted(made_up.select().tolist()) == [1, 2, 4, 5]
    assert sorted(made_up.select(true=3).tolist()) == [1, 2, 5]
    assert made_up.select(true=3, predicted=8, order="index").tolist() == [1, 2]
    assert made_up.select(true=3, predicted=3).tolist() == []  # the diagonal holds no errors
    assert made_up.select(true=3, predicted=3, correct_too=True).tolist() == [0]
    assert sorted(made_up.select(true=5, correct_too=True).tolist()) == [3, 4]


def test_select_orders_by_confidence_and_keeps_ties_in_test_set_order(made_up):
    assert made_up.select(order="most_confident").tolist() == [2, 5, 1, 4]
    assert made_up.select(order="least_confident").tolist() == [4, 1, 2, 5]
    assert made_up.confidence[[2, 5]].tolist() == pytest.approx([made_up.confidence[2].item()] * 2)


def test_per_class_metrics_are_scikit_learns_and_worked_out_by_hand(made_up):
    from sklearn.metrics import classification_report

    rows = {row["digit"]: row for row in made_up.per_class()}
    # Four 3s, one read as 3; two images read as 3, one of them a 5: precision 1/2, recall 1/4, F1 1/3.
    assert (rows[3]["precision"], rows[3]["recall"], rows[3]["f1"], rows[3]["support"]) == pytest.approx(
        (0.5, 0.25, 1 / 3, 4)
    )
    assert rows[8] == {"digit": 8, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}  # predicted, never true
    assert rows[0] == {"digit": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}  # never seen at all
    report = classification_report(
        made_up.labels, made_up.predictions, labels=list(range(10)), output_dict=True, zero_division=0.0
    )
    for digit, row in rows.items():
        expected = report[str(digit)]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx(
            (expected["precision"], expected["recall"], expected["f1-score"])
        )


def test_confusion_rates_are_shares_of_each_true_digit(made_up):
    rates = made_up.confusion_rates()
    assert rates[3, 8].item() == pytest.approx(0.5) and rates[3, 5].item() == pytest.approx(0.25)
    assert rates[0].sum().item() == 0  # no image of a 0: an empty row, not a division by zero


def test_history_rows_put_results_first_errors_last_and_survive_damage():
    runs = [
        {
            "name": "good",
            "status": "finished",
            "started": "2026-01-02T03:04:05+00:00",
            "metrics": {"test_accuracy": 0.99, "val_accuracy": 0.98, "train_seconds": 12.5},
            "train_config": {"epochs": 2, "batch_size": 256, "lr": 0.006},
            "model_config": {"conv1_channels": 16},
        },
        {"name": "stopped", "status": "cancelled", "error": "cancelled before it started"},
        {"name": "odd", "status": "finished", "metrics": "none", "train_config": [1], "model_config": 7},
    ]
    good, stopped, odd = history_rows(runs, active="good")
    assert list(good)[:4] == ["active", "name", "status", "test accuracy"] and list(good)[-1] == "error"
    assert (good["active"], good["test accuracy"], good["seconds"], good["epochs"], good["conv1_channels"]) == (
        True,
        0.99,
        12.5,
        2,
        16,
    )
    assert good["started"] == "2026-01-02 03:04:05"
    assert (stopped["active"], stopped["test accuracy"], stopped["error"]) == (
        False,
        None,
        "cancelled before it started",
    )
    assert (odd["test accuracy"], odd["epochs"], odd["conv1_channels"]) == (None, None, None)
