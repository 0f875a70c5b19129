"""One declaration per setting, read by every view of it: the engine's checks, the Training tab, the CLI, the README.

A settings class (``TrainConfig``, ``DataConfig``) is a dataclass whose every field is declared with
``setting(default, label, ...)``: type (from the default), range or choices, unit, label, one-line help,
when it applies (``when=(("optimizer", ("sgd",)),)``), the window's section, whether a search draws it
on a log scale and the range a search draws it from unless told otherwise (engine.search).
``settings_of(cls)`` lists them in field order, so

- ``check_settings`` refuses a file's value outside the declared range with a sentence (never clamps it),
- the Training tab builds a widget per setting (gui.training.settings),
- the CLI builds a flag per setting (``layerstudio train --help``; engine.train_command),
- ``markdown_table`` writes the README's settings table (a test keeps the README equal to it),

and a range, a default or a label is changed in one place only. No torch import here.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

SETTING = "layerstudio.setting"  # the dataclass field metadata key holding a field's Setting


@dataclass(frozen=True)
class When:
    """When a setting matters: a test of the other settings' values, and the same in words (for the README)."""

    test: Callable[[Mapping[str, Any]], bool]
    words: Callable[[], str]


def only_when(name: str, *values: Any) -> When:
    """The setting matters when setting ``name`` holds one of ``values`` (``True``: when it is on)."""
    words = f"{name} is on" if values == (True,) else f"{name} is {either(values)}"
    return When(lambda settings: settings.get(name) in values, lambda: words)


ChoiceList = tuple[tuple[Any, str], ...]
Choices = ChoiceList | Callable[[], ChoiceList]


@dataclass(frozen=True)
class Setting:
    """What one setting is and accepts. ``name`` and ``default`` come from its dataclass field."""

    label: str
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: Choices = ()              # (value, label shown in the window) pairs, or a function giving them
    unit: str = ""
    hint: str = ""                     # completes a refusal and the README's range ("0 uses every sample")
    when: When | None = None           # when it matters (momentum only for SGD and RMSprop); None: always
    log: bool = False                  # a search draws it on a log scale; the window's arrows multiply by 10
    search: tuple[float, float] | None = None  # the range a search draws it from by default (engine.search)
    section: str = ""                  # the heading the window groups it under (set on a section's first setting)
    flag: str | None = None            # the CLI flag; None: --name-with-dashes, "": no flag of its own
    items: tuple[int, int] | None = None        # a list of numbers: (fewest, most) items, each in range
    pattern: str = ""                  # a text setting's accepted form (a regular expression it must match whole)
    metavar: str = ""                  # the CLI's name for the value (``--lr RATE``)
    widget: str = ""                   # a special widget: "path", "device", "tensorboard" (else from the type)
    name: str = ""
    default: Any = None

    # -- what it is
    @property
    def type(self) -> type:
        """bool, int, float, str or list (a list of numbers)."""
        return list if self.items is not None else type(self.default)

    @property
    def cli_flag(self) -> str:
        return "--" + self.name.replace("_", "-") if self.flag is None else self.flag

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether the setting matters for ``values`` (momentum only for SGD and RMSprop, ...)."""
        return self.when is None or self.when.test(values)

    def options(self) -> tuple[tuple[Any, str], ...]:
        """The (value, label) choices, read now (a registry's choices follow it)."""
        return self.choices() if callable(self.choices) else self.choices

    def choice_label(self, value: Any) -> str:
        return next((label for choice, label in self.options() if choice == value), str(value))

    # -- what it accepts
    def check(self, value: Any) -> Any:
        """``value`` as the setting holds it (an int where a float is declared becomes a float), or
        ValueError whose text says what the setting accepts ("at least 1 and at most 4,096 pixels")."""
        kind = self.type
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError("true or false")
            return value
        if kind is str:
            if not isinstance(value, str):
                raise ValueError("a text" if not self.choices else self.accepts())
            if (self.choices and value not in self.values()) or (
                    self.pattern and not re.fullmatch(self.pattern, value)):
                raise ValueError(self.accepts())
            return value
        if self.items is not None:  # a list of numbers
            low, high = self.items
            if not isinstance(value, (list, tuple)) or not low <= len(value) <= high or not all(
                    self._in_range(item) for item in value):
                raise ValueError(self.accepts())
            return [float(item) for item in value]
        if not self._in_range(value):
            raise ValueError(self.accepts())
        return float(value) if kind is float else value

    def _in_range(self, value: Any) -> bool:
        whole = self.type is int
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def values(self) -> tuple:
        return tuple(choice for choice, _label in self.options())

    def range_text(self) -> str:
        """The range in words: "between 1 and 4,096 pixels" ('' for none); every range includes its ends, so
        the window's fields hold exactly what a file may hold."""
        if self.low is None or self.high is None:
            return ""
        unit = f" {self.unit}" if self.unit else ""
        return f"between {number(self.low)} and {number(self.high)}{unit}"

    def accepts(self) -> str:
        """What a refusal says the setting must be."""
        if self.choices:
            return "one of " + ", ".join(str(value) for value in self.values())
        if self.type is str:
            return self.hint or "a text"
        span = self.range_text()
        if self.items is not None:  # a list of numbers
            fewest, most = self.items
            text = f"a list of {'one' if fewest == 1 else fewest} to {number(most)} numbers, each {span}"
        elif self.type is int:
            text = f"a whole number {span}".rstrip()
        else:
            text = f"a number {span}".rstrip()
        return f"{text} ({self.hint})" if self.hint else text

    def parse_text(self, text: str) -> Any:
        """A value typed as text (a CLI flag, a list field): parsed by type, then checked; ValueError says why."""
        kind = self.type
        try:
            if kind is int:
                value: Any = int(text)
            elif kind is float:
                value = float(text)
            elif kind is list:
                value = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
            elif kind is bool:
                value = {"true": True, "on": True, "yes": True, "1": True,
                         "false": False, "off": False, "no": False, "0": False}[text.strip().lower()]
            else:
                value = text
        except (ValueError, KeyError):
            raise ValueError(self.accepts()) from None
        return self.check(value)


def setting(default: Any, label: str, **declared: Any) -> Any:
    """A dataclass field declaring a setting: its default, its label and the rest of ``Setting``."""
    holder = Setting(label=label, default=default, **declared)
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata={SETTING: holder})
    return field(default=default, metadata={SETTING: holder})


