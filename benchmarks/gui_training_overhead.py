"""What training through the window costs: the same run headless and through the GUI's worker thread.

Four ways of making the same run (LeNet on the bundled MNIST sample by default), interleaved in
``--rounds`` rounds whose order rotates, so a change in the machine's load hits every way alike. A run is
the whole job a user starts: the training and the evaluation of the test split that follows it (as in the
window and ``layerstudio train``), so no way stops its clock while another part of the same work goes on:
  * main thread: ``Trainer(...).run()`` in the main thread of a fresh child process (see below);
  * plain thread: the same in a plain Python thread of this process;
  * thread+files: the plain thread also writing what a window run writes on its worker thread (the checkpoint
    every epoch, for crash recovery, and the run history), so the window's own cost shows apart from that work;
  * window: the app's main window (every tab, the Training tab in front) at 1280x800 on an offscreen screen,
    one window for all its runs, as in a session; its plots are cleared before each run (Clear previous runs),
    so every run draws the same.
Runs are recorded in a temporary LAYERSTUDIO_HOME and the window's settings in a temporary folder, never the
user's.

Headline figures, robust to a loaded machine (they count CPU time, not wall time):
  * the process's CPU seconds per 1,000 samples (every thread: trainer, torch's pool, the UI thread);
  * for the window, the UI thread's share of that CPU time (goal < 5%);
  * the ratios plain thread / window and thread+files / window of CPU per sample (goal >= 0.95).
Wall-clock samples/s and their window / headless ratios are printed too (median of the per-round
ratios, with the spread), but on a shared machine their noise is as large as the effect. Even CPU time per
sample varies by up to ±20% between identical runs on a shared virtual machine (the host's load slows the CPU),
so the main ratio comes with a bootstrap interval of its median: with few rounds it can be several per cent wide.
Responsiveness is measured in separate window runs: a 10 ms QTimer on the main thread records how
late it fires (goal p99 < 50 ms), next to the same timer with nothing training (the machine's own noise).

Why a child process for the main-thread baseline: with torch's default OpenMP settings, once one
thread owns an OpenMP pool, torch in other threads slowed down by half here (more OpenMP threads than
CPUs: libgomp stops spinning); a fresh process keeps the baselines independent. The script sets
the OpenMP wait policy before torch loads, as the app does (``engine.openmp``), so all sides run with
OMP_WAIT_POLICY=PASSIVE (a child inherits it).
Several invocations pool into one report: ``--save FILE`` keeps each round's figures (JSON), and ``--report FILE...``
prints the summary of every round in the files together, without running anything.
Usage: python benchmarks/gui_training_overhead.py [--template lenet] [--epochs 5] [--rounds 7] [--save FILE]
       python benchmarks/gui_training_overhead.py --report FILE [FILE ...]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["LAYERSTUDIO_HOME"] = tempfile.mkdtemp(prefix="layerstudio-overhead-")  # not the user's history
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's engine and gui

from engine.openmp import use_passive_wait  # first, as in the app

use_passive_wait()  # before torch loads

import numpy as np  # noqa: E402 - after use_passive_wait()
import torch  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.data import DataConfig, load_data  # noqa: E402
from engine.templates import load_design  # noqa: E402
from engine.training import TrainConfig, Trainer, warm_up  # noqa: E402
from gui.training.worker import EVALUATION_SAMPLES  # noqa: E402

TICK_MS = 10
SETTLE_MS = 300  # after a window run: its last repaints and layouts are part of its cost
WAYS = ("main thread", "plain thread", "thread+files", "window")


def process_cpu_s() -> float:
    """CPU seconds (user + system) of every thread of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Measure:
    """One run: samples trained, wall seconds, the process's CPU seconds and the UI thread's share of them."""

    samples: int
    wall_s: float
    cpu_s: float
    ui_cpu_s: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s

    @property
    def cpu_per_1000(self) -> float:
        return 1000.0 * self.cpu_s / self.samples

    @property
    def ui_share(self) -> float:
        return self.ui_cpu_s / self.cpu_s if self.cpu_s else 0.0

    @property
    def training_cpu_per_1000(self) -> float:
        """CPU seconds per 1,000 samples of every thread but the UI thread (the training's own)."""
        return 1000.0 * (self.cpu_s - self.ui_cpu_s) / self.samples


