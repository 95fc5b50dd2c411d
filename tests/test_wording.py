"""The dashboard's wording: what the pages say about the numbers and states ``mnist_core`` returns."""

import re
import sys
from pathlib import Path

import torch

from mnist_core.evaluate import ORDERS, Evaluation
from mnist_core.runs import history_rows

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dashboard"))  # where the pages import it from
from wording import (
    ORDER_LABELS,
    calibration,
    certainty,
    chart_text,
    describe_seconds,
    literal,
    no_model_reason,
    refused,
    trained_on,
    wrong_record,
)


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


INJECTIONS = ["![t](https://example.com/x.png)", "[here](https://example.com)", ":red[**ALERT**]", "<b>x</b>"]


def test_names_from_outside_are_escaped_for_markdown_and_charts():
    """Each character that starts markup is escaped, so Markdown shows it as it is; bare links and icons are split
    by an invisible word joiner; line breaks cannot start a block. The browser test renders them."""
    for text in [*INJECTIONS, ":material/home: $x$ ~~s~~ `c` a@b.co www.example.com", "- a\n\n# b", "1. x"]:
        escaped = literal(text)
        bare = escaped.replace("\u2060", "")
        assert re.sub(r"\\(.)", r"\1", bare) == " ".join(text.split())  # nothing but escapes added
        assert not re.search(r"(?<!\\)([\[\]*<>$~`#]|:\S)", bare)
        assert "://" not in escaped and "www." not in escaped and "a@" not in escaped and "\n" not in escaped
    assert literal("- a") == "\\- a" and literal("12. x") == "12\\. x"  # no list
    assert literal("quick-2026_01.v2") == "quick-2026_01.v2"  # ordinary run names read as they are
    assert no_model_reason({"name": "<b>x</b>", "status": "failed", "error": ""}).startswith("**\\<b\\>x\\</b\\>**")
    assert chart_text("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"


def test_a_refusal_says_the_distance_against_the_threshold():
    said = refused(2.779, 2.433, 0.005)
    assert "2.78" in said and "threshold 2.43" in said and "0.5% of held-out digits" in said


def test_an_unsure_answer_is_drawn_smaller_and_said_as_a_guess():
    sure, likely, guess = certainty(0.97), certainty(0.8, (4, 0.15)), certainty(0.6, (4, 0.25))
    assert sure[0] > likely[0] > guess[0]  # the size follows the confidence
    assert sure[2] == "97% sure"
    assert likely[2] == "probably: 80% sure, or a 4 (15%)"
    assert guess[2] == "a guess, only 60% sure, or a 4 (25%): draw it larger or clearer"


def test_calibration_says_under_or_over_confident_by_how_much():
    under = calibration(-0.084, 0.995, 0.911, smoothing=0.1)
    assert under.startswith("Under-confident: right 99.5% of the time but only 91.1% sure on average, 8.4 points")
    assert "Label smoothing (0.1 here)" in under
    assert calibration(0.03, 0.9, 0.93).startswith("Over-confident: 93.0% sure on average but right only 90.0%")
    assert calibration(0.001, 0.95, 0.951).startswith("Well calibrated")


def test_a_training_time_names_its_machine_when_the_file_records_it():
    assert trained_on({"device": "cpu", "cpu_cores": 2}) == "a 2-core CPU"
    assert trained_on({"device": "NVIDIA H100 80GB HBM3"}) == "NVIDIA H100 80GB HBM3"
    assert trained_on({"train_seconds": 33.0}) == ""  # an older file: the time alone
