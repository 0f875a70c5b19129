"""Numeric setting ranges: what a setting accepts, checked and put into one sentence from one declaration.

A settings class keeps one table ``{name: SettingRange}``; its validation refuses a value outside with
"<name> must be <SettingRange.text()>, got <value>", so no number a file can hold reaches torch unchecked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SettingRange:
    """The values a numeric setting accepts: ``low`` to ``high`` inclusive (``high_open``: below ``high``).

    Whole numbers when ``low`` is an int. ``items`` (min, max count) makes it a list setting whose every
    item must be in range. ``unit`` and ``hint`` complete the sentence a refusal prints.
    """

    low: float
    high: float
    unit: str = ""
    hint: str = ""
    high_open: bool = False
    items: tuple[int, int] | None = None

    def holds(self, value: Any) -> bool:
        if self.items is not None:
            return (isinstance(value, (list, tuple)) and self.items[0] <= len(value) <= self.items[1]
                    and all(self._holds_one(item) for item in value))
        return self._holds_one(value)

    def _holds_one(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(self.low, int) and not isinstance(value, int):
            return False
        if not math.isfinite(value) or value < self.low:
            return False
        return value < self.high if self.high_open else value <= self.high

    def text(self, value: Any = None) -> str:
        """What the setting must be, e.g. "between 1 and 4096 pixels" ("a whole number …" when ``value`` is not)."""
        unit = f" {self.unit}" if self.unit else ""
        if self.high_open:
            span = f"at least {_number(self.low)} and below {_number(self.high)}{unit}"
        else:
            span = f"between {_number(self.low)} and {_number(self.high)}{unit}"
        whole = isinstance(self.low, int)
        if self.items is not None:
            lowest, highest = self.items
            text = (f"at least {'one' if lowest == 1 else lowest} and at most {_number(highest)} "
                    f"{'whole numbers' if whole else 'numbers'}, each {span}")
        elif whole and isinstance(value, (float, bool)):
            text = f"a whole number {span}"
        else:
            text = span
        return f"{text} ({self.hint})" if self.hint else text


def _number(value: float) -> str:
    """4096, 0.1, 1,000,000,000,000: exact, with thousands separators once they help."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if abs(value) >= 10_000 else f"{value:g}" if isinstance(value, float) else str(value)


def shown_value(value: Any) -> str:
    """A refused value as the user wrote it, shortened: a long list shows its first items and its length."""
    if isinstance(value, (list, tuple)):
        head = ", ".join(shown_value(item) for item in value[:4])
        return f"[{head}{', …' if len(value) > 4 else ''}] ({len(value)} numbers)"
    return repr(value)
