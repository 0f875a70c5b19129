"""The Training tab's Dataset list and the rows each source shows come from the data source registry: the same
sources as the command line's ``--data``, and a source registered later appears in both with no other edit
(and loads through the window). The engine's side: tests/engine/test_data_sources.py."""
from __future__ import annotations

import pytest

from engine.data.sources import SOURCES, DataSource, register
from tests.engine.test_data_sources import cli_data_names
from tests.gui.test_status_lines import load_data
from tests.gui.test_training import make_document

# Rows every source shows; the others depend on what the registry says of the chosen source.
EVERY_SOURCE = {"source", "task", "val_fraction", "limit", "normalize", "seed"}
IMAGE_ROWS = {"image_size", "augment_crop_padding", "augment_hflip"}


def dataset_list(ui) -> list[str]:
    combo = ui.panel.data_form.widget("source")
    return [combo.itemData(index) for index in range(combo.count())]


def choose(ui, name: str) -> set[str]:
    """Pick ``name`` in the Dataset list as a person would; the keys of the rows then shown."""
    form = ui.panel.data_form
    combo = form.widget("source")
    combo.setCurrentIndex(combo.findData(name))
    assert ui.doc.extras["data"]["source"] == name
    return {f.name for f, widget in form.widgets if widget.isVisibleTo(form)}


def rows_for(source: DataSource) -> set[str]:
    """The rows the registry's entry calls for."""
    return (EVERY_SOURCE | ({"root"} if source.root else set()) | ({"download"} if source.download else set())
            | (IMAGE_ROWS if source.images else set()) | set(source.own_settings))


def test_the_dataset_list_is_the_registry_and_the_command_lines_sources(area):
    ui = area()
    combo = ui.panel.data_form.widget("source")
    assert dataset_list(ui) == list(SOURCES) == cli_data_names()
    assert [combo.itemText(index) for index in range(combo.count())] == [s.label for s in SOURCES.values()]


@pytest.mark.parametrize("name", list(SOURCES))
def test_each_source_shows_the_rows_its_entry_calls_for(area, name):
    ui = area()
    source = SOURCES[name]
    assert choose(ui, name) == rows_for(source)
    if source.root:       # the one root row shown picks what the entry says ROOT names
        form = ui.panel.data_form
        assert form.widget("root").pick_file == (source.root == "file")


def test_a_registered_source_appears_in_the_window_and_the_command_line_and_loads(area, qtbot):
    synthetic = SOURCES["synthetic-regression"]
    source = register(DataSource("tiny-regression", "Tiny regression", "Tiny regression (test)", synthetic.load,
                                 own_settings=("samples",)))
    try:
        ui = area(make_document(data={"limit": 0}))
        assert dataset_list(ui)[-1] == "tiny-regression" and cli_data_names()[-1] == "tiny-regression"
        assert choose(ui, "tiny-regression") == rows_for(source) == EVERY_SOURCE | {"samples"}
        ui.panel.data_form.widget("samples").setValue(40)
        load_data(ui, qtbot)
        assert ui.panel.data_section.summary.text().startswith("Tiny regression: 32 train / 8 val / 0 test")
    finally:
        del SOURCES["tiny-regression"]
    assert "tiny-regression" not in dataset_list(area()) and "tiny-regression" not in cli_data_names()