def headless_run(spec, bundle, config: TrainConfig, data_config: DataConfig | None = None) -> Measure:
    """Trainer construction, run and test evaluation, no Qt involved. With ``data_config``, the run also writes
    what a window run writes on its worker thread: its checkpoint every epoch (the crash recovery) and its run
    history."""
    started, cpu = time.perf_counter(), process_cpu_s()
    trainer = Trainer(spec, bundle, config)
    on_event = None
    if data_config is not None:
        from engine.history import RunHistory, RunRecorder
        from engine.paths import checkpoints_dir
        from engine.training.checkpoint import CheckpointWriter

        writer = CheckpointWriter(trainer, checkpoints_dir() / "benchmark.pt", extra={"data": data_config.to_dict()})
        recorder = RunRecorder(RunHistory(), "benchmark", spec, config.to_dict(), data_config.to_dict())

        def on_event(event) -> None:
            writer(event)
            recorder(event)
    result = trainer.run(on_event)
    trainer.evaluate("test", samples=EVALUATION_SAMPLES)  # what the window's worker evaluates after a run
    measure = Measure(trainer.train_samples * config.epochs, time.perf_counter() - started, process_cpu_s() - cpu)
    assert result.reason == "completed", result.message
    return measure


class LatenessProbe:
    """A 10 ms timer on the main thread; records how much later than due each tick fires."""

    def __init__(self):
        self.lateness_ms: list[float] = []
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.clock.start()
        self._last = 0.0
        self.timer.start()

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        self.lateness_ms.append(max(now - self._last - TICK_MS, 0.0))
        self._last = now

    def stop(self) -> None:
        self.timer.stop()


def open_main_window(template: str, data_config: DataConfig, bundle):
    """The app's main window with ``template`` open, its data already loaded (loading is no part of a run) and the
    Training tab in front; returns its training UI."""
    from scripts.shots import open_window, settle

    _app, window, ui = open_window(1280, 800)
    window.new_from(template)
    window.document.set_extra("data", data_config.to_dict())
    ui.controller.use_data(bundle, data_config)
    window.tabs.setCurrentWidget(ui.panel)
    settle(500)  # the window's first layout and paint are not a run's cost
    return ui


def window_run(ui, config: TrainConfig, probe: LatenessProbe | None = None) -> Measure:
    """One run started from the window (``probe`` ticking along), until its controller says it finished (after
    the test evaluation); the CPU time also counts the UI's work that follows (repaints, layouts: SETTLE_MS)."""
    controller = ui.controller
    ui.panel.plots.clear()
    ui.panel.window().document.set_extra("training", config.to_dict())
    QApplication.processEvents()
    loop = QEventLoop()
    end = {}

    def ended(_result) -> None:
        end["wall"] = time.perf_counter()
        QTimer.singleShot(SETTLE_MS, loop.quit)

    controller.finished.connect(ended)
    if probe is not None:
        probe.start()
    started, cpu, ui_cpu = time.perf_counter(), process_cpu_s(), time.thread_time()
    controller.start()
    loop.exec()
    end.update(cpu=process_cpu_s(), ui=time.thread_time())
    if probe is not None:
        probe.stop()
    controller.finished.disconnect(ended)
    samples = len(controller.data.train_x) * config.epochs
    return Measure(samples, end["wall"] - started, end["cpu"] - cpu, end["ui"] - ui_cpu)


def idle_lateness(seconds: float) -> LatenessProbe:
    """The same timer with nothing training: how late it fires from the machine's own load alone."""
    probe = LatenessProbe()
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    probe.start()
    loop.exec()
    probe.stop()
    return probe


