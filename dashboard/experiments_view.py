"""The Train page's class experiments: one click sets the settings, the address shares them, and after the run
the page says what happened in that run's own numbers (``mnist_core.experiments``)."""

from __future__ import annotations

import math
from dataclasses import asdict

import streamlit as st

from mnist_core.experiments import EXPERIMENTS, Outcome, matching, outcome
from mnist_core.jobs import Job
from mnist_core.train import run_settings
from wording import literal

# title, what to watch while it trains
WORDS = {
    "tiny-data": (
        "Tiny data",
        "1,000 training images for 10 epochs. Watch the two accuracy curves part: training climbs towards 100%, "
        "validation stops well below.",
    ),
    "lr-too-high": (
        "Learning rate too high",
        "Steps 100 times the usual size. Watch the loss: it jumps up instead of down, and accuracy stays at guessing.",
    ),
    "no-augmentation": (
        "No augmentation",
        "Only MNIST's neat, centred digits. Then draw on the Draw page: small, tilted, thick or off-centre digits, "
        "with this model and with the default (trained on shifted and rotated copies).",
    ),
    "two-filters": (
        "Two filters",
        "The first conv layer cut to 2 channels. Then open the Network page: what can two filters look for?",
    ),
    "shuffled-labels": (
        "Shuffled labels",
        "Every training image gets another's label. Watch training accuracy climb anyway while validation stays "
        "near 10%: it learns the images by heart, not digits.",
    ),
}


def happened(key: str, seen: Outcome) -> str:
    """What the run's numbers show, for the experiment it was."""
    last = f"after {seen.epochs} epoch(s): training accuracy {seen.train_accuracy:.1%}"
    val = f", validation {seen.val_accuracy:.1%}" if seen.val_accuracy is not None else ""
    if key == "lr-too-high" or seen.diverged:
        if seen.diverged:
            return (
                f"It diverged: the training loss ended at {seen.last_loss:,.3g}, where guessing scores "
                f"{math.log(10):.2f}; {last}{val}: no better than guessing."
            )
        return f"It survived this time: loss {seen.first_loss:.2f} to {seen.last_loss:.2f}, {last}{val}."
    if key in ("tiny-data", "shuffled-labels") and seen.gap is not None:
        verdict = (
            "It memorised its training images and learnt nothing that holds for others"
            if seen.memorised
            else "What it learnt partly holds only for its own 1,000 images"
        )
        return f"{verdict}: {last}{val}, a gap of {seen.gap * 100:.1f} points."
    if key == "two-filters":
        return f"{last}{val}. Open the Network page to see what its two filters became."
    return f"{last}{val}. Now draw on the Draw page and see which digits it misreads."


def apply(key: str) -> None:
    """Set every setting to the experiment's (a callback, or before the settings widgets are drawn)."""
    experiment = EXPERIMENTS[key]
    values = experiment.values()
    st.session_state.preset = experiment.preset
    for s in run_settings():
        st.session_state[s.name] = values[s.name]
    st.session_state.experiment = key
    st.query_params["experiment"] = key


def from_address() -> None:
    """A shared link (``?experiment=key``) sets the experiment once per session, before the widgets are drawn."""
    key = st.query_params.get("experiment")
    if key in EXPERIMENTS and st.session_state.get("experiment_from_address") != key:
        st.session_state.experiment_from_address = key
        apply(key)


def panel(job: Job | None) -> None:
    """The experiments, each one click; after a run of one, what it showed."""
    st.header("Experiments for a class")
    if job is not None and job.done and (experiment := matching(job.model_config, job.train_config)):
        seen = outcome([asdict(e) for e in job.epochs()])
        if seen is not None:
            st.info(f"**{WORDS[experiment.key][0]}** ({literal(job.name)}): {happened(experiment.key, seen)}")
    st.caption("Each sets the settings in the sidebar; press Start training. The address then shares it.")
    for column, (key, (title, watch)) in zip(st.columns(len(WORDS)), WORDS.items()):
        with column:
            st.button(title, key=f"experiment-{key}", on_click=apply, args=(key,), width="stretch")
            st.caption(watch)
    chosen = st.session_state.get("experiment")
    if chosen in EXPERIMENTS:
        st.caption(f"Share **{WORDS[chosen][0]}** with this link:")
        here = (st.context.url or "").split("?")[0]  # no address when run without a browser (AppTest)
        st.code(f"{here}?experiment={chosen}", language=None)
