"""What training through the window costs: the same run headless and through the GUI's worker thread.

Side by side, on the bundled MNIST sample, runs interleaved:
  * headless: ``Trainer(...).run()`` in the main thread (of a fresh child process, see below), and in a
    plain Python thread of this process;
  * window: the Training tab (controller, worker QThread, live plots) on an offscreen QApplication;
    in a second window run a 10 ms QTimer on the main thread records how late it fires (the UI's
    responsiveness; kept out of the speed run, as the 100 Hz probe itself costs a few per cent).
Prints samples/s of each, the window/headless ratio (goal >= 0.9), and the timer's worst and p99
lateness (goal p99 < 50 ms) next to the same timer's lateness with nothing training.

Why a child process for the main-thread baseline: with torch's default OpenMP settings, once one
thread owns an OpenMP pool, torch in other threads slowed down by half here (more OpenMP threads than
CPUs: libgomp stops spinning); a fresh process keeps the baselines independent. Everything imports
``engine`` before torch, as the app does, so all sides run with the engine's OMP_WAIT_POLICY=PASSIVE
(a child inherits it). Compare figures only within one run: the machine is shared.
Usage: python benchmarks/gui_training_overhead.py [--template lenet] [--epochs 5] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import engine  # noqa: E402,F401 - first, as in the app: it sets torch's OpenMP wait policy before torch loads

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.data import DataConfig, load_data  # noqa: E402
from engine.templates import load_design  # noqa: E402
from engine.training import Trainer, TrainConfig, warm_up  # noqa: E402

TICK_MS = 10


def headless_run(spec, bundle, config: TrainConfig) -> float:
    """Samples per second of Trainer construction + run, no Qt involved."""
    started = time.perf_counter()
    trainer = Trainer(spec, bundle, config)
    result = trainer.run()
    seconds = time.perf_counter() - started
    assert result.reason == "completed", result.message
    return trainer.train_samples * config.epochs / seconds


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


def window_run(spec, bundle, data_config: DataConfig, config: TrainConfig,
               probe: LatenessProbe | None = None) -> float:
    """Samples per second through the Training tab's controller and worker (with ``probe`` ticking along)."""
    from gui.document import DesignDocument
    from gui.training.controller import TrainingController
    from gui.training.panel import TrainingPanel

    doc = DesignDocument(spec)
    doc.extras = {"data": data_config.to_dict(), "training": config.to_dict()}
    controller = TrainingController(doc, warm_up=False)
    controller.use_data(bundle, data_config)
    panel = TrainingPanel(controller)
    panel.resize(1280, 800)
    panel.show()
    loop = QEventLoop()
    times = {}
    controller.runEnded.connect(lambda _result: (times.setdefault("end", time.perf_counter()), loop.quit()))
    if probe is not None:
        probe.start()
    times["start"] = time.perf_counter()
    controller.start()
    loop.exec()
    if probe is not None:
        probe.stop()
    controller.shutdown()
    samples = len(bundle.train_x) * config.epochs
    panel.close()
    panel.deleteLater()
    return samples / (times["end"] - times["start"])


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


def main_thread_baseline(args) -> float:
    """Samples/s of Trainer.run in the main thread of a fresh child process (see the module docstring)."""
    command = [sys.executable, __file__, "--main-thread-only", "--template", args.template,
               "--epochs", str(args.epochs), "--device", args.device]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default="lenet")
    parser.add_argument("--epochs", type=int, default=5)  # TrainConfig's default run
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--main-thread-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    spec, _extras = load_design(args.template)
    data_config = DataConfig(source="mnist-sample")
    config = TrainConfig(epochs=args.epochs, batch_size=64, device=args.device, seed=0)

    if args.main_thread_only:  # the child process of main_thread_baseline
        bundle = load_data(data_config)
        warm_up()
        headless_run(spec, bundle, TrainConfig(epochs=1, batch_size=64, device=args.device))
        print(headless_run(spec, bundle, config))
        return

    # As in the app, this process's main thread runs no torch work: loading, warming up and training
    # happen in other threads.
    app = QApplication.instance() or QApplication([])
    bundle = in_thread(lambda: load_data(data_config))
    in_thread(warm_up)
    in_thread(lambda: headless_run(spec, bundle, TrainConfig(epochs=1, batch_size=64, device=args.device)))

    main_thread, plain_thread, window, lateness, idle = [], [], [], [], []
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every side alike
        main_thread.append(main_thread_baseline(args))
        plain_thread.append(in_thread(lambda: headless_run(spec, bundle, config)))
        speed = window_run(spec, bundle, data_config, config)
        window.append(speed)
        # responsiveness in a run of its own: the 100 Hz probe itself costs the worker a few per cent
        probe = LatenessProbe()
        window_run(spec, bundle, data_config, config, probe)
        lateness.extend(probe.lateness_ms)
        idle.extend(idle_lateness(len(bundle.train_x) * args.epochs / speed).lateness_ms)
    app.processEvents()

    m, t, w = (statistics.median(v) for v in (main_thread, plain_thread, window))

    def runs(values):
        return ", ".join(f"{v:,.0f}" for v in values)

    print(f"{args.template} on {bundle.summary()}, {args.epochs} epochs, batch 64, {args.device}, "
          f"torch threads {torch.get_num_threads()}, {args.repeats} runs each (median); "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  headless Trainer.run, main thread (child process) {m:9,.0f} samples/s   (runs: {runs(main_thread)})")
    print(f"  headless Trainer.run, plain thread                {t:9,.0f} samples/s   (runs: {runs(plain_thread)})")
    print(f"  through the window's worker thread                {w:9,.0f} samples/s   (runs: {runs(window)})")
    print(f"  ratio window / headless main thread                {w / m:9.3f}   (goal >= 0.9)")
    print(f"  ratio window / headless plain thread               {w / t:9.3f}")
    print(f"  main-thread 10 ms timer while training: {lateness_text(lateness)}   (goal p99 < 50 ms)")
    print(f"  the same timer, nothing training:       {lateness_text(idle)}   (the machine's own noise)")


if __name__ == "__main__":
    main()
