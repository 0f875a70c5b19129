"""Training in the window: real runs of a tiny design on the bundled MNIST sample, through the worker thread.

Every test ends with the controller shut down and no QThread of it running.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt

from engine.build import build_model
from engine.io import save_weights
from engine.spec import LayerSpec, NetworkSpec
from engine.text import sentence
from engine.training import BatchEnd
from gui.document import DesignDocument
from gui.training import controller as states
from gui.training.controller import TrainingController
from gui.training.panel import TrainingPanel
from gui.training.results import ResultsView
from gui.training.worker import BatchThrottle

RUN_TIMEOUT_MS = 120_000
SMALL_DATA = {"source": "mnist-sample", "limit": 300, "val_fraction": 0.2}
QUICK_RUN = {"epochs": 2, "batch_size": 32, "device": "cpu", "seed": 0}


def tiny_spec(input_shape=(1, 28, 28), classes: int = 10) -> NetworkSpec:
    return NetworkSpec(input_shape, (
        LayerSpec("Flatten", id="flat"), LayerSpec("Linear", {"out_features": 16}, id="hidden"),
        LayerSpec("ReLU", id="relu"), LayerSpec("Linear", {"out_features": classes}, id="out")))


def make_document(spec=None, training=None, data=None) -> DesignDocument:
    doc = DesignDocument(spec or tiny_spec())
    doc.extras = {"data": dict(SMALL_DATA, **(data or {})), "training": dict(QUICK_RUN, **(training or {}))}
    return doc


class TrainingArea:
    """The controller with its Training and Results tabs, as install_training puts them in a window."""

    def __init__(self, qtbot, doc: DesignDocument):
        self.qtbot = qtbot
        self.doc = doc
        self.controller = TrainingController(doc, warm_up=False)
        self.panel = TrainingPanel(self.controller)
        self.results = ResultsView(self.controller)
        qtbot.addWidget(self.panel)
        qtbot.addWidget(self.results)

    def run(self, start=None, timeout=RUN_TIMEOUT_MS):
        """Start (by default by clicking Start) and wait for the finished signal; returns the RunFinished."""
        with self.qtbot.waitSignal(self.controller.finished, timeout=timeout) as blocker:
            if start is None:
                self.qtbot.mouseClick(self.panel.start_button, Qt.LeftButton)
            else:
                start()
        return blocker.args[0]

    def close(self) -> None:
        self.panel.close_failure_dialog()
        self.controller.shutdown()
        assert self.controller.running_threads() == []
        assert self.controller.state == states.IDLE


def test_start_trains_plots_and_shows_accuracy(area):
    ui = area()
    result = ui.run()
    assert result.reason == "completed", result.message
    assert result.epochs_done == 2
    counts = ui.panel.plots.current.point_counts()
    assert counts["batch"] == ui.controller.trainer.global_step  # every batch loss reached the plot
    assert counts["train_loss"] == counts["val_loss"] == counts["val_metric"] == 2
    assert counts["lr"] > 0
    assert "Finished" in ui.panel.progress_label.text()
    evaluation = ui.controller.last_evaluation
    assert evaluation is not None and 0.0 <= evaluation.accuracy <= 1.0
    assert f"{100 * evaluation.accuracy:.2f}%" in ui.results.summary.text()
    assert not ui.doc.read_only


def test_document_is_read_only_while_running(area, qtbot):
    ui = area(make_document(training={"epochs": 100_000}))
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.panel.start_action.trigger()
    assert ui.doc.read_only
    assert not ui.panel.read_only_note.isHidden()
    assert not ui.doc.edit_param("out", "out_features", 5)  # refused while training
    assert not ui.panel.train_form.isEnabled()
    result = ui.run(start=ui.panel.stop_action.trigger)
    assert result.reason == "stopped"
    assert not ui.doc.read_only and ui.panel.read_only_note.isHidden()
    assert ui.doc.edit_param("out", "out_features", 5)


def test_stop_ends_the_run_at_the_next_batch(area, qtbot):
    ui = area(make_document(training={"epochs": 100_000}))
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.panel.start_action.trigger()
    result = ui.run(start=lambda: qtbot.mouseClick(ui.panel.stop_button, Qt.LeftButton))
    assert result.reason == "stopped"
    assert result.epochs_done < 100_000
    assert "Stopped by you" in ui.panel.progress_label.text()
    assert ui.panel.failure_dialog is None  # stopping needs no dialog


def test_pause_holds_the_run_and_resume_finishes_it(area, qtbot):
    ui = area()
    batches = []
    ui.controller.batchEnded.connect(batches.append)
    with qtbot.waitSignal(ui.controller.runStarted, timeout=RUN_TIMEOUT_MS):
        ui.panel.start_action.trigger()
        ui.panel.pause_action.trigger()  # before the first batch: the trainer starts paused
    assert ui.controller.state == states.PAUSED
    assert ui.panel.pause_action.text() == "Resume"
    qtbot.wait(400)
    assert batches == []  # nothing trains while paused
    result = ui.run(start=ui.panel.pause_action.trigger)
    assert result.reason == "completed"
    assert batches and ui.panel.pause_action.text() == "Pause"


def test_a_paused_run_shows_the_last_batch_it_trained(area, qtbot):
    """Batch signals are merged (a few a second): the one the engine reads back before it waits still reaches the
    progress line and the plots at once, not when the run resumes."""
    # epochs of many one-sample batches, so that read-backs (a few a second) come mid-epoch, where they can be merged
    ui = area(make_document(training={"epochs": 100_000, "batch_size": 1}, data={"limit": 2000}))
    batches = []
    ui.controller.batchEnded.connect(batches.append)
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.panel.start_action.trigger()
    qtbot.waitUntil(lambda: len(batches) >= 2, timeout=RUN_TIMEOUT_MS)  # read-backs mid-epoch, merged
    trainer = ui.controller._worker.trainer
    ui.panel.pause_action.trigger()
    qtbot.waitUntil(lambda: batches[-1].global_step == trainer.global_step, timeout=15_000)
    last = batches[-1]
    assert trainer.paused and ui.controller.state == states.PAUSED
    assert f"step {last.step}/{last.steps_per_epoch}" in ui.panel.progress_label.text()
    assert "paused" in ui.panel.progress_label.text()
    assert ui.panel.plots.current.point_counts()["batch"] == trainer.global_step  # every loss so far, merged
    ui.close()


def test_shutdown_during_a_run_stops_and_waits_for_the_thread(area, qtbot):
    ui = area(make_document(training={"epochs": 100_000}))
    finished = []
    ui.controller.finished.connect(finished.append)
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.controller.start()
    ui.controller.shutdown()
    assert ui.controller.running_threads() == []
    assert ui.controller.state == states.IDLE
    assert not ui.doc.read_only
    assert [r.reason for r in finished] == ["stopped"]


def test_diverging_run_ends_diverged_with_the_message_shown_and_the_next_run_works(area):
    doc = make_document(NetworkSpec((2,), (LayerSpec("Linear", {"out_features": 1}, id="out"),)),
                        training={"lr": 1e6, "optimizer": "sgd"},
                        data={"source": "synthetic-regression", "samples": 200, "limit": 0})
    ui = area(doc)
    result = ui.run()
    assert result.reason == "diverged"
    dialog = ui.panel.failure_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.text() == sentence(result.message)
    assert "learning rate" in dialog.informativeText()
    assert "Diverged" in ui.panel.progress_label.text()
    assert all(torch.isfinite(t).all() for t in ui.controller.model.state_dict().values())
    dialog.close()
    doc.set_extra("training", dict(doc.extras["training"], lr=0.05))
    assert ui.run().reason == "completed"


def test_results_confusion_cell_shows_its_samples(area, qtbot):
    ui = area()
    assert ui.run().reason == "completed"
    evaluation = ui.controller.last_evaluation
    confusion = evaluation.confusion
    true_class, predicted = max(((t, p) for t in range(10) for p in range(10) if t != p),
                                key=lambda cell: confusion[cell[0]][cell[1]])
    count = confusion[true_class][predicted]
    assert count > 0  # a tiny network after 2 epochs on 240 samples still confuses some digits
    indices = ui.results.select_cell(true_class, predicted)
    assert len(indices) == count
    grid = ui.results.samples
    assert grid.count() == min(count, 64)
    assert not grid.item(0).icon().isNull()  # shown as an image
    test_y = ui.controller.data.test_y
    assert all(int(test_y[i]) == true_class and evaluation.predicted[i] == predicted for i in indices)
    assert "misclassified" in ui.results.samples_title.text()


def test_results_cell_click_with_the_mouse(area, qtbot):
    ui = area()
    assert ui.run().reason == "completed"
    ui.results.resize(900, 700)
    ui.results.show()
    qtbot.waitExposed(ui.results)
    qtbot.wait(50)  # let the plot settle its view range after the first layout
    plot = ui.results.confusion_plot
    scene_point = ui.results.confusion_image.mapToScene(QPointF(2.2, 5.8))  # column 2, row 5, off the label
    qtbot.mouseClick(plot.viewport(), Qt.LeftButton, pos=plot.mapFromScene(scene_point))
    assert ui.results.selected_cell == (5, 2)
    assert ui.results.samples_title.text().startswith("True 5, predicted 2")


def test_loading_mismatched_weights_shows_the_report_and_keeps_the_model(area, tmp_path):
    ui = area()
    from gui.training.actions import WeightsActions

    actions = WeightsActions(ui.controller, ui.panel)
    good = tmp_path / "good.pt"
    save_weights(build_model(ui.doc.spec), good)
    assert actions.load_weights_from(good)
    before = {k: v.clone() for k, v in ui.controller.model.state_dict().items()}

    wrong = tmp_path / "wrong.safetensors"
    save_weights(build_model(tiny_spec(classes=3)), wrong)
    assert not actions.load_weights_from(wrong)
    dialog = actions.last_dialog
    assert dialog is not None and dialog.isVisible()
    assert "do not fit" in dialog.text()
    assert "3.weight" in dialog.informativeText() and "3x16" in dialog.informativeText()
    after = ui.controller.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    dialog.close()


def test_saved_weights_load_into_plain_pytorch(area, tmp_path):
    ui = area()
    assert ui.run().reason == "completed"
    from gui.training.actions import WeightsActions

    actions = WeightsActions(ui.controller, ui.panel)
    assert actions.save_weights.isEnabled()
    for name in ("trained.pt", "trained.safetensors"):
        path = tmp_path / name
        assert actions.save_weights_to(path)
        plain = build_model(ui.doc.spec)
        from engine.io import read_state_dict

        plain.load_state_dict(read_state_dict(path))
        trained = ui.controller.model.state_dict()
        assert all(torch.equal(plain.state_dict()[k], trained[k].cpu()) for k in trained)


def test_checkpoint_resume_continues_the_run_and_its_plots(area, tmp_path):
    ui = area(make_document(training={"epochs": 1}))
    assert ui.run().reason == "completed"
    from gui.training.actions import WeightsActions

    actions = WeightsActions(ui.controller, ui.panel)
    checkpoint = tmp_path / "run.ckpt"
    assert actions.save_checkpoint_to(checkpoint)
    ui.doc.set_extra("training", dict(ui.doc.extras["training"], epochs=2))
    runs_before = len(ui.panel.plots.runs)
    result = ui.run(start=lambda: actions.resume_from(checkpoint))
    assert result.reason == "completed" and result.epochs_done == 2
    assert len(ui.panel.plots.runs) == runs_before  # the same curves went on
    counts = ui.panel.plots.current.point_counts()
    assert counts["train_loss"] == 2 and counts["val_metric"] == 2


def test_data_mismatch_is_explained_and_fixed_in_one_undo_step(area, qtbot):
    doc = make_document(tiny_spec(input_shape=(3, 32, 32), classes=5))
    ui = area(doc)
    with qtbot.waitSignal(ui.controller.dataLoaded, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(ui.panel.data_section.load_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    assert "10 classes" in ui.panel.data_section.summary.text()
    note = ui.panel.data_section.fit_note.text()
    assert not ui.panel.data_section.fit_box.isHidden()
    assert "3x32x32" in note and "1x28x28" in note and "10 classes" in note
    qtbot.mouseClick(ui.panel.data_section.fit_button, Qt.LeftButton)
    assert doc.spec.input_shape == (1, 28, 28)
    assert doc.spec.layer("out").params["out_features"] == 10
    assert ui.panel.data_section.fit_box.isHidden()
    doc.undo_stack.undo()
    assert doc.spec.input_shape == (3, 32, 32) and doc.spec.layer("out").params["out_features"] == 5


def test_settings_are_saved_in_the_document_and_follow_undo(area):
    ui = area()
    lr = ui.panel.train_form.widget("lr")
    lr.setValue(0.01)
    assert ui.doc.extras["training"]["lr"] == pytest.approx(0.01)
    lr.stepBy(1)  # learning-rate arrows step by factors of ten
    assert ui.doc.extras["training"]["lr"] == pytest.approx(0.1)
    source = ui.panel.data_form.widget("source")
    source.setCurrentIndex(source.findData("csv"))
    assert ui.doc.extras["data"]["source"] == "csv"
    assert not ui.panel.data_form.widget("root").isHidden()  # the CSV file row appears
    ui.doc.undo_stack.undo()
    assert ui.panel.data_form.values()["source"] == "mnist-sample"


def test_settings_and_layer_editors_share_one_float_spin_box_that_takes_scientific_text(area, qtbot):
    from gui.editors import FloatSpinBox

    ui = area()
    decay = ui.panel.train_form.widget("weight_decay")
    assert isinstance(decay, FloatSpinBox) and isinstance(ui.panel.train_form.widget("lr"), FloatSpinBox)
    decay.show()
    decay.lineEdit().selectAll()
    qtbot.keyClicks(decay.lineEdit(), "2.5e-4")
    decay.interpretText()
    assert ui.doc.extras["training"]["weight_decay"] == pytest.approx(2.5e-4)
    assert decay.text() == "0.00025"
    qtbot.keyClicks(decay.lineEdit(), "x")  # a letter that is no exponent is refused as typed
    assert decay.lineEdit().text() == "0.00025"


def test_a_file_with_badly_typed_settings_opens_and_names_the_bad_field(area):
    from gui.document import DesignFile

    ui = area()
    ui.doc.load(DesignFile(tiny_spec(), "bad", "", {"training": {"lr": "abc", "epochs": -1}, "data": {"limit": "x"}}))
    assert ui.panel.train_form.widget("lr").value() == pytest.approx(1e-3)  # the widget shows the default
    assert ui.panel.settings_error.isVisibleTo(ui.panel)
    assert "lr" in ui.panel.settings_error.text() and "limit" in ui.panel.settings_error.text()
    ui.panel.train_form.widget("lr").setValue(0.01)  # the user's fix replaces the bad value
    assert ui.doc.extras["training"]["lr"] == pytest.approx(0.01)


def test_batch_throttle_merges_losses_and_always_passes_the_last_batch_of_an_epoch():
    now = [0.0]
    passed = []
    throttle = BatchThrottle(passed.append, interval=0.05, clock=lambda: now[0])

    def batch(step, losses):
        return BatchEnd(epoch=1, step=step, steps_per_epoch=5, global_step=step, losses=losses, lr=0.1,
                        samples_per_s=1.0)

    throttle.add(batch(1, (1.0,)))   # first one passes
    now[0] = 0.01
    throttle.add(batch(2, (0.9,)))   # too soon: held
    now[0] = 0.02
    throttle.add(batch(3, (0.8, float("nan"))))  # held, merged
    assert [e.step for e in passed] == [1]
    now[0] = 0.03
    throttle.add(batch(5, (0.7,)))   # last batch of the epoch: passes at once
    assert [e.step for e in passed] == [1, 5]
    assert passed[1].losses[:2] == (0.9, 0.8) and passed[1].losses[-1] == 0.7 and len(passed[1].losses) == 4
    throttle.flush()
    assert len(passed) == 2


def test_warm_up_runs_in_its_own_thread_and_is_waited_for(qtbot):
    controller = TrainingController(make_document(), warm_up=True)
    assert len(controller._threads) == 1
    qtbot.waitUntil(lambda: controller.running_threads() == [], timeout=60_000)
    controller.shutdown()
    assert controller.running_threads() == []


def test_plots_take_nan_and_inf_keep_previous_runs_dimmed_and_clear_them(qtbot):
    from engine.training import EpochEnd
    from gui.training.plots import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(800, 600)
    plots.show()
    for run in range(2):
        plots.begin_run(f"run with lr {run}", "classification")
        for step in range(1, 5):
            losses = (2.0 / step, float("nan") if step == 2 else 1.5 / step, float("inf") if step == 3 else 1.0)
            plots.add_batch(BatchEnd(epoch=1, step=step, steps_per_epoch=4, global_step=step, losses=losses,
                                     lr=0.1, samples_per_s=10.0))
        plots.add_epoch(EpochEnd(1, 1, float("nan"), 0.5, 1.0, 0.4, 0.1, 1.0))
        qtbot.waitUntil(lambda: not plots.current.dirty)  # the refresh timer pushed the buffers
        plots.end_run()
    x, y = plots.live["batch"].getData()
    assert len(x) == 12 and np.isnan(y).sum() == 1 and np.isinf(y).sum() == 1  # the current run only
    ema = plots.live["ema"].getData()[1]
    assert np.isfinite(ema).all()  # the smoothed curve skips the bad values
    legend_texts = [label.text for _sample, label in plots.loss_legend.items]
    assert "run 1: run with lr 0" in legend_texts
    first = plots.runs[0]
    assert first.archive["ema"].isVisible() and not plots.runs[1].archive["ema"].isVisible()
    bounds = plots.loss_plot.getViewBox().childrenBounds()
    assert all(np.isfinite(v) for pair in bounds for v in pair)  # auto-range ignores NaN and inf
    plots.clear()
    assert plots.runs == [] and len(plots.live["batch"].getData()[0] or []) == 0
    assert [label.text for _sample, label in plots.loss_legend.items] == [
        "batch", "smoothed", "train", "validation"]


def test_regression_results_show_the_metric_and_a_predicted_vs_true_scatter(area):
    doc = make_document(NetworkSpec((2,), (LayerSpec("Linear", {"out_features": 1}, id="out"),)),
                        training={"optimizer": "sgd", "lr": 0.05, "epochs": 2},
                        data={"source": "synthetic-regression", "samples": 300, "limit": 0})
    ui = area(doc)
    assert ui.run().reason == "completed"
    assert ui.panel.plots.metric_plot.titleLabel.text.startswith("Loss per epoch")
    evaluation = ui.controller.last_evaluation
    assert evaluation.accuracy is None and evaluation.confusion is None
    results = ui.results
    assert results.pages.currentWidget() is results.scatter_plot
    assert "RMSE" in results.summary.text() and "accuracy" not in results.summary.text()
    x, y = results.scatter.getData()
    assert len(x) == len(evaluation.samples) > 0
    assert np.allclose(x, [p.target for p in evaluation.samples])


def test_a_run_that_cannot_start_says_why_and_the_fix_is_one_click_away(area):
    doc = make_document(tiny_spec(input_shape=(3, 32, 32)))
    ui = area(doc)
    result = ui.run()
    assert result.reason == "error"
    assert "32, 32" in result.message and "28, 28" in result.message
    dialog = ui.panel.failure_dialog
    assert dialog is not None and dialog.isVisible() and dialog.text() == sentence(result.message)
    assert not ui.panel.data_section.fit_box.isHidden()  # the data got loaded: the fit note offers the fix
    dialog.close()
    assert ui.panel.data_section.fit_design()
    assert ui.run().reason == "completed"
