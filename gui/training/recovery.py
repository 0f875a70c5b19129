"""Never lose a run: a checkpoint every epoch, and an offer to resume a run the app did not end cleanly.

- The option "Save a checkpoint every epoch to …" (on by default, kept in QSettings) makes each run
  write ``<design>.checkpoint.pt`` next to the design file, or into ``engine.paths.checkpoints_dir()``
  for a design without a file; the worker writes it through ``engine.training.checkpoint.CheckpointWriter``.
- While such a run goes, a marker (``interrupted-run.json`` in ``engine.paths.data_dir()``) names the
  design and the checkpoint. Any end of the run removes it; when it is still there at the next start,
  LayerStudio died during the run (a crash, a kill, a power cut), and the window offers to resume it.
"""
from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QCheckBox, QLabel, QMessageBox, QVBoxLayout, QWidget

from engine import paths
from engine.errors import LayerStudioError
from engine.files import read_json_object, write_text_atomically

log = logging.getLogger(__name__)

SETTING_KEY = "training/checkpointEveryEpoch"
MARKER_NAME = "interrupted-run.json"
MARKER_LIMIT = 64_000  # bytes; the marker is a few lines of JSON
CHECKPOINT_SUFFIX = ".checkpoint.pt"
CLOCK_SLACK_S = 2.0  # file times may be this coarse


# --------------------------------------------------------------------------- the option

def checkpoint_every_epoch() -> bool:
    return bool(QSettings().value(SETTING_KEY, True, type=bool))


def set_checkpoint_every_epoch(on: bool) -> None:
    QSettings().setValue(SETTING_KEY, bool(on))


def checkpoint_path_for(document) -> Path:
    """``<design stem>.checkpoint.pt`` next to the design file, or in the user's checkpoints folder."""
    if document.path is not None:
        return document.path.with_name(document.path.stem + CHECKPOINT_SUFFIX)
    name = re.sub(r"[^\w.-]+", "_", document.name or "").strip("._") or "untitled"
    return paths.checkpoints_dir() / f"{name}{CHECKPOINT_SUFFIX}"


def automatic_checkpoint(document) -> Path | None:
    """Where a run started now writes its checkpoints; None when the option is off."""
    if not checkpoint_every_epoch():
        return None
    path = checkpoint_path_for(document)
    if document.path is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("cannot create the checkpoints folder %s: %s", path.parent, exc)
    return path


class CheckpointOption(QWidget):
    """The check box "Save a checkpoint every epoch to …" and the file the checkpoints go to."""

    def __init__(self, document, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.check = QCheckBox("Save a checkpoint every epoch to:")
        self.check.setToolTip("Also every few minutes inside a long epoch. If LayerStudio or the computer stops "
                              "during a run, the next start offers to resume it from this file.")
        self.path_label = QLabel()
        self.path_label.setWordWrap(True)  # wraps after folder separators: a long path never widens the column
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.check)
        layout.addWidget(self.path_label)
        self.check.setChecked(checkpoint_every_epoch())
        self.check.toggled.connect(self._toggled)
        document.fileChanged.connect(self.refresh)
        self.refresh()

    def _toggled(self, on: bool) -> None:
        set_checkpoint_every_epoch(on)
        self.refresh()

    def refresh(self) -> None:
        path = str(checkpoint_path_for(self.document))
        self.path_label.setText(re.sub(r"([/\\])", "\\1\u200b", path))  # a zero-width space: a place to wrap
        self.path_label.setToolTip(path)
        self.path_label.setEnabled(self.check.isChecked())

    @property
    def path(self) -> str:
        """The file shown (the label's text without its wrapping points)."""
        return self.path_label.text().replace("\u200b", "")


# --------------------------------------------------------------------------- the marker

def marker_path() -> Path:
    return paths.data_dir() / MARKER_NAME


def write_marker(document, checkpoint: Path) -> None:
    """Note that a run writing ``checkpoint`` is going (a failure is logged: it must not stop the run)."""
    text = json.dumps({"design": str(document.path) if document.path is not None else None,
                       "name": document.display_name(), "checkpoint": str(checkpoint), "started": time.time()})
    try:
        write_text_atomically(marker_path(), text, "note of the running training", make_folder=True)
    except LayerStudioError as exc:
        log.warning("%s", exc)


def clear_marker() -> None:
    """The run ended (or the user declined to resume it): nothing to offer at the next start."""
    try:
        marker_path().unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot remove %s: %s", marker_path(), exc)


