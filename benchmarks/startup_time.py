"""Start-up time of the window, against the time Python needs just to import torch.

Each measurement is a fresh subprocess, timed from before it is started until
it reports the main window shown and painted (first start: the LeNet
template, empty settings in a temporary folder). The window never imports
torch at start-up (the Code tab and block expansion load it later), so it
should show in a fraction of ``python -c "import torch"``.
Run: ``python benchmarks/startup_time.py``.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5

WINDOW = textwrap.dedent("""
    import os, sys
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[1])
    from gui.app import configure_application
    app = QApplication(sys.argv[:1])
    configure_application(app)
    from gui.main_window import MainWindow
    window = MainWindow()
    window.show()
    def shown():  # runs once the event loop has shown and painted the window
        print("shown", len(window.document.spec.layers), "torch" in sys.modules, flush=True)
        app.quit()
    QTimer.singleShot(0, shown)
    app.exec()
""")


def time_until_line(args: list[str], marker: str) -> tuple[float, str]:
    """Seconds from starting the process to the line that starts with ``marker`` (or to exit)."""
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = ""
    for line in process.stdout:
        if line.startswith(marker):
            break
    elapsed = time.perf_counter() - start
    process.wait()
    return elapsed, line.strip()


def main() -> None:
    window_times, torch_times = [], []
    line = ""
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as settings:
            seconds, line = time_until_line([sys.executable, "-c", WINDOW, settings], "shown")
        window_times.append(seconds)
        seconds, _ = time_until_line([sys.executable, "-c", "import torch; print('done')"], "done")
        torch_times.append(seconds)
    _, layers, torch_loaded = line.split()
    window_s, torch_s = statistics.median(window_times), statistics.median(torch_times)
    print(f"median of {REPEATS} fresh processes each")
    print(f"window shown (LeNet, {layers} layers; torch imported at start-up: {torch_loaded}): {window_s:.2f} s")
    print(f'python -c "import torch":                                        {torch_s:.2f} s')
    print(f"ratio window / import torch: {window_s / torch_s:.2f}")


if __name__ == "__main__":
    main()