def lateness_text(values: list[float]) -> str:
    late = np.array(values)
    return (f"{len(late)} ticks, lateness p50 {np.percentile(late, 50):.1f} ms, p99 {np.percentile(late, 99):.1f} ms, "
            f"worst {late.max():.1f} ms")


def in_thread(work):
    """Run ``work()`` in a plain Python thread and return its result."""
    out = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    thread.join()
    return out[0]


def main_thread_run(args) -> Measure:
    """Trainer.run in the main thread of a fresh child process (see the module docstring)."""
    command = [sys.executable, __file__, "--main-thread-only", "--template", args.template,
               "--epochs", str(args.epochs), "--device", args.device]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return Measure(**json.loads(done.stdout.strip().splitlines()[-1]))


def spread_text(values: list[float], fmt: str) -> str:
    """Median, range and the range as a share of the median."""
    median = statistics.median(values)
    low, high = min(values), max(values)
    return f"{format(median, fmt)}  [{format(low, fmt)} .. {format(high, fmt)}, ±{50 * (high - low) / median:.0f}%]"


def median_interval(values: list[float], draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95% bootstrap interval of the median of ``values`` (the rounds resampled with replacement): how far the
    median itself may be off, when single runs on a shared machine differ by tens of per cent."""
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(np.asarray(values), size=(draws, len(values)), replace=True), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def the_run(args) -> tuple:
    """(design, data settings, the measured run's settings, a one-epoch warm-up run's settings)."""
    spec, _extras = load_design(args.template)
    return (spec, DataConfig(source="mnist-sample"), TrainConfig(epochs=args.epochs, batch_size=64, device=args.device,
                                                                 seed=0),
            TrainConfig(epochs=1, batch_size=64, device=args.device))


def measure_rounds(args) -> dict:
    """Run the rounds; returns their figures as plain data (what ``--save`` writes and ``report`` reads)."""
    spec, data_config, config, short = the_run(args)

    # As in the app, this process's main thread runs no torch work: loading, warming up and training
    # happen in other threads.
    bundle = in_thread(lambda: load_data(data_config))
    in_thread(warm_up)
    in_thread(lambda: headless_run(spec, bundle, short))
    ui = open_main_window(args.template, data_config, bundle)
    app = QApplication.instance()
    window_run(ui, short)  # the first run pays one-off imports and caches

    ways = {
        "main thread": lambda: main_thread_run(args),
        "plain thread": lambda: in_thread(lambda: headless_run(spec, bundle, config)),
        "thread+files": lambda: in_thread(lambda: headless_run(spec, bundle, config, data_config)),
        "window": lambda: window_run(ui, config),
    }
    rounds: list[dict] = []
    lateness, idle = [], []
    load_before = load_text()
    for round_index in range(args.rounds):
        order = WAYS[round_index % len(WAYS):] + WAYS[:round_index % len(WAYS)]  # no way always runs first
        rounds.append({way: asdict(ways[way]()) for way in order})
        # responsiveness in a run of its own: the 100 Hz probe itself costs the worker a few per cent
        probe = LatenessProbe()
        window_run(ui, config, probe)
        lateness.extend(probe.lateness_ms)
        idle.extend(idle_lateness(rounds[-1]["window"]["wall_s"]).lateness_ms)
    ui.controller.shutdown()
    app.processEvents()
    return {"setup": f"{args.template} on {bundle.summary()}, {args.epochs} epochs, batch 64, {args.device}, "
                     f"torch threads {torch.get_num_threads()}",
            "load": f"before: {load_before};  after: {load_text()}",
            "rounds": rounds, "lateness_ms": lateness, "idle_lateness_ms": idle}


def report(runs: list[dict]) -> None:
    """Print the summary of every round of ``runs`` (one or more invocations' figures) together."""
    rounds = [one for run in runs for one in run["rounds"]]
    measures = {way: [Measure(**one[way]) for one in rounds] for way in WAYS}
    for run in runs:
        print(f"{run['setup']}: {len(run['rounds'])} rounds of the {len(WAYS)} ways, interleaved;  {run['load']}")
    if len(runs) > 1:
        print(f"  {len(rounds)} rounds pooled")
    print("  median  [min .. max, ±half the range as a share of the median]")
    print("  CPU seconds per 1,000 samples (all threads of the process; robust to load):")
    for way in WAYS:
        print(f"    {way:13s} {spread_text([m.cpu_per_1000 for m in measures[way]], '.3f')}")
    window = measures["window"]
    print(f"  UI thread's share of the window run's CPU time: "
          f"{spread_text([100 * m.ui_share for m in window], '.1f')} %   (goal < 5%)")
    print(f"    UI thread CPU per 1,000 samples "
          f"{spread_text([1000 * m.ui_cpu_s / m.samples for m in window], '.4f')} s, "
          f"per second of run {spread_text([1000 * m.ui_cpu_s / m.wall_s for m in window], '.0f')} ms")
    indices = range(len(rounds))
    cpu_ratio = [measures["plain thread"][i].cpu_per_1000 / window[i].cpu_per_1000 for i in indices]
    print(f"  CPU-per-sample ratio plain thread / window:  {spread_text(cpu_ratio, '.3f')}   (goal >= 0.95)")
    low, high = median_interval(cpu_ratio)
    print(f"    its median lies in {low:.3f} .. {high:.3f} "
          "(95% bootstrap interval over the rounds; more rounds narrow it)")
    cpu_ratio_files = [measures["thread+files"][i].cpu_per_1000 / window[i].cpu_per_1000 for i in indices]
    print(f"  CPU-per-sample ratio thread+files / window:  {spread_text(cpu_ratio_files, '.3f')}   (the same work: "
          f"the window's own cost)")
    training_ratio = [measures["thread+files"][i].cpu_per_1000 / window[i].training_cpu_per_1000 for i in indices]
    print(f"  thread+files / the window's threads but the UI thread: {spread_text(training_ratio, '.3f')}   (1: the "
          f"window does not slow the training itself)")
    cpu_ratio_main = [measures["main thread"][i].cpu_per_1000 / window[i].cpu_per_1000 for i in indices]
    print(f"  CPU-per-sample ratio main thread / window:   {spread_text(cpu_ratio_main, '.3f')}")
    print("  samples/s (wall clock; noisy on a shared machine):")
    for way in WAYS:
        print(f"    {way:13s} {spread_text([m.samples_per_s for m in measures[way]], ',.0f')}")
    for base in ("plain thread", "thread+files", "main thread"):
        ratios = [window[i].samples_per_s / measures[base][i].samples_per_s for i in indices]
        print(f"  wall ratio window / {base:12s} (per round): {spread_text(ratios, '.3f')}")
    lateness = [value for run in runs for value in run["lateness_ms"]]
    idle = [value for run in runs for value in run["idle_lateness_ms"]]
    print(f"  main-thread 10 ms timer while training: {lateness_text(lateness)}   (goal p99 < 50 ms)")
    print(f"  the same timer, nothing training:       {lateness_text(idle)}   (the machine's own noise)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default="lenet")
    parser.add_argument("--epochs", type=int, default=5)  # TrainConfig's default run
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--save", metavar="FILE", help="also write each round's figures to FILE (JSON)")
    parser.add_argument("--report", nargs="+", metavar="FILE", help="print the pooled summary of saved rounds")
    parser.add_argument("--main-thread-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        report([json.loads(Path(name).read_text()) for name in args.report])
        return
    if args.main_thread_only:  # the child process of main_thread_run
        spec, data_config, config, short = the_run(args)
        bundle = load_data(data_config)
        warm_up()
        headless_run(spec, bundle, short)
        measure = headless_run(spec, bundle, config)
        print(json.dumps({"samples": measure.samples, "wall_s": measure.wall_s, "cpu_s": measure.cpu_s}))
        return
    figures = measure_rounds(args)
    if args.save:
        Path(args.save).write_text(json.dumps(figures))
    report([figures])


if __name__ == "__main__":
    main()
