"""Small dialogs: New design (empty or a template), help, about, and the save-file question."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.templates import list_templates
from engine.version import version

EMPTY = ""  # the "template" name of an empty design

# The help, one (title, HTML) section per part of the app; add a section where a feature is added.
HELP_SECTIONS = (
    ("Designing a network",
     "<p>Add layers from the <b>palette</b> on the left: double-click a layer or press Enter (it goes after the "
     "selected one), or drag it to a position in the stack. Drag rows to reorder them.</p>"
     "<p>Every row shows the layer's output shape and parameter count, updated as you edit. A red mark means "
     "the layer cannot take its input: the <b>inspector</b> on the right says why and how to fix it.</p>"
     "<p>The inspector edits the selected layer. For convolutions and pooling it shows the size formula with "
     "your numbers; for a hidden Linear it suggests sizes you can apply with one click.</p>"
     "<p>The <b>Code</b> tab shows the model as PyTorch prints it and as a standalone script.</p>"
     "<p><b>View → Cost View</b> (Ctrl+Shift+C) adds columns with what one training step costs per layer "
     "(forward and backward time, memory saved for the backward pass, output memory) at the Training tab's "
     "batch size and device, the largest rows tinted, and one line in the summary. It measures in the "
     "background, never during a run; after an edit the figures turn grey until they are measured again.</p>"),
    ("Training",
     "<p>The <b>Training</b> tab trains the design. Choose the data on the left (the bundled MNIST sample works "
     "offline; MNIST, FashionMNIST and CIFAR-10 load from a folder and can download into it; an image folder "
     "with one subfolder per class; a CSV file; synthetic regression) and the settings under it: both are saved "
     "with the design. <b>Load data</b> shows the data's size, shape and classes; when the design does not fit "
     "the data, <b>Fit design to data</b> sets the input shape and the last Linear's outputs, as one undo "
     "step.</p>"
     "<p><b>Train</b> (F5 from any tab, or the Train button at the bottom right) starts a run and shows this tab. "
     "It is off while the design has no layers or has an error, the settings have an error, or a run is going; "
     "its tooltip says which. <b>Pause</b> (F6) holds the run between batches and <b>Resume</b> continues it; "
     "<b>Stop</b> (Shift+F5) ends it at the next batch, then the test set is evaluated. Loss, accuracy and "
     "learning rate plot live; earlier runs stay dimmed for comparison.</p>"
     "<p><b>Find learning rate</b> trains a copy of the model for a few steps while the learning rate rises, "
     "then plots the loss against it with the suggestion marked (where the loss falls fastest). <b>Use it</b> "
     "sets Learning rate (Ctrl+Z takes it back); the design's weights are not touched.</p>"
     "<p>The design is read-only while a run goes: New, Open and the templates wait until it ends. Batch size "
     "shows a warning when it is too small for the design (a BatchNorm that sees one value per channel needs "
     "batches of 2 or more). Closing the window during a run asks first, with the run paused meanwhile.</p>"),
    ("Results",
     "<p>The <b>Results</b> tab shows the test loss, accuracy and macro F1 of the last run (the validation "
     "split's when the data has no test split); the confusion matrix as counts or, with <b>Row %</b>, each true "
     "class's share (click a cell to see its samples, <b>All samples</b> to go back); a table of samples, "
     "precision, recall and F1 per class; and sample predictions, wrong ones in red. A regression shows the "
     "RMSE and the predicted against the true values. <b>Evaluate</b> (F7) runs the current weights, trained or "
     "loaded, on the test split without training.</p>"
     "<p><b>Activations…</b> opens a window with what the weights make of the test sample in <b>Test sample</b> "
     "(clicking a cell or a picture picks its sample; double-clicking a picture opens it at once): the input, "
     "the first convolution's filters, the probabilities, each layer's output and a histogram of its weights. "
     "Predict has the same button for the input just predicted.</p>"
     "<p>Results belong to the design as trained. When you edit the design after the run, a banner says so; "
     "undo back to the trained design and it goes.</p>"),
    ("Predict",
     "<p>The <b>Predict</b> tab runs the current weights on one input: drop an image file on it or use "
     "<b>Open Image…</b> (File → Predict from Image), or type a row of numbers for tabular data. The input is "
     "prepared like the training data; the tab shows it as the model sees it and each class's probability.</p>"),
    ("Weights",
     "<p><b>File → Save Weights</b> writes the trained weights as a plain PyTorch <code>state_dict</code> "
     "(<code>.pt</code>) or a <code>.safetensors</code> file, with the keys of a hand-written "
     "<code>nn.Sequential</code> (<code>0.weight</code>, <code>0.bias</code>, …), so plain PyTorch code loads "
     "them. When you have edited the design since the run, Save Weights says so first, and can save the design "
     "as trained next to the weights (<code>weights.design.json</code> for <code>weights.pt</code>), so the "
     "weights always have their design.</p>"
     "<p><b>File → Load Weights</b> checks a file against the design before anything changes: weights that do "
     "not fit are not loaded at all, and a report lists every missing, unexpected or differently shaped "
     "tensor. The next run starts from loaded weights.</p>"),
    ("Checkpoints",
     "<p><b>Save a checkpoint every epoch to</b> (Training tab, under the settings; on by default) keeps the "
     "run on disk as it goes: next to the design file, or in LayerStudio's checkpoints folder for a design "
     "never saved. If LayerStudio or the computer stops during such a run, the next start offers to resume "
     "it.</p>"
     "<p><b>File → Save Checkpoint</b> saves the last run whole: weights, optimizer and schedule state, the "
     "epoch, the metric history, the design and the settings. <b>File → Resume from Checkpoint</b> continues "
     "it, plots included, on the same design (open that design first); raise Epochs to train past the epochs "
     "it was started with.</p>"),
)
MOUSE_AND_KEYS = (
    ("Double-click or Enter in the palette", "add the layer after the selection"),
    ("Drag from the palette or a row", "add or move layers"),
    ("Click in the confusion matrix", "show that cell's samples"),
)


class NewDesignDialog(QDialog):
    """Choose an empty design or one of the bundled templates."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("New design")
        self.resize(560, 460)
        self.list = QListWidget()
        self.list.setObjectName("templateList")
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setSpacing(2)
        self._add(EMPTY, "Empty design", "Start from an input of 1x28x28 and no layers.")
        for info in list_templates():
            dataset = f"  (data: {info.dataset})" if info.dataset else ""
            self._add(info.name, info.name, info.description + dataset)
        self.list.setCurrentRow(0)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.list.itemDoubleClicked.connect(lambda _: self.accept())
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Start from an empty design or from one of the networks of the course notes:"))
        layout.addWidget(self.list)
        layout.addWidget(buttons)

    def _add(self, name: str, title: str, description: str) -> None:
        item = QListWidgetItem(f"{title}\n{description}")
        item.setData(Qt.ItemDataRole.UserRole, name)
        item.setToolTip(description)
        self.list.addItem(item)

    def choice(self) -> str:
        """The chosen template name, or EMPTY."""
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else EMPTY


