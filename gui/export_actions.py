"""File > Export: the open design as an ONNX model, a TorchScript module or a standalone Python script.

ONNX and TorchScript carry weights: those ``weights_source()`` gives, which the training GUI sets to the trained
(or loaded) weights while they fit the open design (gui.training.actions.weights_for_export); until then, the
weights a run starts from. The file dialog's title and the status line after the export say which. The work is
the engine's (engine.model_export, engine.export); what it refuses shows in a dialog naming the layer.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication

from engine.errors import LayerStudioError
from gui.file_dialogs import get_save_path


@dataclass(frozen=True)
class ExportWeights:
    """The weights an export writes: ``state`` (None: those a run with the default settings starts from), named
    shortly in the file dialog's title (``label``) and fully in the status line (``note``)."""

    state: Mapping | None
    label: str
    note: str


@dataclass(frozen=True)
class ExportFormat:
    """One entry of the Export menu: its text, tip, file filter and suffix, and the engine.model_export function
    that writes it with weights ("" for the script, which holds none)."""

    key: str
    text: str
    tip: str
    name_filter: str
    suffix: str
    writer: str = ""


FORMATS = (
    ExportFormat("onnx", "&ONNX…", "Write the design and its weights as an ONNX model for any batch size, for "
                 "onnxruntime and other runtimes", "ONNX model (*.onnx);;All files (*)", ".onnx", "export_onnx"),
    ExportFormat("torchscript", "&TorchScript…", "Write the design and its weights as a TorchScript module, which "
                 "torch.jit.load reads without LayerStudio", "TorchScript module (*.pt *.pth);;All files (*)", ".pt",
                 "export_torchscript"),
    ExportFormat("python", "&Python Script…", "Write the design as a standalone PyTorch script (no weights: it "
                 "loads a state_dict saved with Save Weights)", "Python script (*.py);;All files (*)", ".py"),
)


def untrained_weights(why: str = "") -> ExportWeights:
    """The engine's default weights, those a run with the default settings starts from; ``why`` not others."""
    from engine.model_export import untrained_weights_text

    return ExportWeights(None, "untrained weights", untrained_weights_text() + why)


class ExportActions(QObject):
    """The Export submenu's actions (``actions`` by format key) and the exports they run on ``window``."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.weights_source: Callable[[], ExportWeights] = untrained_weights
        self.actions: dict[str, QAction] = {}
        for fmt in FORMATS:
            action = QAction(fmt.text, self)
            action.setStatusTip(fmt.tip)
            action.setToolTip(fmt.tip)
            action.triggered.connect(lambda _=False, f=fmt: self.ask(f.key))
            self.actions[fmt.key] = action

    def ask(self, key: str) -> bool:
        """Ask where to write, then export; False when cancelled or refused."""
        fmt = _format(key)
        name = Path(self.window.document.display_name()).stem or "model"
        caption = f"Export {fmt.text.strip('&…')}"
        if fmt.writer:
            caption += f" with the {self.weights_source().label}"
        path = get_save_path(self.window, "exports", caption, fmt.name_filter, name + fmt.suffix, fmt.suffix)
        return bool(path) and self.export_to(key, path)

    def export_to(self, key: str, path: str | Path) -> bool:
        """Write the open design in format ``key`` to ``path``; a refusal shows in a dialog and writes nothing."""
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            summary = self._write(_format(key), path)
        except LayerStudioError as exc:
            problem = str(exc)
        else:
            problem = ""
        finally:
            QApplication.restoreOverrideCursor()
        if problem:
            self.window.show_error(f"Cannot export {Path(path).name}", problem)
            return False
        self.window.show_message(f"Exported {path}{summary}")
        return True

    def _write(self, fmt: ExportFormat, path: str | Path) -> str:
        """Export; the rest of the status line that says what was written."""
        spec = self.window.document.spec
        if fmt.writer:
            from engine import model_export

            weights = self.weights_source()
            return f" with {weights.note}: {getattr(model_export, fmt.writer)(spec, path, weights.state)}"
        from engine.export import SCRIPT_SUFFIXES, python_source
        from engine.files import check_output_path, write_text_atomically

        target = check_output_path(path, SCRIPT_SUFFIXES, "script")
        write_text_atomically(target, python_source(spec), "script")
        return f": a standalone PyTorch script; run it with: python {target.name}"


def _format(key: str) -> ExportFormat:
    return next(fmt for fmt in FORMATS if fmt.key == key)
