"""How the pages say what ``mnist_core`` measures: durations, a run that left no model, a record that
disagrees with its measurement, the explorer's orders. The package returns numbers and states; this
module turns them into the sentences every page shares, and needs no Streamlit, so tests call it directly."""

from __future__ import annotations

from mnist_core.evaluate import Order

ORDER_LABELS: dict[Order, str] = {
    "most_confident": "most confident first",
    "least_confident": "least confident first",
    "index": "test set order",
}


def describe_seconds(seconds: float) -> str:
    """A duration as people say it: "about 40 s", "about 3 min", "about 1 h 20 min"."""
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def no_model_reason(row: dict) -> str:
    """Why a history row (of ``runs.history_rows``) has no model to make active."""
    what = {"failed": "failed", "running": "is still running"}.get(row["status"], f"was {row['status']}")
    reason = f" ({row['error']})" if row["error"] else ""
    return f"**{row['name']}** {what}{reason}: it left no model to use."


def wrong_record(recorded: float, measured: float, images: int) -> str:
    """What to say when a checkpoint's recorded accuracy (``Evaluation.wrong_record``) is not what it scores."""
    return (
        f"its file records {recorded:.2%} test accuracy, but it scores {measured:.2%} "
        f"on the {images:,} test images: the record is wrong"
    )


def refused(distance: float, threshold: float, rate: float) -> str:
    """Why a picture was called "not a digit", from ``explain.distance_to_digits``'s numbers; ``rate`` is the share
    of held-out digits past the threshold (``ood.REJECT_RATE``)."""
    return (
        f"Refused: its last conv layer's features lie {distance:.2f} from the training digits', past the "
        f"threshold {threshold:.2f} that only {rate:.1%} of held-out digits exceed (0 is a typical digit)."
    )
