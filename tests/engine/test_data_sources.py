"""The data source registry is the one list of sources: the settings check, ``--data`` (its parsing and the
help of the real parser) and loading all read it, a source registered later is taken up by all of them, and
the parts the window and the command line read before torch loads import no torch.
(The window's side: tests/gui/test_data_sources.py.)"""
from __future__ import annotations

import pytest

import engine.data
from engine.cli import main, make_parser
from engine.data import DataConfig, load_data, parse_data_arg
from engine.data.sources import SOURCES, DataSource, register
from engine.errors import DataError
from engine.train_command import layered_settings
from tests.engine.test_engine_is_qt_free import modules_loaded_by


def train_parser():
    return next(a for a in make_parser()._actions if a.dest == "command").choices["train"]


def data_forms() -> list[str]:
    """The ``--data`` forms `layerstudio train --help` lists (``mnist[:ROOT]``, ``csv:PATH``, ...)."""
    action = next(a for a in train_parser()._actions if a.dest == "data")
    return action.help.split(" (default")[0].split(" | ")


def cli_data_names() -> list[str]:
    """The sources the real command line accepts: each form of its help, given to `layerstudio train`."""
    names = []
    for form in data_forms():
        arg = form.replace("[:ROOT]", "").replace(":PATH", ":/some/where")
        _training, data = layered_settings(make_parser().parse_args(["train", "lenet", "--data", arg]), {})
        names.append(data["source"])
    return names


def test_the_command_line_offers_exactly_the_registered_sources_in_their_order():
    assert cli_data_names() == list(SOURCES)
    for name, source in SOURCES.items():
        assert DataConfig(source=name).validate() is None
        if source.root:
            assert parse_data_arg(f"{name}:/data/x") == DataConfig(source=name, root="/data/x")
        else:
            with pytest.raises(DataError, match=f"takes no path: write just {name}"):
                parse_data_arg(f"{name}:/data/x")
        if source.needs_root:
            with pytest.raises(DataError, match=f"needs a path: write {name}:PATH"):
                parse_data_arg(name)
    download = next(a for a in train_parser()._actions if a.dest == "data.download")
    downloadable = [name for name, source in SOURCES.items() if source.download is not None]
    assert downloadable == ["mnist", "fashion-mnist", "cifar10"]
    assert download.help.endswith("used when source is mnist, fashion-mnist or cifar10")


def test_a_name_the_registry_lacks_is_refused_everywhere_with_the_registered_forms():
    with pytest.raises(DataError) as refused:
        parse_data_arg("imagenet")
    assert str(refused.value) == f"Unknown --data 'imagenet': use one of {', '.join(data_forms())}."
    with pytest.raises(DataError, match="The data setting 'source' \\(Dataset\\) must be one of mnist-sample, mnist,"):
        DataConfig(source="imagenet").validate()


@pytest.fixture
def tiny_source():
    """A synthetic-like source registered for one test (its loader the registry's synthetic one), then removed."""
    synthetic = SOURCES["synthetic-regression"]
    source = register(DataSource("tiny-regression", "Tiny regression", "Tiny regression (test)", synthetic.load,
                                 own_settings=synthetic.own_settings))
    yield source
    del SOURCES[source.name]


def test_a_registered_source_is_checked_parsed_offered_loaded_and_trained_with_no_other_edit(tiny_source, capsys):
    assert DataConfig.from_dict({"source": "tiny-regression", "samples": 50}).source == "tiny-regression"
    assert parse_data_arg("tiny-regression") == DataConfig(source="tiny-regression")
    assert cli_data_names() == [*[n for n in SOURCES if n != "tiny-regression"], "tiny-regression"]
    bundle = load_data(DataConfig(source="tiny-regression", samples=50))
    assert bundle.summary() == "Tiny regression: 45 train / 5 val / 0 test, 2 features, regression, 1 target"
    assert main(["train", "linear-regression", "--data", "tiny-regression", "--epochs", "1"]) == 0
    assert "Data: Tiny regression: 900 train / 100 val / 0 test" in capsys.readouterr().out
    with pytest.raises(ValueError, match="registered already"):
        register(tiny_source)


def test_a_removed_source_is_gone_from_the_command_line_and_the_settings_check(tiny_source):
    del SOURCES["tiny-regression"]
    try:
        assert "tiny-regression" not in cli_data_names()
        with pytest.raises(DataError, match="Unknown --data 'tiny-regression'"):
            parse_data_arg("tiny-regression")
        with pytest.raises(DataError, match="The data setting 'source' .* got 'tiny-regression'"):
            DataConfig(source="tiny-regression").validate()
    finally:
        SOURCES["tiny-regression"] = tiny_source    # for the fixture to remove


def test_the_settings_the_registry_and_the_download_check_import_no_torch():
    loaded = modules_loaded_by(["engine.data", "engine.data.config", "engine.data.sources", "engine.data.downloads"])
    assert {"engine.data.config", "engine.data.sources", "engine.data.downloads"} <= loaded
    assert "torch" not in loaded and "numpy" not in loaded


def test_every_name_engine_data_offers_is_its_modules_own():
    for name in engine.data.__all__:
        value = getattr(engine.data, name)
        module = engine.data._MODULE_OF[name]
        assert value is getattr(__import__(module, fromlist=[name]), name), name
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        engine.data.no_such_name  # noqa: B018 - the look-up is what raises
