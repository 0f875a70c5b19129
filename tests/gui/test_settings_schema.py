"""The Training tab's rows are the settings' declarations (engine.schema): same settings, labels, ranges, choices
and 'when it matters'; a file's value is shown as it is, and one outside its range keeps the file from opening."""
from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QSpinBox

from engine.data.sources import SOURCES
from engine.schema import settings_of
from engine.settings import SECTIONS
from engine.templates import load_design
from gui.training.controller import TrainingController
from gui.training.panel import TrainingPanel
from gui.widgets import FloatSpinBox
from tests.gui.test_training import make_document


@pytest.fixture
def panel(qtbot):
    made = TrainingPanel(TrainingController(make_document(), warm_up=False))
    qtbot.addWidget(made)
    return made


def forms(panel):
    return {"training": panel.train_form, "data": panel.data_form}


def test_each_form_has_one_row_per_declared_setting_with_its_label_range_and_choices(panel):
    for section, form in forms(panel).items():
        declared = settings_of(SECTIONS[section])
        assert [s.name for s, _widget in form.widgets] == [s.name for s in declared]
        for s, widget in form.widgets:
            if s.widget != "path":
                assert form.labels[s.name].text() == s.label
            if s.widget == "device":
                assert isinstance(widget, QComboBox) and widget.findData("cpu") >= 0
            elif s.choices:
                assert [widget.itemData(i) for i in range(widget.count())] == list(s.values())
                assert [widget.itemText(i) for i in range(widget.count())] == [label for _v, label in s.options()]
            elif s.type is int:
                assert isinstance(widget, QSpinBox) and (widget.minimum(), widget.maximum()) == (s.low, s.high)
            elif s.type is float:
                assert isinstance(widget, FloatSpinBox) and (widget.minimum(), widget.maximum()) == (s.low, s.high)
                assert widget.log_steps == s.log
            elif s.type is bool:
                assert isinstance(widget, QCheckBox)
            assert s.help in widget.toolTip()


def test_a_files_values_at_the_ends_of_their_ranges_show_as_they_are(panel):
    for section, form in forms(panel).items():
        numeric = [s for s in settings_of(SECTIONS[section]) if s.type in (int, float)]
        for end in ("low", "high"):
            values = {s.name: getattr(s, end) for s in numeric}
            panel.document.set_extra(section, values)
            for s in numeric:
                assert form.widget(s.name).value() == getattr(s, end), (s.name, end)  # not clamped
                assert form.values()[s.name] == getattr(s, end)
    assert panel.settings_problems() == []


def test_rows_show_exactly_when_their_declaration_says_the_setting_matters(panel):
    form = panel.train_form
    combo = form.widget("optimizer")
    for index in range(combo.count()):
        combo.setCurrentIndex(index)
        values = form.values()
        for s, widget in form.widgets:
            assert form.layout_.isRowVisible(widget) == s.applies(values), (values["optimizer"], s.name)
    data = panel.data_form
    source = data.widget("source")
    for name in SOURCES:
        source.setCurrentIndex(source.findData(name))
        for s, widget in data.widgets:
            assert data.layout_.isRowVisible(widget) == s.applies(data.values()), (name, s.name)
        if SOURCES[name].root:
            assert data.labels["root"].text() == SOURCES[name].root_title


def test_a_design_with_a_value_outside_its_range_is_refused_with_a_sentence(window, message_boxes, tmp_path):
    _spec, design = load_design("lenet")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**design, "training": {"lr": 5e7}}), encoding="utf-8")
    before = window.document.spec
    assert not window.open_file(bad)
    assert window.document.spec is before                                   # the current design stays
    assert len(message_boxes.texts) == 1
    text = message_boxes.texts[0]
    assert "Cannot open bad.json" in text
    assert "'lr' (Learning rate) must be a number between 1e-08 and 1,000,000" in text


def test_settings_read_again_are_copies_and_a_bad_section_fails_each_time():
    """parsed_settings remembers a section's reading (the Training tab asks many times per event), but each caller
    gets its own config, and a bad section raises its sentence every time it is read."""
    from engine.errors import TrainingError
    from engine.training import TrainConfig
    from gui.training.settings import parsed_settings

    first = parsed_settings(TrainConfig, {"lr": 0.01, "epochs": 3})
    first.epochs = 99
    again = parsed_settings(TrainConfig, {"epochs": 3, "lr": 0.01})  # the same section, keys in another order
    assert (again.epochs, again.lr) == (3, 0.01) and again is not first
    assert parsed_settings(TrainConfig, {"lr": 0.02, "epochs": 3}).lr == 0.02  # another section: read anew
    for _ in range(2):
        with pytest.raises(TrainingError, match="epochs"):
            parsed_settings(TrainConfig, {"epochs": 0})
