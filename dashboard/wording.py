"""How the pages say what ``mnist_core`` measures: durations, a run that left no model, a record that
disagrees with its measurement, the explorer's orders. The package returns numbers and states; this
module turns them into the sentences every page shares, and needs no Streamlit, so tests call it directly."""

from __future__ import annotations

import html
import re

from mnist_core.evaluate import Order

ORDER_LABELS: dict[Order, str] = {
    "most_confident": "most confident first",
    "least_confident": "least confident first",
    "index": "test set order",
}


# What Streamlit's Markdown reads as markup anywhere in a line (links, images, emphasis, code, HTML, LaTeX, a
# colon before a word: colours, icons, emoji), an underscore only at a word's edge, and what starts a block.
_MARKUP = re.compile(
    r"[\\`*\[\]<>!$~|#&{}]|:(?=\S)|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"  # anywhere
    r"|^[-+=]|(?<=^\d)[.)]|(?<=^\d\d)[.)]"  # a list, a rule, a numbered list
)
# What Streamlit reads as markup even when escaped: links in plain text (https://..., www...., a@b.c) and
# icons (:material/name:). An invisible word joiner between the pieces keeps the text as it reads.
_UNESCAPABLE = re.compile(r"(?<=:)(?=\S)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)


def literal(text: object) -> str:
    """Any text for Streamlit's Markdown (captions, alerts, labels, help), shown exactly as it reads, never as markup.

    For names and messages that come from outside: checkpoint file names, run and study names,
    uploaded file names, errors that quote them. A name like ``![t](https://host/x.png)`` would
    otherwise make every session's browser fetch from ``host``.
    """
    flat = " ".join(str(text).split())  # a line break could start a heading, a list or a quote
    return _UNESCAPABLE.sub("\u2060", _MARKUP.sub(lambda m: "\\" + m.group(), flat))


def chart_text(text: object) -> str:
    """Any text for a Plotly label or legend, which reads ``<b>``, ``<a href>`` and entities as markup."""
    return html.escape(str(text), quote=False)


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
    reason = f" ({literal(row['error'])})" if row["error"] else ""
    return f"**{literal(row['name'])}** {what}{reason}: it left no model to use."


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


def trained_on(metrics: dict) -> str:
    """The machine a run's time was taken on, from its metrics (``runs.hardware``): "a 2-core CPU", "NVIDIA H100";
    "" for a file from before they were recorded."""
    device = metrics.get("device")
    if device == "cpu":
        return f"a {metrics['cpu_cores']}-core CPU" if metrics.get("cpu_cores") else "the CPU"
    return literal(device) if device else ""


def calibration(gap: float, accuracy: float, confidence: float, smoothing: float = 0.0) -> str:
    """What the reliability chart says of a model (``Evaluation.confidence_gap``): under- or over-confident, and by
    how much; ``smoothing`` is the label smoothing it trained with, the usual reason for under-confidence."""
    points = abs(gap) * 100
    if points < 0.5:
        return f"Well calibrated: {confidence:.1%} sure on average, and right {accuracy:.1%} of the time."
    if gap > 0:
        return (
            f"Over-confident: {confidence:.1%} sure on average but right only {accuracy:.1%} of the time, "
            f"{points:.1f} points surer than it should be; its bars fall below the diagonal."
        )
    why = (
        f" Label smoothing ({smoothing:g} here) trains it to stop short of 100%, at no cost in accuracy."
        if smoothing
        else ""
    )
    return (
        f"Under-confident: right {accuracy:.1%} of the time but only {confidence:.1%} sure on average, "
        f"{points:.1f} points less sure than it could be; its bars stand above the diagonal.{why}"
    )


SURE, LIKELY = 0.9, 0.7  # the confidence from which an answer is said plainly, and from which it is "probably"


def certainty(confidence: float, alternative: tuple[int, float] | None = None) -> tuple[float, str, str]:
    """How the Draw page shows an answer given with ``confidence`` (the least sure digit's, for a number): its size
    in rem, its colour and the words under it, so a first stroke read "6, 60%" does not look like a sure answer.
    ``alternative`` is the runner-up digit and its probability, named when the answer is unsure."""
    if confidence >= SURE:
        return 7.0, "#31333f", f"{confidence:.0%} sure"
    other = f", or a {alternative[0]} ({alternative[1]:.0%})" if alternative else ""
    if confidence >= LIKELY:
        return 5.0, "#555867", f"probably: {confidence:.0%} sure{other}"
    return 3.0, "#8a8d96", f"a guess, only {confidence:.0%} sure{other}: draw it larger or clearer"
