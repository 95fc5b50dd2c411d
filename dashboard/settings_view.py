"""Settings as people see them: the Train page's widgets, and a run's settings in words on every page.

Each widget is made from its setting's declaration (``mnist_core.settings``): its label,
help, range and the values it offers, so a new setting appears here without an edit.
A value that differs from the chosen preset's is marked, and named above the widgets.
Wherever a run's settings are shown (Home, Compare, the run history), ``show`` words
each value from the same declaration: "on", "all 55,000", "0.0035", never "True", "0"
or "0.00348116973989".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from mnist_core import settings
from mnist_core.model import ModelConfig
from mnist_core.settings import Interval, Setting
from mnist_core.train import PRESETS, TrainConfig, preset_values, run_settings

CHANGED = ":orange[●]"


def show(s: Setting, value: Any, config: object | None = None) -> str:
    """A value as a person reads it: on/off, 1,000, 0.0035 (two significant digits), or the word for 0 ("all"),
    with what 0 amounts to when the run's ``config`` is known ("all 55,000")."""
    if value is None:  # a damaged history line
        return ""
    if s.base is bool:
        return "on" if value else "off"
    if s.zero and value == 0:
        return f"{s.zero} {getattr(config, s.whole):,}" if config is not None and s.whole else s.zero
    return f"{value:,}" if s.base is int else f"{value:.2g}" if s.base is float else str(value)


def shown(model: ModelConfig, train: TrainConfig) -> dict[str, str]:
    """Every setting of a run, by name, as ``show`` words it."""
    return {s.name: show(s, getattr(c, s.name), c) for c in (train, model) for s in settings.declared(type(c))}


def line(config: Any, rare: bool = False) -> str:
    """A config's often changed settings (or all of them) on one line: "Epochs 8 · Learning rate 0.003 · …"."""
    return " · ".join(
        f"{s.label} {show(s, getattr(config, s.name), config)}"
        for s in settings.declared(type(config))
        if rare or not s.rare
    )


def spec(s: Setting, preset: str, value: Any) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The widget for a setting at ``value``: the Streamlit function and its arguments."""
    preset_value = preset_values(preset)[s.name]
    bounds = f" ({s.bounds()})" if s.bounds() else ""
    common = {
        "label": f"{s.label} {CHANGED}" if value != preset_value else s.label,
        "key": s.name,
        "help": f"{s.help[0].upper()}{s.help[1:]}{bounds}. {preset.title()} preset: {show(s, preset_value)}.",
        "persist_state": "session",
    }
    everywhere = {preset_values(name)[s.name] for name in PRESETS}  # a value a widget cannot show would change
    if s.base is bool:
        return st.toggle, common
    if s.choices:
        return st.selectbox, {**common, "options": s.choices}
    if isinstance(s.stops, Interval):
        low, high = min(s.stops.low, *everywhere), max(s.stops.high, *everywhere)
        return st.slider, {**common, "min_value": s.base(low), "max_value": s.base(high)}
    if s.stops:
        # 0 meaning "all" is the most of all, so it comes last
        options = sorted({*s.stops, *everywhere, value}, key=lambda v: (bool(s.zero) and v == 0, v))
        return st.select_slider, {**common, "options": options, "format_func": lambda v: show(s, v)}
    if s.base is str:
        return st.text_input, common
    # A number to type: its closed ends bound it, an open one (label smoothing below 1) is left to the config's check.
    low, high = (None if end is None else s.base(end) for end in (s.low, s.high))
    return st.number_input, {
        **common,
        "min_value": low,
        "max_value": high,
        **({"format": "%g"} if s.base is float else {}),
    }


def fill(only_missing: bool = False) -> None:
    """Put the chosen preset's values in the widgets: all of them, or those not yet set (a first visit)."""
    for name, value in preset_values(st.session_state.preset).items():
        if not (only_missing and name in st.session_state):
            st.session_state[name] = value


def form(preset: str) -> tuple[ModelConfig, TrainConfig, str]:
    """Draw every setting's widget; return the configs they make, or the preset's and why the values were refused."""
    fill(only_missing=True)
    everything, start = run_settings(), preset_values(preset)
    changed = [s.label for s in everything if st.session_state[s.name] != start[s.name]]
    if changed:
        st.caption(f"{CHANGED} changed from the {preset.title()} preset: {', '.join(changed)}")
        st.button(f"Reset to {preset.title()}", on_click=fill, type="tertiary", icon=":material/undo:")
    for s in everything:
        if not s.rare:
            draw(s, preset)
    with st.expander("More settings"):
        for s in everything:
            if s.rare:
                draw(s, preset)
    values = {s.name: st.session_state[s.name] for s in everything}
    model, train = PRESETS[preset]
    try:
        return settings.apply(model, values), settings.apply(train, values), ""
    except ValueError as exc:
        return model, train, str(exc)


def draw(s: Setting, preset: str) -> None:
    widget, arguments = spec(s, preset, st.session_state[s.name])
    widget(**arguments)


def history_columns() -> dict[str, Any]:
    """The run history's setting columns, labelled and explained as their settings are."""
    return {s.name: st.column_config.TextColumn(s.label[0].lower() + s.label[1:], help=s.help) for s in run_settings()}


def worded(values: dict) -> dict:
    """``values`` (setting name -> value, of one run: a history row, a sweep trial's parameters) with each setting's
    value as ``show`` words it. Values that no longer make a config (a damaged line, an older version's) are worded
    without one: "all" rather than "all 55,000"."""

    def config(start: Any) -> Any:
        try:
            return settings.apply(start, values)
        except (TypeError, ValueError):
            return None

    configs = [c for c in map(config, PRESETS["default"]) if c is not None]
    return {
        **values,
        **{
            s.name: show(s, values[s.name], next((c for c in configs if hasattr(c, s.name)), None))
            for s in run_settings()
            if s.name in values
        },
    }


def history_words(rows: list[dict]) -> list[dict]:
    """The run history's rows (``runs.history_rows``), each setting's value worded (``worded``)."""
    return [worded(row) for row in rows]
