"""Data files shipped with LayerStudio: templates, the bundled MNIST sample, icons, styles."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TEMPLATES = ROOT / "templates"
MNIST_SAMPLE = ROOT / "data" / "mnist-sample"
