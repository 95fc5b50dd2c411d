"""Teaching the model a handwriting: saving corrected readings from the Draw page, and the Teach page's parts.

The session's sample set is a folder (``mnist_core.samples``); its name is chosen on the Teach
page and kept in ``st.session_state.sample_set``. Set and file names are user text: they are
shown with ``st.text`` or as widget labels, never as Markdown.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import streamlit as st

import common
from mnist_core.checkpoints import Checkpoint
from mnist_core.compare import compare
from mnist_core.predict import DigitReading, Prediction
from mnist_core.samples import DEFAULT_SET, Sample, SampleError, SampleSet, delete, relabel, save_sample, set_dir

COLUMNS = 8  # samples per gallery row


def current_set() -> Path:
    """The folder of this session's sample set."""
    return set_dir(st.session_state.setdefault("sample_set", DEFAULT_SET))


def _save(key: str, reading: DigitReading, digit: int | None) -> None:
    saved = st.session_state.setdefault("saved_readings", {})
    if digit is None or key in saved:  # the pills cleared, or a click repeated by an interrupted rerun
        return
    save_sample(current_set(), digit, reading.steps["28x28"], reading.steps["cropped"])
    saved[key] = digit
    st.toast(f"Saved as a {digit} in your sample set: the Teach page has it", icon=":material/school:")


def corrections(prediction: Prediction) -> None:
    """Under the Draw page's reading, for each digit: "right" or the right digit, one click, saved to the set.

    A reading is known by its 28x28, so the same drawing read again is not offered twice.
    """
    st.subheader("Was it right?")
    st.caption(
        "Teach it your handwriting: each digit you confirm or correct is saved to your sample set, "
        "and the Teach page fine-tunes the model on them."
    )
    saved = st.session_state.setdefault("saved_readings", {})
    for number, reading in enumerate(prediction.digits):
        key = f"{number}-{hashlib.sha1(reading.steps['28x28'].tobytes()).hexdigest()[:12]}"
        image, right, fix = st.columns([1, 2, 9], vertical_alignment="center")
        image.image(common.enlarge(reading.steps["28x28"], 2))
        if key in saved:
            right.caption(f"saved as {saved[key]} ✓")
            continue
        if reading.is_digit:
            right.button(
                f"Right: {reading.digit}",
                key=f"right-{key}",
                icon=":material/check:",
                on_click=_save,
                args=(key, reading, reading.digit),
            )
        fix.pills(
            "It is",
            list(range(10)),
            key=f"fix-{key}",
            on_change=lambda key=key, reading=reading: _save(key, reading, st.session_state[f"fix-{key}"]),
            label_visibility="collapsed",
        )


def _relabel(sample: Sample) -> None:
    try:
        relabel(sample, st.session_state[f"label-{sample.name}"])
    except SampleError as exc:  # moved or deleted meanwhile in another session
        st.toast(str(exc), icon=":material/warning:")


def gallery(found: SampleSet) -> None:
    """The set by digit: each sample as the model sees it, with its digit to change and a delete button."""
    counts = found.counts()
    for digit, tab in enumerate(st.tabs([f"{d} ({counts[d]})" for d in range(10)])):
        with tab:
            mine = [(i, s) for i, s in enumerate(found.samples) if s.digit == digit]
            if not mine:
                st.caption(f"No {digit} yet: correct a reading on the Draw page, or upload a zip.")
            for start in range(0, len(mine), COLUMNS):
                for column, (index, sample) in zip(st.columns(COLUMNS), mine[start : start + COLUMNS]):
                    pixels = ((found.images[index, 0].numpy() + 1) * 127.5).round().astype(np.uint8)
                    column.image(common.enlarge(pixels, 3))
                    column.selectbox(
                        "Digit",
                        range(10),
                        index=digit,
                        key=f"label-{sample.name}",
                        on_change=_relabel,
                        args=(sample,),
                        label_visibility="collapsed",
                    )
                    column.button(
                        "Delete", key=f"delete-{sample.name}", icon=":material/delete:", on_click=delete, args=(sample,)
                    )


def before_after(base: Checkpoint, taught: Checkpoint, found: SampleSet) -> None:
    """The samples the old model got wrong and the new one reads right, and any it broke (``compare``)."""
    if not len(found):
        return
    comparison = compare(base, taught, found.images, found.labels)
    a, b = comparison.a, comparison.b
    mine, mnist = st.columns(2)
    before, after = common.measured_evaluation(base), common.measured_evaluation(taught)
    if before is not None and after is not None:  # what it may have forgotten
        change = f"{100 * (after.accuracy - before.accuracy):+.2f} points"
        mnist.metric("MNIST test accuracy", f"{after.accuracy:.2%}", change)
    mine.metric(
        "Samples read right (those it learnt from)",
        f"{b.accuracy:.0%}",
        f"{100 * (b.accuracy - a.accuracy):+.0f} points",
    )
    for title, indices in (("Fixed: wrong before, right now", comparison.fixed), ("Broken", comparison.broken)):
        st.markdown(f"**{title}: {len(indices)}**")
        for start in range(0, len(indices), COLUMNS):
            for column, index in zip(st.columns(COLUMNS), indices[start : start + COLUMNS].tolist()):
                pixels = ((found.images[index, 0].numpy() + 1) * 127.5).round().astype(np.uint8)
                right = bool(b.predictions[index] == found.labels[index])
                column.image(
                    common.framed(pixels, right),
                    caption=f"{int(a.predictions[index])} → {int(b.predictions[index])}",
                )
