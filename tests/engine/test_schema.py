"""One declaration per setting feeds every view of it: the engine's checks, the CLI's flags, design files and the
README (the window's rows: tests/gui/test_settings_schema.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main, make_parser
from engine.errors import DataError, LayerStudioError, SpecError, TrainingError
from engine.schema import settings_of
from engine.settings import SECTIONS, settings_table, sources_table
from engine.templates import load_design
from engine.train_command import layered_settings

README = Path(__file__).resolve().parents[2] / "README.md"
ERRORS = {"training": TrainingError, "data": DataError}
ALL = [(section, s) for section, cls in SECTIONS.items() for s in settings_of(cls)]
NUMERIC = [(section, s) for section, s in ALL if s.type in (int, float)]
INT32 = 2**31 - 1


def ids(item) -> str:
    return f"{item[0]}.{item[1].name}" if isinstance(item, tuple) else str(item)


def outside(s) -> list:
    """Values just past each end of a numeric setting's range."""
    step = 1 if s.type is int else max(abs(s.high), abs(s.low), 1.0) * 1e-6
    return [s.low - step, s.high + step]


@pytest.mark.parametrize("item", ALL, ids=ids)
def test_every_declaration_is_complete_and_its_default_is_accepted(item):
    section, s = item
    assert s.label and s.help, "every setting has a label and a one-line help"
    assert s.check(s.default) == s.default or list(s.check(s.default)) == list(s.default)
    if s.type in (int, float, list):
        assert s.low is not None and s.high is not None and s.low <= s.high
    if s.type is int:
        assert -INT32 <= s.low and s.high <= INT32, "a whole-number range the window's spin box can hold"


@pytest.mark.parametrize("item", NUMERIC, ids=ids)
def test_a_file_value_outside_the_range_is_refused_never_clamped(item):
    section, s = item
    cls = SECTIONS[section]
    for edge in (s.low, s.high):                       # both ends belong to the range
        assert getattr(cls.from_dict({s.name: edge}), s.name) == edge
    for bad in outside(s):
        with pytest.raises(ERRORS[section]) as refused:
            cls.from_dict({s.name: bad})
        message = str(refused.value)
        assert message.startswith(f"The {section} setting '{s.name}' ({s.label}) must be ")
        assert s.range_text() in message and message.endswith(".")


@pytest.mark.parametrize("item", [(sec, s) for sec, s in ALL if s.cli_flag], ids=ids)
def test_every_flag_is_declared_reads_into_its_section_and_says_its_range(item):
    section, s = item
    train = next(a for a in make_parser()._actions if a.dest == "command").choices["train"]
    action = next(a for a in train._actions if s.cli_flag in a.option_strings)
    assert s.help in action.help.replace("%%", "%")
    if s.type in (int, float):
        assert s.range_text() in action.help
    value = s.high if s.type in (int, float) else s.values()[-1] if s.choices else True if s.type is bool else None
    if value is None:
        return
    text = [] if s.type is bool else [str(value)]
    training, data = layered_settings(make_parser().parse_args(["train", "lenet", s.cli_flag, *text]), {})
    assert {"training": training, "data": data}[section][s.name] == value


def test_every_setting_but_the_source_and_its_folder_has_a_flag():
    assert {f"{sec}.{s.name}" for sec, s in ALL if not s.cli_flag} == {"data.source", "data.root"}
    flags = [s.cli_flag for _sec, s in ALL if s.cli_flag]
    assert len(flags) == len(set(flags))


@pytest.mark.parametrize("item", NUMERIC[::3], ids=ids)
def test_a_flag_outside_the_range_is_one_line_naming_the_flag(capsys, item):
    section, s = item
    bad = outside(s)[1]
    assert main(["train", "lenet", s.cli_flag, str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {s.cli_flag} must be ") and s.range_text() in err and err.count("\n") == 1


def test_a_design_file_with_a_value_outside_its_range_is_refused_by_name(tmp_path):
    spec, design = load_design("lenet")
    for section, name, value in (("training", "lr", 1e9), ("data", "val_fraction", 0.95), ("training", "seed", 2**40)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**design, section: {**design.get(section, {}), name: value}}), encoding="utf-8")
        with pytest.raises(SpecError, match=rf"^{name}\.json: The {section} setting '{name}' .* got "):
            load_design(path)


def test_every_template_holds_only_values_its_declarations_accept():
    from resources import TEMPLATES

    for path in sorted(TEMPLATES.glob("*.json")):
        load_design(path)  # raises for any value outside its declaration


def test_the_readme_settings_and_sources_tables_are_the_ones_the_declarations_write():
    text = README.read_text(encoding="utf-8")
    assert settings_table() in text, "README out of date: run python -m engine.settings README.md"
    assert sources_table() in text, "README out of date: run python -m engine.settings README.md"
    for section, s in ALL:
        assert f"| `{section}.{s.name}` | {s.label} |" in text


def test_log_scale_settings_are_the_ones_a_search_draws_so():
    logged = {f"{sec}.{s.name}" for sec, s in ALL if s.log}
    assert {"training.lr", "training.weight_decay", "training.batch_size"} <= logged
    for _section, s in ALL:
        if s.log:  # a log scale needs positive values; a float may also take 0 (off), drawn apart by a search
            assert s.type in (int, float) and (s.low > 0 or s.type is float and s.low == 0)


def test_a_value_of_the_wrong_type_is_refused_with_what_the_setting_accepts():
    for section, s in ALL:
        wrong = "text" if s.type is not str else 5
        with pytest.raises(LayerStudioError, match=rf"'{s.name}' .* must be .*, got "):
            SECTIONS[section].from_dict({s.name: wrong})
