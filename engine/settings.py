"""A design file's settings sections ("training", "data") and the classes that declare them (engine.schema).

The CLI builds its flags from these, a design file's sections are checked against them when it is read,
and the README's settings table is written from them (``python -m engine.settings README.md`` rewrites it
there; without a file it prints it).
"""
from __future__ import annotations

from typing import Any

from engine.data.config import DataConfig
from engine.schema import markdown_table
from engine.training.config import TrainConfig

SECTIONS: dict[str, type] = {"training": TrainConfig, "data": DataConfig}
README_BEGIN = "<!-- settings table: written by `python -m engine.settings`, do not edit by hand -->"
README_END = "<!-- end of settings table -->"


def check_sections(design: dict[str, Any]) -> None:
    """Refuse a design whose "training" or "data" section holds a value its declaration does not accept (the
    section's error, one sentence): a file's value is never clamped to fit."""
    for section, cls in SECTIONS.items():
        if section in design:
            cls.from_dict(design[section])  # type: ignore[attr-defined]  # each settings class has from_dict


def settings_table() -> str:
    """The README's settings table, between its markers."""
    return f"{README_BEGIN}\n{markdown_table(SECTIONS)}{README_END}\n"


def with_settings_table(readme: str) -> str:
    """``readme`` with the text between the markers replaced by the current table."""
    start, end = readme.index(README_BEGIN), readme.index(README_END) + len(README_END) + 1
    return readme[:start] + settings_table() + readme[end:]


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
        path.write_text(with_settings_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(settings_table(), end="")
