"""The bundled templates (resources/templates/*.json) and reading design files by name or path.

A template is an ordinary design file with a short ``name``, a one-line
``description`` and the ``data`` section naming the dataset it suits, so the
window, the CLI and the tests all load templates and user designs the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import LayerStudioError, SpecError
from engine.files import read_json_object
from engine.settings import check_sections
from engine.spec import DESIGN_SUFFIXES, MAX_DESIGN_BYTES, NetworkSpec
from resources import TEMPLATES

# Simplest first, then the CNN chapter in the order Dive into Deep Learning teaches it, then recurrent networks.
TEACHING_ORDER = (
    "linear-regression", "softmax-regression", "mlp", "mlp-784-500", "autoencoder", "cnn", "cifar-cnn",
    "lenet", "lenet-d2l", "lenet-bn", "alexnet", "vgg", "nin", "googlenet", "resnet18", "rnn-mnist", "birnn-mnist",
)


@dataclass(frozen=True)
class TemplateInfo:
    """What a menu or `layerstudio templates` shows about one template."""

    name: str
    description: str
    dataset: str
    path: Path


def _template_paths() -> dict[str, Path]:
    return {path.stem: path for path in TEMPLATES.glob("*.json")}


def _teaching_rank(name: str) -> tuple[int, str]:
    rank = TEACHING_ORDER.index(name) if name in TEACHING_ORDER else len(TEACHING_ORDER)
    return rank, name


def list_templates() -> list[TemplateInfo]:
    """Every bundled template, simplest first."""
    paths = _template_paths()
    infos = []
    for name in sorted(paths, key=_teaching_rank):
        data = _read_json(paths[name])
        dataset = data.get("data") or {}
        infos.append(TemplateInfo(name, data.get("description", ""), dataset.get("source", ""), paths[name]))
    return infos


def template_path(name: str) -> Path:
    """The file of a bundled template; SpecError listing the known names otherwise."""
    paths = _template_paths()
    if name not in paths:
        known = ", ".join(sorted(paths, key=_teaching_rank))
        raise SpecError(f"unknown template {name!r}: known templates are {known}; "
                        "or give the path of a .json design file")
    return paths[name]


def load_template(name: str) -> NetworkSpec:
    """The network of a bundled template."""
    return load_design(name)[0]


def load_design(name_or_path: str | Path) -> tuple[NetworkSpec, dict]:
    """A design from a template name or a .json path: the spec and the file's whole dict.

    The dict lets callers read the sections other modules own ("training", "data", "name").
    A string is a path when it ends in .json, names a folder or exists as a file (a FIFO or device too, to
    be refused as such); otherwise a template name.
    """
    path = Path(name_or_path)
    if not (isinstance(name_or_path, Path) or is_design_path(name_or_path)):
        path = template_path(str(name_or_path))
    data = _read_json(path)
    try:
        spec = NetworkSpec.from_dict(data)
        check_sections(data)
    except LayerStudioError as exc:
        raise SpecError(f"{path.name}: {exc}") from None
    return spec, data


def is_design_path(name: str) -> bool:
    """Whether ``name`` means a file rather than a template: it ends in .json, has a folder in it, or
    exists as something other than a folder (a FIFO or device too, to be refused as such)."""
    path = Path(name)
    return (path.suffix.lower() in DESIGN_SUFFIXES or len(path.parts) > 1
            or (path.exists() and not path.is_dir()))


def _read_json(path: Path) -> dict:
    """A design file's top-level object; SpecError with one sentence for anything that cannot be one
    (a folder, a FIFO or device, over MAX_DESIGN_BYTES, not UTF-8, bad or too deeply nested JSON)."""
    return read_json_object(path, "design", MAX_DESIGN_BYTES, SpecError)
