"""File-menu actions for weights and checkpoints: Save/Load weights, Save checkpoint, Resume from checkpoint.

Each action opens a file dialog; the ``*_to``/``*_from`` methods take the path
directly (what the dialogs call, and what tests call). Problems are shown in
a non-blocking message box kept in ``last_dialog`` so tests can read and close it.
Weights of a design edited since they were trained are saved only after a question
that says so, and can take that design along (``lenet.pt`` + ``lenet.design.json``).
"""
from __future__ import annotations

import html

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox, QWidget

from engine.errors import LayerStudioError, WeightsError
from engine.io import CHECKPOINT_SUFFIXES, WEIGHTS_SUFFIXES
from gui.file_dialogs import get_open_path, get_save_path
from gui.training import controller as states
from gui.training.provenance import clock, companion_design_path, weights_note

WEIGHTS_FILTER = "PyTorch state_dict (*.pt *.pth);;safetensors (*.safetensors);;All files (*)"
SAVE_WEIGHTS_TIP = "Save the trained state_dict (.pt or .safetensors)"
MAX_REPORT_LINES = 16
CHECKPOINT_FILTER = "LayerStudio checkpoint (*.pt *.ckpt);;All files (*)"


def weights_for_export(controller):
    """What File > Export writes (gui.export_actions): the trained or loaded weights while they fit the open design,
    else the untrained ones, saying why the others were left out."""
    from gui.export_actions import ExportWeights, untrained_weights

    origin = controller.model_origin
    if controller.model is None or origin is None:
        return untrained_weights(": train the design, or load weights, to export trained ones")
    if not origin.fits(controller.document.spec):
        return untrained_weights(f": the {origin.made} weights are those of {origin.describe()}, and "
                                 f"{origin.since(controller.document)}")
    when = clock(origin.at)
    return ExportWeights(controller.model.state_dict(), f"weights {origin.made} at {when}",
                         f"the weights {origin.made} at {when}")


