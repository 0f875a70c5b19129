"""Evaluate without training, the Results additions (Row %, precision/recall/F1, All samples) and the Predict tab:
real weights trained on the bundled MNIST sample, real PNG files, the worker thread, drag and drop."""
from __future__ import annotations

import json
import math

import pytest
import torch
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent

from engine.cli import main
from engine.data import DataConfig, load_data
from engine.evaluation import class_metrics, evaluate_model
from engine.io import save_weights
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig, Trainer
from gui.document import DesignDocument
from gui.training import controller as states
from gui.training import install_training
from gui.training.controller import TrainingController
from gui.training.evaluate import STOPPED
from gui.training.predict import PredictPanel
from gui.training.results import ResultsView, percent
from tests.digits import write_digit

TIMEOUT_MS = 120_000
DATA = {"source": "mnist-sample", "limit": 300, "val_fraction": 0.2}
QUICK = {"epochs": 1, "batch_size": 32, "device": "cpu", "seed": 0}


def tiny_spec(input_shape=(1, 28, 28), classes: int = 10) -> NetworkSpec:
    return NetworkSpec(input_shape, (
        LayerSpec("Flatten", id="flat"), LayerSpec("Linear", {"out_features": 16}, id="hidden"),
        LayerSpec("ReLU", id="relu"), LayerSpec("Linear", {"out_features": classes}, id="out")))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny classifier trained one epoch on the sample; its weights saved as a .pt file."""
    trainer = Trainer(tiny_spec(), load_data(DataConfig.from_dict(DATA)), TrainConfig.from_dict(QUICK))
    assert trainer.run().reason == "completed"
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_weights(trainer.model, path)
    return trainer, path


class Area:
    """A controller with its Results and Predict tabs, as install_training builds them."""

    def __init__(self, qtbot, spec=None, data=None):
        self.qtbot = qtbot
        self.doc = DesignDocument(spec or tiny_spec())
        self.doc.extras = {"data": dict(data or DATA), "training": dict(QUICK)}
        self.controller = TrainingController(self.doc, warm_up=False)
        self.results = ResultsView(self.controller)
        self.predict = PredictPanel(self.controller)
        qtbot.addWidget(self.results)
        qtbot.addWidget(self.predict)

    def evaluate(self):
        """Click Evaluate and wait for the results."""
        with self.qtbot.waitSignal(self.controller.evaluated, timeout=TIMEOUT_MS) as blocker:
            self.qtbot.mouseClick(self.results.evaluate_button, Qt.LeftButton)
        self.qtbot.waitUntil(lambda: self.controller.state == states.IDLE)
        return blocker.args[0]

    def close(self) -> None:
        self.controller.shutdown()
        assert self.controller.running_threads() == []
        assert self.controller.state == states.IDLE


@pytest.fixture
def area(qtbot):
    made = []

    def make(**kwargs) -> Area:
        made.append(Area(qtbot, **kwargs))
        return made[-1]

    yield make
    for item in made:
        item.close()


# --------------------------------------------------------------------------- Evaluate

def test_evaluate_loaded_weights_loads_the_data_and_fills_the_results(area, trained):
    trainer, weights = trained
    ui = area()
    assert not ui.results.evaluate_action.isEnabled()  # nothing to evaluate yet
    ui.controller.load_weights(weights)
    assert ui.results.evaluate_action.isEnabled()
    evaluation = ui.evaluate()

    bundle = ui.controller.cached_data(ui.controller.data_config())
    assert bundle is not None  # loaded through the controller: the next run and Predict reuse it
    assert evaluation.confusion == trainer.evaluate("test").confusion
    expected = evaluate_model(trainer.spec, trainer.model, bundle)
    assert evaluation.accuracy == expected.accuracy and evaluation.count == 1000
    assert f"accuracy <b>{100 * evaluation.accuracy:.2f}%</b>" in ui.results.summary.text()
    rows = ui.results.class_table_rows()
    assert [row[0] for row in rows] == [str(k) for k in range(10)]
    for row, metric in zip(rows, class_metrics(evaluation.confusion), strict=True):
        assert row[1:] == [f"{metric.support:,}", percent(metric.precision), percent(metric.recall),
                           percent(metric.f1)]
    assert ui.results.pages.currentIndex() == 1
    assert not ui.doc.read_only and ui.results.evaluate_action.text() == "Evaluate"


def test_evaluate_after_a_run_gives_the_runs_own_results(area, qtbot):
    ui = area()
    with qtbot.waitSignal(ui.controller.finished, timeout=TIMEOUT_MS):
        ui.controller.start()
    after_run = ui.controller.last_evaluation
    assert ui.results.evaluate_action.isEnabled()
    again = ui.evaluate()
    assert again.confusion == after_run.confusion and again.loss == pytest.approx(after_run.loss, rel=1e-5)


def test_stop_evaluating_ends_it_without_results(area, qtbot, trained):
    ui = area()
    ui.controller.load_weights(trained[1])
    results = []
    ui.controller.evaluated.connect(results.append)
    with qtbot.waitSignal(ui.controller.evaluationFailed, timeout=TIMEOUT_MS) as blocker:
        ui.results.evaluate_action.trigger()  # the data is not loaded yet: the stop arrives while it loads
        assert ui.controller.state == states.EVALUATING
        assert ui.results.evaluate_action.text() == "Stop Evaluating"
        assert not ui.controller.start()  # one thing at a time
        ui.results.evaluate_action.trigger()
    assert blocker.args == [STOPPED]
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    assert results == [] and ui.results.summary.text() == STOPPED
    assert ui.results.evaluate_action.text() == "Evaluate" and ui.results.evaluate_action.isEnabled()


def test_closing_during_an_evaluation_stops_and_waits_for_it(area, trained):
    ui = area()
    ui.controller.load_weights(trained[1])
    assert ui.controller.evaluate()
    ui.controller.shutdown()
    assert ui.controller.running_threads() == [] and ui.controller.state == states.IDLE


def test_data_that_does_not_fit_the_weights_gets_a_sentence(area, qtbot, trained):
    ui = area()
    ui.controller.load_weights(trained[1])
    ui.doc.set_extra("data", {"source": "synthetic-regression"})
    with qtbot.waitSignal(ui.controller.evaluationFailed, timeout=TIMEOUT_MS) as blocker:
        ui.results.evaluate_action.trigger()
    assert "the design takes inputs of shape" in blocker.args[0]
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    assert ui.results.summary.text().startswith("The design takes inputs of shape")


# --------------------------------------------------------------------------- Results additions

def test_row_percent_shows_each_cell_as_a_share_of_its_true_class(area, trained):
    trainer, _ = trained
    ui = area()
    evaluation = trainer.evaluate("val")  # 60 samples: the classes have different counts
    ui.results.show_evaluation(evaluation, trainer.data)
    matrix = evaluation.confusion
    cells = [(row, col) for row in range(10) for col in range(10) if matrix[row][col]]
    assert ui.results.cell_texts() == [str(matrix[r][c]) for r, c in cells]
    ui.results.row_percent.setChecked(True)
    assert ui.results.cell_texts() == [f"{100 * matrix[r][c] / sum(matrix[r]):.0f}%" for r, c in cells]
    assert len({sum(row) for row in matrix}) > 1  # counts and shares really differ here
    ui.results.row_percent.setChecked(False)
    assert ui.results.cell_texts() == [str(matrix[r][c]) for r, c in cells]


def test_results_in_a_tab_behind_another_draw_their_pictures_when_shown(area, trained, qtbot):
    """An evaluation arriving while another tab is in front sets the figures and the class table at once; the matrix
    and the picture grid (the dear part) are drawn when the Results tab is shown."""
    from PySide6.QtWidgets import QTabWidget, QWidget

    trainer, _ = trained
    ui = area()
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.addTab(QWidget(), "Training")
    tabs.addTab(ui.results, "Results")
    tabs.resize(1000, 700)
    tabs.show()
    qtbot.waitExposed(tabs)
    evaluation = trainer.evaluate("test", samples=40)
    ui.results.show_evaluation(evaluation, trainer.data)
    assert f"{100 * evaluation.accuracy:.2f}%" in ui.results.summary.text()
    assert len(ui.results.class_table_rows()) == 10
    assert ui.results.samples.count() == 0 and ui.results.cell_texts() == []  # nobody sees them yet
    tabs.setCurrentWidget(ui.results)
    qtbot.waitUntil(lambda: ui.results.samples.count() == 40)
    assert ui.results.cell_texts()
    tabs.setCurrentIndex(0)
    ui.results.show_evaluation(trainer.evaluate("test", samples=20), trainer.data)
    true_class, predicted = next((t, p) for t in range(10) for p in range(10) if evaluation.confusion[t][p])
    assert ui.results.select_cell(true_class, predicted)  # a cell asked for in the hidden tab draws the rest first
    assert ui.results.selected_cell == (true_class, predicted) and ui.results.cell_texts()
    tabs.setCurrentWidget(ui.results)
    assert ui.results.selected_cell == (true_class, predicted)  # showing the tab keeps the cell's samples
    tabs.removeTab(1)
    ui.results.setParent(None)  # the area closes it, not the tabs


def test_all_samples_goes_back_from_a_cells_samples_to_the_whole_gallery(area, trained, qtbot):
    trainer, _ = trained
    ui = area()
    evaluation = trainer.evaluate("test", samples=40)
    ui.results.show_evaluation(evaluation, trainer.data)
    ui.results.resize(1000, 700)
    ui.results.show()
    qtbot.waitExposed(ui.results)
    assert not ui.results.all_samples_button.isVisible() and ui.results.samples.count() == 40
    true_class, predicted = max(((t, p) for t in range(10) for p in range(10) if t != p),
                                key=lambda cell: evaluation.confusion[cell[0]][cell[1]])
    indices = ui.results.select_cell(true_class, predicted)
    assert ui.results.samples.count() == min(len(indices), 64) and ui.results.all_samples_button.isVisible()
    qtbot.mouseClick(ui.results.all_samples_button, Qt.LeftButton)
    assert ui.results.selected_cell is None and not ui.results.all_samples_button.isVisible()
    assert ui.results.samples.count() == 40
    assert ui.results.samples_title.text().startswith("Sample test predictions")


def test_the_class_table_sorts_by_f1_and_keeps_its_numbers(area, trained):
    trainer, _ = trained
    ui = area()
    ui.results.show_evaluation(trainer.evaluate("test"), trainer.data)
    table = ui.results.class_table
    table.sortByColumn(4, Qt.AscendingOrder)
    f1 = [item.value for item in (table.item(r, 4) for r in range(table.rowCount()))]
    finite = [v for v in f1 if not math.isnan(v)]
    assert finite == sorted(finite) and f1[:len(finite)] == finite  # undefined (NaN) last


# --------------------------------------------------------------------------- Predict

def panel_probabilities(trainer, index: int) -> list[float]:
    trainer.model.eval()
    with torch.no_grad():
        return torch.softmax(trainer.model(trainer.data.test_x[index:index + 1]), dim=1)[0].tolist()


def test_predicting_an_image_loads_the_data_and_agrees_with_the_model_and_the_cli(area, qtbot, trained, tmp_path,
                                                                                 capsys):
    trainer, weights = trained
    ui = area()
    ui.controller.load_weights(weights)
    image = tmp_path / "digit.png"
    write_digit(image, 12)
    with qtbot.waitSignal(ui.predict.predicted, timeout=TIMEOUT_MS) as blocker:
        assert ui.predict.predict_image(image) is None  # the data loads first, off the UI thread
    result = blocker.args[0]
    expected = panel_probabilities(trainer, 12)
    assert result.scores == pytest.approx(expected, abs=1e-6)
    names, heights = ui.predict.bar_values()
    assert names == [str(k) for k in range(10)]
    assert heights == pytest.approx([100 * p for p in expected], abs=1e-4)
    assert f"Predicted <b>{result.label}</b>" in ui.predict.headline.text()
    assert "grayscale images, 1x28x28" in ui.predict.seen_label.text()
    assert ui.predict.drop.pixmap() is not None and not ui.predict.drop.pixmap().isNull()

    design = tmp_path / "tiny.json"
    design.write_text(json.dumps({**ui.doc.spec.to_dict(), "data": DATA}))
    assert main(["predict", str(design), "--weights", str(weights), "--json", str(image)]) == 0
    [cli] = json.loads(capsys.readouterr().out)
    assert list(cli["probabilities"].values()) == pytest.approx(result.scores, abs=1e-6)
    assert cli["predicted"] == result.label
    second = ui.predict.predict_image(image)  # the data is loaded now: at once
    assert second.scores == result.scores


def drop_event(kind, paths, widget):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    if kind is QDragEnterEvent:
        return mime, QDragEnterEvent(QPoint(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    return mime, QDropEvent(QPointF(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)


def test_dropping_image_files_predicts_them_and_a_text_file_gets_a_sentence(area, qtbot, trained, tmp_path):
    _, weights = trained
    ui = area()
    ui.controller.load_weights(weights)
    with qtbot.waitSignal(ui.controller.dataLoaded, timeout=TIMEOUT_MS):
        ui.controller.load_data()
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    image = tmp_path / "big colour.png"
    write_digit(image, 30, "RGB", (90, 90))
    _, enter = drop_event(QDragEnterEvent, [image], ui.predict)
    ui.predict.dragEnterEvent(enter)
    assert enter.isAccepted()
    _, drop = drop_event(QDropEvent, [image], ui.predict)
    with qtbot.waitSignal(ui.predict.predicted, timeout=TIMEOUT_MS) as blocker:
        ui.predict.dropEvent(drop)
    assert blocker.args[0].source == "big colour.png" and len(blocker.args[0].scores) == 10

    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list")
    _, drop = drop_event(QDropEvent, [notes], ui.predict)
    with qtbot.waitSignal(ui.predict.failed, timeout=TIMEOUT_MS) as failure:
        ui.predict.dropEvent(drop)
    assert failure.args[0] == ("notes.txt is not an image LayerStudio can read: choose a PNG, JPEG, BMP, GIF, "
                               "TIFF or WebP file.")
    assert ui.predict.problem.text() == failure.args[0] and not ui.predict.problem.isHidden()


def test_data_that_cannot_be_loaded_gives_its_sentence_instead_of_a_prediction(area, qtbot, trained, tmp_path):
    ui = area()
    ui.controller.load_weights(trained[1])
    ui.doc.set_extra("data", {"source": "csv", "root": str(tmp_path / "missing.csv")})
    image = tmp_path / "digit.png"
    write_digit(image, 0)
    with qtbot.waitSignal(ui.predict.failed, timeout=TIMEOUT_MS) as failure:
        assert ui.predict.predict_image(image) is None
    assert "missing.csv does not exist" in failure.args[0]
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    assert ui.predict.headline.text() == "No prediction yet." and ui.predict.result is None


def test_predict_without_weights_says_what_to_do(area, tmp_path):
    ui = area()
    image = tmp_path / "digit.png"
    write_digit(image, 0)
    assert ui.predict.predict_image(image) is None
    assert ui.predict.problem.text().startswith("There are no weights yet: train the design")
    assert not ui.predict.open_button.isEnabled()


def test_new_weights_predict_the_last_input_again(area, qtbot, trained, tmp_path):
    trainer, weights = trained
    ui = area()
    ui.controller.load_weights(weights)
    image = tmp_path / "digit.png"
    write_digit(image, 5)
    with qtbot.waitSignal(ui.predict.predicted, timeout=TIMEOUT_MS) as first:
        ui.predict.predict_image(image)
    zeros = tmp_path / "zeros.pt"
    save_weights({key: torch.zeros_like(value) for key, value in trainer.model.state_dict().items()}, zeros)
    with qtbot.waitSignal(ui.predict.predicted, timeout=TIMEOUT_MS) as second:
        ui.controller.load_weights(zeros)
    assert first.args[0].scores != second.args[0].scores
    assert second.args[0].scores == pytest.approx([0.1] * 10)  # all-zero weights: every class equally likely


def test_typed_numbers_predict_tabular_data(area, qtbot, tmp_path):
    table = tmp_path / "points.csv"
    table.write_text("a,b,label\n" + "".join(f"{k % 7},{(3 * k) % 5},{'yes' if k % 2 else 'no'}\n"
                                             for k in range(40)))
    spec = NetworkSpec((2,), (LayerSpec("Linear", {"out_features": 2}, id="out"),))
    data = {"source": "csv", "root": str(table), "val_fraction": 0.2}
    ui = area(spec=spec, data=data)
    with qtbot.waitSignal(ui.controller.finished, timeout=TIMEOUT_MS):
        ui.controller.start()
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    assert not ui.predict.open_button.isEnabled() and ui.predict.row_edit.isEnabled()  # a table: numbers only
    qtbot.keyClicks(ui.predict.row_edit, "3, 4")
    with qtbot.waitSignal(ui.predict.predicted, timeout=TIMEOUT_MS) as blocker:
        qtbot.mouseClick(ui.predict.row_button, Qt.LeftButton)
    result = blocker.args[0]
    bundle = ui.controller.data
    x = (torch.tensor([[3.0, 4.0]]) - torch.tensor(bundle.mean)) / torch.tensor(bundle.std)
    model = ui.controller.model
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)[0].tolist()
    assert result.names == ["no", "yes"] and result.scores == pytest.approx(expected, abs=1e-6)
    assert ui.predict.bar_values()[0] == ["no", "yes"]
    ui.predict.row_edit.setText("3")
    with qtbot.waitSignal(ui.predict.failed, timeout=TIMEOUT_MS) as failure:
        ui.predict.row_edit.returnPressed.emit()
    assert failure.args[0].startswith("The model takes 2 numbers per row, got 1")


# --------------------------------------------------------------------------- the window

def test_the_window_has_evaluate_in_the_file_menu_and_a_predict_tab(window):
    ui = getattr(window, "training", None) or install_training(window)
    file_actions = {action.text(): action for action in window.file_menu.actions()}
    assert file_actions["Evaluate"].shortcut().toString() == "F7"
    assert not file_actions["Evaluate"].isEnabled()
    assert "Predict from Image…" in file_actions
    assert "Predict" in [window.tabs.tabText(i) for i in range(window.tabs.count())]
    window.tabs.setCurrentWidget(ui.predict)
    assert window.tabs.currentWidget() is ui.predict
    ui.controller.shutdown()


def test_messages_become_sentences_but_a_leading_file_name_stays_as_written():
    from engine.text import sentence

    assert sentence("the design has an error") == "The design has an error."
    assert sentence("notes.txt is not an image") == "notes.txt is not an image."
    assert sentence("/data/x.csv does not exist: check the path") == "/data/x.csv does not exist: check the path."


def test_a_disabled_tool_button_looks_disabled(qtbot):
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QToolButton

    def darkest_text(enabled: bool) -> int:
        """The darkest grey level inside the button (its text), 0 black to 255 white."""
        button = QToolButton()
        button.setText("Evaluate")
        button.setEnabled(enabled)
        qtbot.addWidget(button)
        button.resize(120, 28)
        image = button.grab().toImage()
        return min(QColor(image.pixel(x, y)).lightness() for x in range(8, image.width() - 8)
                   for y in range(6, image.height() - 6))

    assert darkest_text(False) > darkest_text(True) + 60  # the style sheet's text colour must not hide the state