def shortcut_rows(window) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every keyboard shortcut of ``window``'s actions as (group, [(keys, what)]): each menu's, then the
    window's own (Train, Pause, Stop); read from the actions, so the help never lists a key that does not exist."""
    groups, seen = [], set()

    def rows_of(actions) -> list[tuple[str, str]]:
        rows = []
        for action in actions:
            if action.menu() is not None:
                rows += rows_of(action.menu().actions())
                continue
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty()]
            if not keys or action in seen:
                continue
            seen.add(action)
            name = action.text().replace("&", "").rstrip("…").strip()
            tip = action.statusTip() or action.toolTip().split(" (")[0]
            rows.append((" or ".join(keys), f"{name}: {tip[:1].lower()}{tip[1:]}" if tip and tip != name else name))
        return rows

    menu_bar = window.menuBar() if hasattr(window, "menuBar") else None
    for top in menu_bar.actions() if menu_bar is not None else ():
        if top.menu() is not None:
            groups.append((top.text().replace("&", ""), rows_of(top.menu().actions())))
    groups.append(("Training", rows_of(QWidget.actions(window))))  # MainWindow.actions is its dict of actions
    return [(title, rows) for title, rows in groups if rows]


def help_html(window) -> str:
    """The help text: the sections, then the keys (from the window's actions) and the mouse."""
    anchors = " · ".join(f"<a href='#s{i}'>{title}</a>" for i, (title, _) in enumerate(HELP_SECTIONS))
    parts = [f"<p>{anchors} · <a href='#keys'>Keyboard</a></p>"]
    parts += [f"<h2><a name='s{i}'></a>{title}</h2>{body}" for i, (title, body) in enumerate(HELP_SECTIONS)]
    rows = []
    for group, group_rows in shortcut_rows(window):
        rows.append(f"<tr><td colspan='2'><br><i>{html.escape(group)}</i></td></tr>")
        rows += [f"<tr><td><b>{html.escape(keys)}</b></td><td>&nbsp;&nbsp;{html.escape(what)}</td></tr>"
                 for keys, what in group_rows]
    rows.append("<tr><td colspan='2'><br><i>Mouse</i></td></tr>")
    rows += [f"<tr><td><b>{keys}</b></td><td>&nbsp;&nbsp;{what}</td></tr>" for keys, what in MOUSE_AND_KEYS]
    parts.append(f"<h2><a name='keys'></a>Keyboard</h2><table>{''.join(rows)}</table>")
    return "".join(parts)


def help_dialog(parent) -> QDialog:
    dialog = QDialog(parent)
    dialog.setWindowTitle("LayerStudio help")
    dialog.resize(700, 620)
    text = QTextBrowser()
    text.setObjectName("helpText")
    text.setOpenExternalLinks(True)
    text.setHtml(help_html(parent))
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    dialog.text = text
    return dialog


def show_about(parent) -> None:
    QMessageBox.about(
        parent, "About LayerStudio",
        f"<h3>LayerStudio {version()}</h3><p>Design a neural network by stacking layers, see every shape and "
        "parameter count live, train it and keep real PyTorch weights.</p><p>PySide6 · PyTorch</p>",
    )
