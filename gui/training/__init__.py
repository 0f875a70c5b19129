"""Training in the window: a worker thread runs the engine's Trainer while plots and results follow live.

The one entry point is ``install_training(window)``; it uses only the
MainWindow hooks of the team contract (``document``, ``add_tab``,
``add_file_actions``, ``train_button``, ``statusBar()``, ``tabs``).
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import QLabel, QMessageBox, QToolButton

from engine.controls import use_naming

RUN_STATE_NOTES = {  # the status bar's note per controller state (gui.training.controller); idle: none
    "loading": "Loading the data", "running": "Training", "paused": "Paused (F6 resumes)",
    "stopping": "Stopping", "evaluating": "Evaluating", "searching": "Searching",
}


@dataclass
class TrainingUI:
    """What install_training added to a window (kept for the window's closeEvent and for tests)."""

    controller: object   # TrainingController
    panel: object        # TrainingPanel ("Training" tab)
    results: object      # ResultsView ("Results" tab)
    weights: object      # WeightsActions (File menu)
    recovery_offer: object = None  # RecoveryOffer shown at start-up (gui.app), if a run was interrupted
    predict: object = None  # PredictPanel ("Predict" tab)
    cost_view: object = None  # CostView (View > Cost View), on a MainWindow
    activations: object = None  # ActivationsView (a window opened from Results and Predict)
    runs: object = None  # RunsView ("Runs" tab: the run history)
    search: object = None  # SearchView ("Search" tab, gui.search)
    launch: object = None  # LaunchScriptExport (File > Export > Launch Script for torchrun…)

    def shutdown(self) -> None:
        """Stop any run and wait for its thread: call from the window's closeEvent."""
        self.controller.shutdown()


def install_training(window) -> TrainingUI:
    """Add the Training, Results, Predict, Search and Runs tabs, the weight file actions, Evaluate, the Train button and
    shortcuts to ``window``.

    Expects: ``window.document`` (a DesignDocument), ``window.add_tab(widget, title)``,
    ``window.add_file_actions(actions)``, ``window.train_button`` (a QAbstractButton; a QToolButton
    becomes the Train action itself), ``window.statusBar()`` and ``window.tabs`` (the central
    QTabWidget). Closing during a run first asks, with the run paused (``window.add_close_guard``);
    then closing stops the run and waits for its thread: through ``window.closing`` (emitted by
    MainWindow's closeEvent) when the window has it, else the window calls ``ui.shutdown()`` from its
    closeEvent; QApplication.aboutToQuit is hooked as well.
    """
    from gui.training.actions import WeightsActions
    from gui.training.activations_view import ActivationsView
    from gui.training.controller import TrainingController
    from gui.training.panel import TrainingPanel
    from gui.training.predict import PredictPanel
    from gui.training.results import ResultsView
    from gui.training.settings import control_label

    use_naming(control_label)  # the engine's sentences name settings as this window labels them

    controller = TrainingController(window.document, parent=window)
    panel = TrainingPanel(controller)
    results = ResultsView(controller)
    weights = WeightsActions(controller, window)
    window.add_tab(panel, "Training", full_width=True)
    window.add_tab(results, "Results", full_width=True)
    predict = PredictPanel(controller)
    window.add_tab(predict, "Predict", full_width=True)
    from gui.runs_view import RunsView
    from gui.search import install_search

    search = install_search(window, controller, sweep=panel.lr_finder)

    runs = RunsView(controller.history, controller, window=window if hasattr(window, "load_design") else None,
                    weights=weights)
    window.add_tab(runs, "Runs", full_width=True)
    activations = ActivationsView(controller, window)
    results.activationsRequested.connect(activations.show_test_sample)
    predict.activationsRequested.connect(activations.show_input)
    window.add_file_actions(weights.actions)
    exports = getattr(window, "exports", None)  # File > Export (gui.export_actions) writes the trained weights
    if exports is not None:
        from gui.training.actions import weights_for_export

        exports.weights_source = lambda: weights_for_export(controller)
    window.add_file_actions([results.evaluate_action, predict.open_action])
    from gui.training.launch_export import LaunchScriptExport

    launch = LaunchScriptExport(controller, window)
    export_menu = getattr(window, "export_menu", None)
    if export_menu is not None:  # File > Export > Launch Script… beside ONNX, TorchScript and the Python script
        export_menu.addSeparator()
        export_menu.addAction(launch.action)
    else:
        window.add_file_actions([launch.action])
    for action in panel.actions_:
        window.addAction(action)  # F5 / F6 / Shift+F5 work from every tab

    tabs = getattr(window, "tabs", None)
    if tabs is not None:  # Train (F5, the footer button, the tab's button) shows the run from any tab
        panel.start_action.triggered.connect(lambda: tabs.setCurrentWidget(panel))
    button = window.train_button
    if isinstance(button, QToolButton):  # one action: the same name, state and reason when off
        button.setDefaultAction(panel.start_action)
        panel.run_buttons.append(button)
        panel.refresh()
    else:
        button.clicked.connect(panel.start_action.trigger)
    if tabs is not None:  # Evaluate and Predict from the menu show their tab
        results.evaluate_action.triggered.connect(lambda: tabs.setCurrentWidget(results))
        predict.open_action.triggered.connect(lambda: tabs.setCurrentWidget(predict))

    inspector = getattr(window, "inspector", None)
    if inspector is not None:  # the selected layer's weights: trained, loaded, or those a run starts from
        from gui.training.parameter_source import ParameterSource

        inspector.set_parameter_source(ParameterSource(controller))
        controller.modelChanged.connect(inspector.refresh_parameters)
        window.document.extrasChanged.connect(inspector.refresh_parameters)

    status = window.statusBar()
    run_note = QLabel()  # the run's state, seen from every tab; derived, so it never outlives the state
    run_note.setObjectName("runStateNote")
    run_note.setStyleSheet("QLabel { color: #7a5a00; font-weight: bold; padding: 0 6px; }")
    status.addPermanentWidget(run_note)

    def show_run_state(*_args) -> None:
        text = RUN_STATE_NOTES.get(controller.state, "")
        if window.document.read_only:
            text = f"{text} · design read-only" if text else "Design read-only"
        run_note.setText(text)
        run_note.setVisible(bool(text))

    controller.stateChanged.connect(show_run_state)
    window.document.readOnlyChanged.connect(show_run_state)
    show_run_state()
    controller.message.connect(lambda text: status.showMessage(text, 10_000))  # notices: saved, loaded, …

    add_close_guard = getattr(window, "add_close_guard", None)
    if add_close_guard is not None:
        add_close_guard(lambda: ask_to_stop_the_run(window, controller, panel))
    closing = getattr(window, "closing", None)  # MainWindow emits it once a close is accepted
    if closing is not None:
        closing.connect(controller.shutdown)

    cost_view = None
    stack_view = getattr(window, "stack_view", None)
    if stack_view is not None:  # each layer row shows its training health while a run goes
        show_health_badges(controller, window.document, stack_view.stack_model)
    if stack_view is not None and hasattr(window, "view_menu"):  # the designer window (not a bare host)
        from gui.cost_view import CostView

        cost_view = CostView(window, controller, sweep=panel.lr_finder)
    ui = TrainingUI(controller, panel, results, weights, predict=predict, cost_view=cost_view,
                    activations=activations, runs=runs, search=search, launch=launch)
    window.training = ui
    return ui


def show_health_badges(controller, document, stack_model) -> None:
    """Health samples of a run become badges on the stack's layer rows; they go when the run ends."""
    from gui.training.health_view import badges

    def show(sample) -> None:
        layers = document.spec.layers  # the design is read-only while the run goes: indices match its layers
        stack_model.set_badges({layers[index].id: badge for index, badge in badges(sample).items()
                                if index < len(layers)})

    controller.healthSampled.connect(show)
    controller.finished.connect(lambda *_: stack_model.set_badges({}))


def ask_to_stop_the_run(window, controller, panel) -> bool:
    """Before the window closes during a run: ask, with the run paused meanwhile; True to go on closing.

    Yes stops the run (the closing then waits for its thread); Cancel resumes it unless it was
    already paused. A run still loading its data, or winding down, ends without a question.
    """
    from gui.training import controller as states

    if controller.state not in (states.RUNNING, states.PAUSED):
        return True
    paused_here = controller.state == states.RUNNING
    if paused_here:
        controller.pause()
    where = panel.progress_state.position()
    box = QMessageBox(QMessageBox.Icon.Question, "LayerStudio",
                      f"A run is in progress{f' ({where})' if where else ''}. Stop it and quit?",
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, window)
    box.setInformativeText("The run is paused while you decide. To keep its weights, Cancel, then Stop (Shift+F5) "
                           "and File → Save Weights.")
    box.button(QMessageBox.StandardButton.Yes).setText("Stop and Quit")
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    if box.exec() == QMessageBox.StandardButton.Yes:
        controller.stop(evaluate=False)
        return True
    if paused_here:
        controller.resume()
    return False