class WeightsActions(QObject):
    """The four weight/checkpoint QActions, enabled according to the controller's state."""

    def __init__(self, controller, parent_widget: QWidget):
        super().__init__(parent_widget)
        self.controller = controller
        self.parent_widget = parent_widget
        self.last_dialog: QMessageBox | None = None
        self.save_weights = self._action("Save Weights…", SAVE_WEIGHTS_TIP, self._ask_save_weights)
        self.load_weights = self._action("Load Weights…", "Load a state_dict into the design (checked first; "
                                         "nothing changes if it does not fit)", self._ask_load_weights)
        self.save_checkpoint = self._action("Save Checkpoint…", "Save the run (weights, optimizer, epoch, history) "
                                            "to continue it later", self._ask_save_checkpoint)
        self.resume_checkpoint = self._action("Resume from Checkpoint…", "Continue a saved run and its plots",
                                              self._ask_resume)
        self.actions = [self.save_weights, self.load_weights, self.save_checkpoint, self.resume_checkpoint]
        controller.stateChanged.connect(self.update_enabled)
        controller.modelChanged.connect(self.update_enabled)
        controller.document.changed.connect(self.update_enabled)
        self.update_enabled()

    def _action(self, text: str, tip: str, slot) -> QAction:
        action = QAction(text, self)
        action.setStatusTip(tip)
        action.setToolTip(tip)
        action.triggered.connect(slot)
        return action

    def update_enabled(self, *_args) -> None:
        idle = self.controller.state == states.IDLE
        self.save_weights.setEnabled(idle and self.controller.model is not None)
        self.load_weights.setEnabled(idle)
        self.save_checkpoint.setEnabled(idle and self.controller.trainer is not None)
        self.resume_checkpoint.setEnabled(idle)
        note = self.stale_note()
        tip = f"{SAVE_WEIGHTS_TIP}. {note}" if note else SAVE_WEIGHTS_TIP
        self.save_weights.setToolTip(tip)
        self.save_weights.setStatusTip(tip)

    def stale_note(self) -> str:
        """Why the weights do not fit the open design ('' when they do)."""
        return weights_note(self.controller.model_origin, self.controller.document)

    # ------------------------------------------------------------------ dialogs
    def _ask_save_weights(self) -> None:
        caption, with_design = "Save weights", False
        if self.stale_note():
            with_design = self.ask_about_stale_weights()
            if with_design is None:
                return
            caption = f"Save the weights of {self.controller.model_origin.describe()}"
        path = get_save_path(self.parent_widget, "weights", caption, WEIGHTS_FILTER, "weights.pt",
                             WEIGHTS_SUFFIXES[0])
        if path:
            self.save_weights_to(path, with_design)

    def ask_about_stale_weights(self) -> bool | None:
        """The design changed since training: save with that design (True), the weights alone (False), or not (None)."""
        origin = self.controller.model_origin
        which = "not of the design open now" if origin.replaced(self.controller.document) else "before your edits"
        box = QMessageBox(QMessageBox.Question, "Save Weights",
                          f"These are the weights of {origin.describe()}, {which}.",
                          QMessageBox.Yes | QMessageBox.No | QMessageBox.Cancel, self.parent_widget)
        example = companion_design_path("weights.pt").name
        box.setInformativeText(f"They fit that design, not the one you see now. Save that design next to them "
                               f"too (for weights.pt: {example}), so the weights always have their design?")
        box.button(QMessageBox.Yes).setText("Save with Its Design…")
        box.button(QMessageBox.No).setText("Save Weights Only…")
        box.setDefaultButton(QMessageBox.Yes)
        answer = box.exec()
        return None if answer == QMessageBox.Cancel else answer == QMessageBox.Yes

    def _ask_load_weights(self) -> None:
        path = get_open_path(self.parent_widget, "weights", "Load weights", WEIGHTS_FILTER)
        if path:
            self.load_weights_from(path)

    def _ask_save_checkpoint(self) -> None:
        path = get_save_path(self.parent_widget, "checkpoints", "Save checkpoint", CHECKPOINT_FILTER, "checkpoint.pt",
                             CHECKPOINT_SUFFIXES[0])
        if path:
            self.save_checkpoint_to(path)

    def _ask_resume(self) -> None:
        path = get_open_path(self.parent_widget, "checkpoints", "Resume from checkpoint", CHECKPOINT_FILTER)
        if path:
            self.resume_from(path)

    # ------------------------------------------------------------------ work
    def save_weights_to(self, path, with_design: bool = False) -> bool:
        """Save the weights; ``with_design`` also saves the design they fit next to them (``*.design.json``)."""
        def save(target) -> None:
            self.controller.save_weights(target)
            if with_design:
                written = self.controller.model_origin.design.write(companion_design_path(target))
                self.controller.message.emit(f"Weights saved to {target}, and the design they fit to {written.name}")

        return self._attempt("Could not save the weights", save, path)

    def load_weights_from(self, path) -> bool:
        return self._attempt("The weights were not loaded", self.controller.load_weights, path)

    def save_checkpoint_to(self, path) -> bool:
        return self._attempt("Could not save the checkpoint", self.controller.save_checkpoint, path)

    def resume_from(self, path) -> bool:
        return self._attempt("Could not resume the run", self.controller.resume_checkpoint, path)

    def _attempt(self, title: str, work, path) -> bool:
        try:
            work(path)
        except LayerStudioError as exc:
            self.show_problem(title, str(exc), detailed=isinstance(exc, WeightsError) and "\n" in str(exc))
            return False
        except OSError as exc:
            self.show_problem(title, f"{path}: {exc.strerror or exc}")
            return False
        return True

    def show_problem(self, title: str, text: str, detailed: bool = False) -> QMessageBox:
        """A non-blocking warning; a multi-line report shows its first line and the rest in a text box."""
        if self.last_dialog is not None:
            self.last_dialog.close()
        first, _, rest = text.partition("\n")
        box = QMessageBox(QMessageBox.Warning, title, first if detailed else text, QMessageBox.Ok,
                          self.parent_widget)
        if detailed and rest:
            lines = rest.splitlines()
            shown = "\n".join(lines[:MAX_REPORT_LINES]) + ("\n…" if len(lines) > MAX_REPORT_LINES else "")
            box.setInformativeText(f"<pre>{html.escape(shown)}</pre>")
            if len(lines) > MAX_REPORT_LINES:
                box.setDetailedText(rest)
            box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.last_dialog = box
        box.open()
        return box
