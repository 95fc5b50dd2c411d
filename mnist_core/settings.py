"""Settings declared once: each config field carries its label, help, range, preset values and search range.

``ModelConfig`` and ``TrainConfig`` declare every field with ``setting(...)``; the
command line's flags, the Train page's widgets, the sweep's search space, the run
history's columns and the validation of configs (built by hand, by a flag, by a
sweep or read from a checkpoint) are all derived from those declarations, so a new
setting is one field.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, get_args, get_origin, get_type_hints

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Config = TypeVar("Config", bound="DataclassInstance")


class Interval(NamedTuple):
    """Every value from ``low`` to ``high``: a searched range, or a slider's span."""

    low: float
    high: float


@dataclass(frozen=True)
class Setting:
    """One setting's declaration; ``name``, ``kind`` and ``default`` come from its dataclass field."""

    label: str  # a few words for a widget or a column
    help: str  # a phrase for --help and a widget's tooltip
    low: float | None = None  # the smallest value allowed, or
    above: float | None = None  # a bound the value must be above
    high: float | None = None  # the largest value allowed, or
    below: float | None = None  # a bound the value must be below
    presets: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the value in each preset that changes it
    search: Mapping[str, Interval | tuple] = dataclasses.field(default_factory=dict)  # per preset: range or choices
    log: bool = False  # searched on a log scale
    stops: Interval | tuple = ()  # what a widget offers: a slider's span, or the values to pick from
    zero: str = ""  # what 0 means, when it means something else ("all" images)
    whole: str = ""  # the config's property that counts what 0 amounts to ("all 55,000")
    rare: bool = False  # rarely changed: folded away on the Train page
    name: str = ""  # these three come from the field
    kind: Any = None  # int, float, bool, str or a Literal of the allowed values
    default: Any = None

    @property
    def choices(self) -> tuple:
        """The allowed values of a ``Literal`` setting; empty for any other."""
        return get_args(self.kind) if get_origin(self.kind) is Literal else ()

    @property
    def base(self) -> type:
        """The Python type of the setting's values (a Literal's by its values)."""
        return type(self.choices[0]) if self.choices else self.kind

    def bounds(self) -> str:
        """The range in words, "" if there is none: "between 1 and 128", "in [0, 1)", "at least 0"."""
        lo, hi = _first(self.low, self.above), _first(self.high, self.below)
        if lo is not None and hi is not None:
            if self.above is None and self.below is None:
                return f"between {_number(lo)} and {_number(hi)}"
            opening, closing = "(" if self.above is not None else "[", ")" if self.below is not None else "]"
            return f"in {opening}{_number(lo)}, {_number(hi)}{closing}"
        if lo is not None:
            return f"{'at least' if self.above is None else 'above'} {_number(lo)}"
        if hi is not None:
            return f"{'at most' if self.below is None else 'below'} {_number(hi)}"
        return ""

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting, or None."""
        if self.choices:
            if not any(value == c and type(value) is type(c) for c in self.choices):
                shown = ", ".join(str(c) for c in self.choices)
                return f"{self.name} must be one of {shown}, got {reprlib.repr(value)}"
            return None
        if not _is(value, self.kind):
            return f"{self.name} must be {self.kind.__name__}, not {reprlib.repr(value)}"
        inside = (
            (self.low is None or value >= self.low)
            and (self.above is None or value > self.above)
            and (self.high is None or value <= self.high)
            and (self.below is None or value < self.below)
        )
        return None if inside else f"{self.name} must be {self.bounds()}, got {value}"


def _first(a: float | None, b: float | None) -> float | None:
    return a if a is not None else b


def _is(value: object, kind: type) -> bool:
    """Of the declared type, strictly: a bool is not an int, a float must be finite, an int will do for a float."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    return isinstance(value, kind)


def _number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def setting(default: Any, label: str, help: str, **declaration: Any) -> Any:
    """A dataclass field that declares a setting: its default, label and help, and any ``Setting`` attribute."""
    return dataclasses.field(default=default, metadata={"setting": Setting(label, help, **declaration)})


_declared: dict[type, tuple[Setting, ...]] = {}  # each class's, read once: every config built checks them


def declared(cls: type) -> tuple[Setting, ...]:
    """Every setting ``cls`` declares, in field order, with its name, type and default filled in."""
    if cls not in _declared:
        hints = get_type_hints(cls)
        found = []
        for f in dataclasses.fields(cls):
            if "setting" not in f.metadata:
                raise TypeError(f"{cls.__name__}.{f.name} is not declared with settings.setting(...)")
            found.append(dataclasses.replace(f.metadata["setting"], name=f.name, kind=hints[f.name], default=f.default))
        _declared[cls] = tuple(found)
    return _declared[cls]


def check(config: object) -> None:
    """Raise ValueError for the first setting of ``config`` whose value its declaration refuses."""
    for s in declared(type(config)):
        if problem := s.problem(getattr(config, s.name)):
            raise ValueError(problem)


def preset(cls: type[Config], name: str) -> Config:
    """``cls`` as the preset ``name`` sets it: each setting's value for that preset, else its default."""
    return cls(**{s.name: s.presets[name] for s in declared(cls) if name in s.presets})


def apply(config: Config, values: Mapping[str, Any]) -> Config:
    """``config`` with those of ``values`` that are its settings changed (the others belong to another config)."""
    return dataclasses.replace(config, **{s.name: values[s.name] for s in declared(type(config)) if s.name in values})
