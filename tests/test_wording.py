"""The dashboard's wording: what the pages say about the numbers and states ``mnist_core`` returns."""

import sys
from pathlib import Path

import torch

from mnist_core.evaluate import ORDERS, Evaluation
from mnist_core.runs import history_rows

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dashboard"))  # where the pages import it from
from wording import ORDER_LABELS, describe_seconds, no_model_reason, refused, wrong_record


def test_durations_read_as_people_say_them():
    assert [describe_seconds(s) for s in (2, 42, 200, 5400)] == [
        "about 5 s",
        "about 40 s",
        "about 3 min",
        "about 1 h 30 min",
    ]


def test_a_row_without_a_model_says_how_its_run_ended_and_why():
    rows = history_rows(
        [
            {"name": "stopped", "status": "cancelled", "error": "cancelled while waiting in the queue"},
            {"name": "broken", "status": "failed", "error": "RuntimeError: out of memory"},
            {"name": "busy", "status": "running"},
        ]
    )
    assert [no_model_reason(row) for row in rows] == [
        "**stopped** was cancelled (cancelled while waiting in the queue): it left no model to use.",
        "**broken** failed (RuntimeError: out of memory): it left no model to use.",
        "**busy** is still running: it left no model to use.",
    ]


def test_every_order_has_a_label_and_a_wrong_record_is_said_with_both_figures():
    assert list(ORDER_LABELS) == list(ORDERS)
    liar = Evaluation(labels=torch.tensor([0, 1, 2, 3]), probabilities=torch.eye(10)[[0, 1, 2, 4]])
    recorded = liar.wrong_record({"test_accuracy": 0.9952})
    assert recorded == 0.9952 and liar.wrong_record({"test_accuracy": 0.75}) is None
    assert wrong_record(recorded, liar.accuracy, 4) == (
        "its file records 99.52% test accuracy, but it scores 75.00% on the 4 test images: the record is wrong"
    )


def test_a_refusal_says_the_distance_against_the_threshold():
    said = refused(2.779, 2.433, 0.005)
    assert "2.78" in said and "threshold 2.43" in said and "0.5% of held-out digits" in said