@dataclass(frozen=True)
class InterruptedRun:
    """A run that was going when LayerStudio last stopped, and the checkpoint it left."""

    design: Path | None
    name: str
    checkpoint_path: Path
    checkpoint: dict
    saved_at: float

    def question(self) -> str:
        done = self.checkpoint.get("epoch", 0)
        config = self.checkpoint.get("config") or {}
        epochs = config.get("epochs", "?") if isinstance(config, dict) else "?"
        saved = time.localtime(self.saved_at)
        when = time.strftime("%H:%M", saved) if saved[:3] == time.localtime()[:3] else \
            time.strftime("%d %b %H:%M", saved)
        return f"LayerStudio closed during a run of {self.name} (epoch {done} of {epochs}, saved at {when}). Resume it?"


def find_interrupted_run() -> InterruptedRun | None:
    """The run the marker names, when its checkpoint was written during that run and reads back."""
    from engine.io import read_checkpoint

    path = marker_path()
    if not path.exists():
        return None
    try:
        marker = read_json_object(path, "note of the running training", MARKER_LIMIT)
        design, name, checkpoint, started = (marker.get(key) for key in ("design", "name", "checkpoint", "started"))
        if not (isinstance(checkpoint, str) and isinstance(name, str) and isinstance(design, (str, type(None)))
                and isinstance(started, (int, float)) and math.isfinite(started)):
            raise LayerStudioError(f"{path} does not name a design and a checkpoint")
        checkpoint_path = Path(checkpoint)
        if not checkpoint_path.is_file() or checkpoint_path.stat().st_mtime < started - CLOCK_SLACK_S:
            raise LayerStudioError(f"the interrupted run left no checkpoint at {checkpoint_path}")
        saved_at = checkpoint_path.stat().st_mtime
        loaded = read_checkpoint(checkpoint_path)
    except (LayerStudioError, OSError) as exc:
        log.warning("not offering to resume the interrupted run: %s", exc)
        clear_marker()
        return None
    return InterruptedRun(Path(design) if design else None, name, checkpoint_path, loaded, saved_at)


# --------------------------------------------------------------------------- the offer

class RecoveryOffer(QObject):
    """The question at start-up: Resume opens the design (or rebuilds it from the checkpoint) and
    continues the run; Discard forgets it (the checkpoint file stays)."""

    def __init__(self, window, ui, run: InterruptedRun):
        super().__init__(window)
        self.window, self.ui, self.run = window, ui, run
        self.box = QMessageBox(QMessageBox.Question, "Resume the interrupted run?", run.question(),
                               QMessageBox.NoButton, window)
        self.box.setInformativeText(f"The checkpoint is {run.checkpoint_path}. Discard keeps the file and does not "
                                    "ask again.")
        self.resume_button = self.box.addButton("Resume", QMessageBox.AcceptRole)
        self.discard_button = self.box.addButton("Discard", QMessageBox.DestructiveRole)
        self.box.setDefaultButton(self.resume_button)
        self.box.buttonClicked.connect(self._answered)
        self.box.open()

    def _answered(self, button) -> None:
        if button is self.resume_button:
            self.resume()
        elif button is self.discard_button:
            clear_marker()

    def resume(self) -> bool:
        """Open the run's design and continue it from the checkpoint (problems are shown in a dialog)."""
        from engine.spec import NetworkSpec
        from gui.document import DesignFile

        clear_marker()  # the resumed run writes its own
        run, window = self.run, self.window
        if run.design is not None and run.design.is_file():
            if not window.open_file(run.design):
                return False
        else:
            try:
                spec = NetworkSpec.from_dict(run.checkpoint.get("spec"))
            except LayerStudioError as exc:
                self.ui.weights.show_problem("Could not resume the run", str(exc))
                return False
            extras = {key: dict(run.checkpoint[source]) for key, source in (("training", "config"), ("data", "data"))
                      if isinstance(run.checkpoint.get(source), dict)}
            window.load_design(DesignFile(spec, run.name, extras=extras))
        tabs = getattr(window, "tabs", None)
        if tabs is not None:
            tabs.setCurrentWidget(self.ui.panel)
        return self.ui.weights.resume_from(run.checkpoint_path)


def offer_to_resume(window, ui) -> RecoveryOffer | None:
    """At start-up: ask about a run LayerStudio did not end cleanly, if it left a checkpoint."""
    run = find_interrupted_run()
    return RecoveryOffer(window, ui, run) if run is not None else None
