"""A design file's settings sections ("training", "data") and the classes that declare them (engine.schema).

The CLI builds its flags from these, a design file's sections are checked against them when it is read,
and the README's settings table and ``--data`` table are written from them and from the source registry
(``python -m engine.settings README.md`` rewrites both there; without a file it prints them).
"""
from __future__ import annotations

from typing import Any

from engine.data.config import DataConfig
from engine.schema import markdown_table
from engine.training.config import TrainConfig

SECTIONS: dict[str, type] = {"training": TrainConfig, "data": DataConfig}
README_BEGIN = "<!-- settings table: written by `python -m engine.settings`, do not edit by hand -->"
README_END = "<!-- end of settings table -->"
SOURCES_BEGIN = "<!-- data sources table: written by `python -m engine.settings`, do not edit by hand -->"
SOURCES_END = "<!-- end of data sources table -->"


def check_sections(design: dict[str, Any]) -> None:
    """Refuse a design whose "training" or "data" section holds a value its declaration does not accept (the
    section's error, one sentence): a file's value is never clamped to fit."""
    for section, cls in SECTIONS.items():
        if section in design:
            cls.from_dict(design[section])  # type: ignore[attr-defined]  # each settings class has from_dict


def settings_table() -> str:
    """The README's settings table, between its markers."""
    return f"{README_BEGIN}\n{markdown_table(SECTIONS)}{README_END}\n"


def sources_table() -> str:
    """The README's ``--data`` table, between its markers: every registered source (engine.data.sources)."""
    from engine.data.config import data_arg_forms
    from engine.data.sources import SOURCES

    rows = ["| `--data` | What it loads |", "|---|---|"]
    rows += [f"| `{form}` | {source.help} |" for form, source in zip(data_arg_forms(), SOURCES.values(), strict=True)]
    return f"{SOURCES_BEGIN}\n" + "\n".join(rows) + f"\n{SOURCES_END}\n"


def with_tables(readme: str) -> str:
    """``readme`` with the text between each pair of markers replaced by the current table."""
    for begin, end, table in ((README_BEGIN, README_END, settings_table()),
                              (SOURCES_BEGIN, SOURCES_END, sources_table())):
        start, stop = readme.index(begin), readme.index(end) + len(end) + 1
        readme = readme[:start] + table + readme[stop:]
    return readme


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
        path.write_text(with_tables(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(settings_table() + "\n" + sources_table(), end="")
