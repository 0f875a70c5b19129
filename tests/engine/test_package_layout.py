"""The engine stays made of small modules, and the training settings and events load without torch."""
from __future__ import annotations

import ast
from pathlib import Path

import engine
from tests.engine.test_engine_is_qt_free import modules_loaded_by

MAX_LINES = 500
TORCH_FREE = ("engine.training", "engine.training.config", "engine.training.events", "engine.training.early_stopping",
              "engine.data", "engine.data.config", "engine.data.sources", "engine.schema")


def test_the_training_settings_and_events_import_without_torch():
    loaded = modules_loaded_by(list(TORCH_FREE))
    assert set(TORCH_FREE) <= loaded
    assert "torch" not in loaded


def test_the_package_still_gives_every_name_it_gave_as_one_module():
    from engine import training

    names = ("AMP_MODES", "HISTORY_KEYS", "INITS", "LOSSES", "OPTIMIZERS", "REASONS", "SCHEDULES", "STOP_METRICS",
             "COMPILE_OPTIONS", "READBACK_INTERVAL_S", "BatchEnd", "EpochEnd", "Evaluation", "Event",
             "LearningRateSchedule", "Objective", "Prediction", "RunFinished", "RunStarted", "TrainConfig", "Trainer",
             "device_name", "initialize_weights", "is_out_of_memory", "make_optimizer", "resolve_device",
             "resolve_loss", "steps_per_epoch", "warm_up")
    missing = [name for name in names if not hasattr(training, name)]
    assert missing == []
    assert training.Trainer.__module__ == "engine.training.trainer"
    assert training.REASONS == ("completed", "stopped", "early_stopped", "diverged", "out_of_memory", "error")


def type_checking_imports(package) -> dict[str, str]:
    """Name -> module of what a package's __init__ imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(Path(package.__file__).read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module, ast.dump(statement)
                names.update({alias.name: statement.module for alias in statement.names})
    return names


def test_type_checkers_see_every_name_the_packages_load_lazily():
    """mypy reads the TYPE_CHECKING imports, the packages load from their tables: the two list the same names."""
    from engine import data, training

    assert type_checking_imports(data) == data._MODULE_OF
    lazy = {name: module if "." in module else f"engine.training.{module}" for name, module in training._LAZY.items()}
    assert type_checking_imports(training) == lazy


def test_no_engine_module_is_over_500_lines():
    root = Path(engine.__file__).parent
    sizes = {str(path.relative_to(root)): len(path.read_text(encoding="utf-8").splitlines())
             for path in root.rglob("*.py")}
    assert "training/trainer.py" in sizes and "training/checkpoint.py" in sizes
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert too_long == {}
