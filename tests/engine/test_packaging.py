"""A non-editable install must carry every package and data file the app uses."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_every_package_and_resource(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                    "-w", str(tmp_path)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("layerstudio-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("engine", "engine/layers", "gui", "gui/training", "resources"):  # subpackages included
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")}
        assert sources and sources <= names, f"{package} is missing from the wheel: {sorted(sources - names)}"
    for data in ("resources/templates/lenet.json", "resources/data/mnist-sample/train-images-idx3-ubyte.gz",
                 "resources/data/mnist-sample/README.md", "resources/styles/light.qss"):
        assert data in names
    assert any(n.startswith("resources/icons/") for n in names)
