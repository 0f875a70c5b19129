"""What `layerstudio` prints: --version, progress on a terminal and in a pipe, tables that fit, capitals.

Progress and table width are checked on real pipes and real pseudo-terminals, in-process and
through `python -m engine.cli` in a fresh process.
"""
from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import sys
import time

import pytest

from engine import version as version_module
from engine.cli import PIPE_WIDTH, main, wrap
from engine.shapes import analyze
from engine.templates import list_templates, load_design, load_template
from engine.train_command import ProgressPrinter
from engine.training import BatchEnd, EpochEnd
from tests.engine.test_cli import table_rows
from tests.processes import ROOT, command, process_env, run

QUICK = ["--data", "mnist-sample", "--limit", "300", "--batch-size", "64"]
needs_pty = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def declared_version() -> str:
    """The version pyproject.toml declares (its first ``version = "..."`` line is the [project] one)."""
    return re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M).group(1)


# --------------------------------------------------------------------------- --version

def test_version_is_the_one_pyproject_declares(tmp_path):
    assert version_module.version() == declared_version()
    done = run("engine.cli", "--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == f"LayerStudio {declared_version()}\n" and done.stderr == ""


def test_version_without_an_installed_package_is_read_from_the_source_tree(tmp_path, monkeypatch):
    assert version_module.source_version() == declared_version()       # this checkout's pyproject.toml
    # not installed under that name: the metadata lookup fails and the checkout's pyproject.toml answers
    monkeypatch.setattr(version_module, "DISTRIBUTION", "layerstudio-never-installed")
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\nname = "layerstudio-never-installed"\nversion = "7.1.2"\n', encoding="utf-8")
    monkeypatch.setattr(version_module, "PYPROJECT", other)
    assert version_module.version() == "7.1.2"
    other.write_text('[project]\nname = "someone-else"\nversion = "9.9"\n', encoding="utf-8")
    assert version_module.version() == version_module.UNKNOWN         # another project's file is not ours
    other.write_text("[project\nname = ", encoding="utf-8")
    assert version_module.version() == version_module.UNKNOWN         # nor is a broken one


# --------------------------------------------------------------------------- progress: terminal or not

def batch(epoch: int, step: int, steps: int = 100) -> BatchEnd:
    return BatchEnd(epoch=epoch, step=step, steps_per_epoch=steps, global_step=step, losses=(0.5,), lr=0.1,
                    samples_per_s=1000.0)


class Clock:
    """Seconds that move only when the test says so (no sleeping)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def read_available(fd: int) -> bytes:
    seen = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # a pseudo-terminal whose other end closed
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_a_pipe_gets_plain_progress_lines_at_most_every_interval():
    read_fd, write_fd = os.pipe()
    clock = Clock()
    with os.fdopen(write_fd, "w") as pipe:
        printer = ProgressPrinter(out=io.StringIO(), err=pipe, clock=clock)
        assert not printer.live
        for step, at in ((1, 0), (2, 1), (3, printer.PLAIN_SECONDS - 1), (4, printer.PLAIN_SECONDS + 1),
                         (5, printer.PLAIN_SECONDS + 2), (6, 2 * printer.PLAIN_SECONDS + 2)):
            clock.now = 1000.0 + at
            printer(batch(1, step))
        clock.now += 1
        printer(batch(1, 100))                              # the epoch's last step: the epoch line says it
        printer(EpochEnd(1, 1, 0.5, 0.9, 0.4, 0.91, 0.1, 3.0))
    text = os.read(read_fd, 65536).decode()
    os.close(read_fd)
    assert "\r" not in text
    assert [re.match(r"Epoch 1: step (\d+)/100, loss 0\.5000, 1,000 samples/s$", line).group(1)
            for line in text.splitlines()] == ["1", "4", "6"]
    assert printer.out.getvalue().startswith("Epoch 1/1  train loss 0.5")


@needs_pty
def test_a_terminal_gets_a_bar_redrawn_in_place_and_cleared_before_each_line():
    import pty

    master, slave = pty.openpty()
    clock = Clock()
    out = io.StringIO()
    with os.fdopen(slave, "w") as terminal:
        printer = ProgressPrinter(out=out, err=terminal, clock=clock)
        assert printer.live
        for step in range(1, 11):
            clock.now += 1
            printer(batch(1, step, steps=10))
        printer(EpochEnd(1, 1, 0.5, 0.9, 0.4, 0.91, 0.1, 3.0))
        shown = read_available(master).decode()
    os.close(master)
    assert shown.startswith("\rEpoch 1 [") and shown.count("\rEpoch 1 [") == 10
    assert re.search(r"\rEpoch 1 \[#+\] 10/10  loss 0\.5000  1,000 samples/s", shown)     # full at the last step
    assert shown.endswith("\r")                                     # the bar wiped before the epoch line
    assert "\n" not in shown and out.getvalue().startswith("Epoch 1/1")


def test_train_through_a_pipe_writes_no_carriage_return(tmp_path):
    done = run("engine.cli", "train", "softmax-regression", *QUICK, "--epochs", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\r" not in done.stdout
    progress = done.stderr.splitlines()
    assert progress and all(re.match(r"Epoch [12]: step \d/5, loss \d", line) for line in progress), progress
    assert [line.split("  ")[0] for line in done.stdout.splitlines() if line.startswith("Epoch")] == \
        ["Epoch 1/2", "Epoch 2/2"]


@needs_pty
def test_train_on_a_terminal_draws_the_bar(tmp_path):
    import pty

    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(command("engine.cli", "train", "softmax-regression", *QUICK, "--epochs", "1"),
                                   cwd=tmp_path, env=process_env(), stdout=subprocess.PIPE, stderr=slave)
    finally:
        os.close(slave)
    try:
        out, _ = process.communicate(timeout=180)
        shown = read_available(master).decode()
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, shown
    assert "\rEpoch 1 [" in shown and "/5  loss " in shown
    assert "\r" not in out.decode() and "Epoch 1/1  train loss" in out.decode()


# --------------------------------------------------------------------------- tables fit the width

def note_of(row) -> str:
    """What the summary's last column holds for an analysis row."""
    if row.error:
        return f"Error: {row.error}"
    if row.warning:
        return f"Warning: {row.warning}" + (f"; {row.formula}" if row.formula else "")
    return row.formula


@pytest.mark.parametrize("name", [t.name for t in list_templates()])
def test_every_template_summary_fits_100_columns_and_keeps_every_formula(name, capsys):
    assert main(["summary", name]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= PIPE_WIDTH, max(lines, key=len)
    spec = load_template(name)
    analysis = analyze(spec)
    rows = table_rows(lines[1:])[1:len(analysis.all_rows) + 1]         # header, then one row per layer, nested
    for printed, row in zip(rows, analysis.all_rows, strict=True):      # a group's layers right below it
        assert printed.rstrip().endswith(note_of(row)), (printed, note_of(row))  # wrapped, not cut


def test_templates_list_fits_100_columns_and_keeps_each_description(capsys):
    assert main(["templates"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= PIPE_WIDTH
    rows = table_rows(lines)[1:]
    assert [row.split()[0] for row in rows] == [t.name for t in list_templates()]
    for row, info in zip(rows, list_templates(), strict=True):
        assert row.endswith(info.description)


def test_a_long_error_and_a_long_name_wrap_within_the_width(tmp_path, capsys):
    spec, data = load_design("cnn")
    spec = spec.with_param("conv2", "kernel_size", 20)
    name = " ".join(["A design with a rather long name,"] * 8) + " end"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({**spec.to_dict(), "name": name}))
    assert main(["summary", str(path)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert max(map(len, lines)) <= PIPE_WIDTH
    title_lines = lines[:next(i for i, line in enumerate(lines) if line.split()[:2] == ["#", "Layer"])]
    assert " ".join(title_lines) == f"{name}: input 1x28x28, {len(spec.layers)} layers"
    broken = next(row for row in table_rows(lines[len(title_lines):]) if row.startswith("!"))
    assert broken.endswith(note_of(analyze(spec).rows[4]))
    assert err.count("\n") == 1                                       # the error line itself stays one line


def test_wrap_breaks_after_clauses_then_words_and_loses_nothing():
    formula = "H = floor((224 + 2*1 - 11)/4) + 1 = 54; W = floor((224 + 2*1 - 11)/4) + 1 = 54; shortcut: identity"
    assert wrap(formula, 40) == ["H = floor((224 + 2*1 - 11)/4) + 1 = 54;", "W = floor((224 + 2*1 - 11)/4) + 1 = 54;",
                                 "shortcut: identity"]
    long_word = "x" * 95 + " tail"
    assert wrap(long_word, 40) == ["x" * 40, "x" * 40, "x" * 15 + " tail"]
    assert wrap("short", 40) == ["short"]
    for text in (formula, long_word):
        assert " ".join(wrap(text, 40)).replace("x x", "xx") == text


@needs_pty
@pytest.mark.parametrize("columns", [80, 140])
def test_summary_on_a_terminal_fits_the_terminal(tmp_path, columns):
    import pty

    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(command("engine.cli", "summary", "resnet18"), cwd=tmp_path,
                                   env=process_env(COLUMNS=str(columns)), stdout=slave, stderr=subprocess.PIPE)
    finally:
        os.close(slave)
    try:
        deadline = time.monotonic() + 120
        shown = b""
        while process.poll() is None and time.monotonic() < deadline:
            shown += read_available(master)
        shown += read_available(master)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = shown.decode().replace("\r\n", "\n").splitlines()
    assert process.returncode == 0 and lines[0].startswith("resnet18: input 3x32x32")
    assert max(map(len, lines)) <= columns
    assert (max(map(len, lines)) > PIPE_WIDTH) == (columns > PIPE_WIDTH)  # a wide terminal is used, not 100


# --------------------------------------------------------------------------- capitals and file names

def test_every_line_of_a_training_run_starts_with_a_capital(tmp_path, capsys):
    weights, checkpoint = tmp_path / "w.pt", tmp_path / "ck.pt"
    assert main(["train", "softmax-regression", *QUICK, "--epochs", "1", "--save", str(weights),
                 "--checkpoint", str(checkpoint)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines() + err.splitlines()
    assert lines and all(line[:1].isupper() for line in lines), [line for line in lines if not line[:1].isupper()]
    assert f"Weights saved to {weights}" in lines and f"Checkpoint saved to {checkpoint}" in lines

    # a run with nothing left to do says so, naming the flag that would give it more
    assert main(["train", "softmax-regression", *QUICK, "--epochs", "1", "--resume", str(checkpoint)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "Nothing to train: already trained 1 of 1 epochs: raise --epochs to go on" in out
    assert all(line[:1].isupper() for line in out), out


def test_an_error_line_keeps_the_file_name_as_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my design.JSON").write_text("{not json")
    assert main(["summary", "my design.JSON"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: my design.JSON is not valid JSON") and err.count("\n") == 1

    assert main(["export", "lenet", "--python", "out.py"]) == 0
    assert capsys.readouterr().out.startswith("Wrote out.py: nn.Sequential of 9 layers")