@cache
def settings_of(cls: type) -> tuple[Setting, ...]:
    """The settings a settings dataclass declares, in field order, each knowing its name."""
    return tuple(dataclasses.replace(f.metadata[SETTING], name=f.name) for f in dataclasses.fields(cls))


def setting_named(cls: type, name: str) -> Setting:
    return next(s for s in settings_of(cls) if s.name == name)


def check_settings(cls: type, data: Any, section: str, error: Callable[[str], Exception]) -> dict:
    """``data`` (a design file's section, or part of it) checked against ``cls``'s declarations: the checked
    values by name, or ``error(sentence)`` naming the first unknown or refused setting."""
    if not isinstance(data, dict):
        raise error(f"The {section} settings must be a JSON object, got {type(data).__name__}.")
    declared = {s.name: s for s in settings_of(cls)}
    checked = {}
    for name, value in data.items():
        if name not in declared:
            raise error(f"Unknown {section} setting {name!r}: remove it (known settings: {', '.join(declared)}).")
        try:
            checked[name] = declared[name].check(value)
        except ValueError as exc:
            raise error(refusal(declared[name], section, value, str(exc))) from None
    return checked


def settings_dict(config: Any) -> dict:
    """A settings dataclass instance as plain JSON data: each setting by name, a list of numbers as a list.
    (Not ``dataclasses.asdict``, which deep-copies every value: the window turns settings into keys dozens of
    times a run, and every value here is a number, a string or a tuple of numbers.)"""
    values = {}
    for declared in settings_of(type(config)):  # type: ignore[arg-type]  # a class is hashable; mypy disagrees
        value = getattr(config, declared.name)
        values[declared.name] = list(value) if isinstance(value, (tuple, list)) else value
    return values


def check_fields(config: Any, section: str, error: Callable[[str], Exception]) -> None:
    """Check every field of a settings dataclass instance against its declaration, keeping each value as the
    setting holds it (an int given for a float becomes a float, a list a tuple); ``error(sentence)`` names
    the first value its declaration refuses."""
    for declared in settings_of(type(config)):  # type: ignore[arg-type]  # a class is hashable; mypy disagrees
        value = getattr(config, declared.name)
        try:
            checked = declared.check(value)
        except ValueError as exc:
            raise error(refusal(declared, section, value, str(exc))) from None
        # object.__setattr__: the frozen dataclasses' own idiom, so a frozen settings class is kept the same way
        object.__setattr__(config, declared.name, tuple(checked) if isinstance(checked, list) else checked)


def refusal(s: Setting, section: str, value: Any, accepts: str) -> str:
    """The sentence refusing ``value`` for ``s``: "The training setting 'lr' (Learning rate) must be …, got …"."""
    return f"The {section} setting {s.name!r} ({s.label}) must be {accepts}, got {shown_value(value)}."


def either(values) -> str:
    """"a", "a or b", "a, b or c"."""
    words = [str(value) for value in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def number(value: float | None) -> str:
    """4096, 0.1, 1e-08, 1,000,000,000,000: exact, with thousands separators once they help."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return f"{value:g}"


def shown_value(value: Any) -> str:
    """A refused value as the user wrote it, shortened: a long list shows its first items and its length."""
    if isinstance(value, (list, tuple)):
        head = ", ".join(shown_value(item) for item in value[:4])
        return f"[{head}{', …' if len(value) > 4 else ''}] ({len(value)} {'number' if len(value) == 1 else 'numbers'})"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def when_text(s: Setting) -> str:
    """When the setting applies, in words ("optimizer is sgd or rmsprop"; '' when always)."""
    return s.when.words() if s.when is not None else ""


def markdown_table(sections: Mapping[str, type]) -> str:
    """The README's settings table: every setting of every section, one row each (from the declarations)."""
    rows = ["| Setting | In the window | Flag | Default | Accepts | Applies when | What it does |",
            "|---|---|---|---|---|---|---|"]
    for section, cls in sections.items():
        for s in settings_of(cls):
            if s.choices:
                accepts = ", ".join(f"`{value}`" for value in s.values())
            elif s.type is bool:
                accepts = "on / off"
            else:
                accepts = s.accepts() if s.type in (int, float, list) else "text"
            default = s.default if not isinstance(s.default, (list, tuple)) else ", ".join(map(str, s.default))
            default = {True: "on", False: "off"}.get(default, default) if isinstance(default, bool) else default
            flag = f"`{s.cli_flag}`" if s.cli_flag else "(see `--data`)"
            cells = [f"`{section}.{s.name}`", s.label, flag, f"`{default}`" if default != "" else "(empty)",
                     accepts + (" (log scale)" if s.log else ""), when_text(s) or "always", s.help]
            rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"
