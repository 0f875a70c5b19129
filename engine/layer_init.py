"""Per-layer initialisation: how one layer's weight and bias start, chosen in the design.

``METHODS`` declares each method once (its name in design files, its label, the ``torch.nn.init`` call and the
one number it takes); the design (``LayerSpec.init``), the run's start (``apply_layer_inits``, after the
global setting), the exported script (``init_source``) and the inspector's combo box all read it. The bounds on the
std and the value are the global settings' (``TrainConfig.init_std`` / ``init_value``). No torch import here
until a model is filled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from engine.errors import SpecError
from engine.schema import number, setting_named
from engine.training.config import TrainConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from engine.spec import NetworkSpec

TENSORS = ("weight", "bias")  # the parameter tensors a layer's init names (engine.layers: LayerKind.init)
STD = setting_named(TrainConfig, "init_std")
VALUE = setting_named(TrainConfig, "init_value")


@dataclass(frozen=True)
class InitMethod:
    """One initialisation: ``torch.nn.init.<call>`` with ``keywords`` and, when ``takes`` is "std" or "value",
    that number. Methods that need fans (xavier, kaiming) fill tensors of 2 or more dimensions only."""

    name: str
    label: str
    call: str = ""  # "" keeps PyTorch's own initialisation
    takes: str = ""  # "std", "value" or ""
    needs_fans: bool = False
    keywords: tuple[tuple[str, Any], ...] = ()

    def arguments(self, init: TensorInit) -> dict[str, Any]:
        """The keyword arguments of the torch call for ``init`` (the same for the app and the exported script)."""
        taken = {"std": {"std": init.std}, "value": {"val": init.value}, "": {}}[self.takes]
        return {**dict(self.keywords), **taken}


_RELU = (("nonlinearity", "relu"),)  # the global 'kaiming' setting's choice, and torch's numbers for a=0
METHODS: dict[str, InitMethod] = {m.name: m for m in (
    InitMethod("default", "PyTorch default"),
    InitMethod("xavier_uniform", "Xavier uniform", "xavier_uniform_", needs_fans=True),
    InitMethod("xavier_normal", "Xavier normal", "xavier_normal_", needs_fans=True),
    InitMethod("kaiming_uniform", "Kaiming uniform", "kaiming_uniform_", needs_fans=True, keywords=_RELU),
    InitMethod("kaiming_normal", "Kaiming normal", "kaiming_normal_", needs_fans=True, keywords=_RELU),
    InitMethod("normal", "Normal (std)", "normal_", takes="std"),
    InitMethod("constant", "Constant (value)", "constant_", takes="value"),
    InitMethod("zeros", "Zeros", "zeros_"),
)}
# The global setting (TrainConfig.init) keeps its short names in settings files; here is what each one runs.
GLOBAL_METHODS = {"xavier": "xavier_uniform", "kaiming": "kaiming_uniform", "normal": "normal",
                  "constant": "constant"}


def methods_for(dims: int) -> tuple[InitMethod, ...]:
    """The methods a tensor of ``dims`` dimensions takes (xavier and kaiming need 2 or more)."""
    return tuple(m for m in METHODS.values() if dims >= 2 or not m.needs_fans)


@dataclass(frozen=True)
class TensorInit:
    """How one tensor starts: a method of ``METHODS`` and its number (std for normal, value for constant).
    The number a method does not take keeps its default, so equal inits compare equal."""

    method: str = "default"
    std: float = field(default=STD.default)
    value: float = field(default=VALUE.default)

    def __post_init__(self):
        if self.method not in METHODS:
            raise SpecError(f"Unknown initialisation {self.method!r}: choose one of {', '.join(METHODS)}")
        takes = METHODS[self.method].takes
        object.__setattr__(self, "std", float(self.std) if takes == "std" else STD.default)
        object.__setattr__(self, "value", float(self.value) if takes == "value" else VALUE.default)

    @property
    def is_default(self) -> bool:
        return self.method == "default"

    @property
    def spec(self) -> InitMethod:
        return METHODS[self.method]

    def label(self) -> str:
        """``Normal (std 0.05)``, ``Xavier uniform``: for rows and tooltips."""
        takes = self.spec.takes
        if not takes:
            return self.spec.label
        return f"{self.spec.label.split(' (')[0]} ({takes} {getattr(self, takes):g})"

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"method": self.method}
        if self.spec.takes:
            out[self.spec.takes] = getattr(self, self.spec.takes)
        return out


@dataclass(frozen=True)
class LayerInit:
    """A layer's per-tensor initialisation (weight and bias); the default keeps PyTorch's (or the global setting's)."""

    weight: TensorInit = TensorInit()
    bias: TensorInit = TensorInit()

    def chosen(self, tensors: dict[str, int]) -> dict[str, TensorInit]:
        """The non-default inits of the tensors in ``tensors`` (what the layer has), in weight, bias order."""
        return {name: getattr(self, name) for name in TENSORS if name in tensors and not getattr(self, name).is_default}

    def with_tensor(self, name: str, init: TensorInit) -> LayerInit:
        return replace(self, **{name: init})

    def to_dict(self, tensors: dict[str, int]) -> dict:
        """The JSON form of the chosen inits (empty when none is: the design file then has no ``init`` field)."""
        return {name: init.to_dict() for name, init in self.chosen(tensors).items()}

    @classmethod
    def from_dict(cls, data: Any, tensors: dict[str, int], where: str) -> LayerInit:
        """Check a design file's ``init`` field against the layer's tensors ({name: dims}); SpecError naming the
        layer and field otherwise."""
        if not isinstance(data, dict):
            raise SpecError(f"{where} field 'init' must be an object such as "
                            f"{{\"weight\": {{\"method\": \"xavier_uniform\"}}}}, got {_show(data)}")
        if not tensors and data:
            raise SpecError(f"{where} field 'init' is for layers with weights; this layer has none: remove it")
        for name in data:
            if name not in tensors:
                has = " and ".join(repr(t) for t in tensors)
                raise SpecError(f"{where} field 'init' names {_show(name)}, but this layer has only {has}: remove it")
        return cls(**{name: _tensor_init(data[name], tensors[name], where, f"init.{name}") for name in data})


def _tensor_init(data: Any, dims: int, where: str, path: str) -> TensorInit:
    """One tensor's init from a design file; ``where`` names the layer, ``path`` the field (``init.weight``)."""
    if not isinstance(data, dict):
        raise SpecError(f"{where} field '{path}' must be an object such as {{\"method\": \"normal\", \"std\": 0.02}}, "
                        f"got {_show(data)}")
    method = data.get("method")
    if "method" not in data:
        raise SpecError(f"{where} field '{path}' is missing 'method' (one of {', '.join(METHODS)})")
    if not isinstance(method, str) or method not in METHODS:
        raise SpecError(f"{where} field '{path}.method' must be one of {', '.join(METHODS)}, got {_show(method)}")
    spec = METHODS[method]
    if spec.needs_fans and dims < 2:
        choices = ", ".join(m.name for m in methods_for(dims))
        raise SpecError(f"{where} field '{path}.method' is {method}, which needs a tensor of 2 or more dimensions, "
                        f"and the {path.split('.')[-1]} has {dims}: choose one of {choices}")
    for key in data:
        if key != "method" and key != spec.takes:
            takes = f"only {spec.takes!r}" if spec.takes else "no number"
            raise SpecError(f"{where} field '{path}' has {_show(key)}, but method {method} takes {takes}: remove it")
    numbers = {}
    if spec.takes:
        declared = STD if spec.takes == "std" else VALUE
        numbers[spec.takes] = _number(data.get(spec.takes, declared.default), declared,
                                      f"{where} field '{path}.{spec.takes}'")
    return TensorInit(method, **numbers)


def _number(value: Any, declared, where: str) -> float:
    """A finite number within the global setting's declared range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{where} must be a number, got {_show(value)}")
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value) or not declared.low <= value <= declared.high:
        raise SpecError(f"{where} must be a number between {number(declared.low)} and {number(declared.high)}, "
                        f"got {_show(value)}")
    return value


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- filling tensors

def fill(tensor: torch.Tensor, init: TensorInit) -> None:
    """Fill ``tensor`` in place by ``init`` (from torch's global generator); the default leaves it as it is."""
    from torch import nn

    if not init.is_default:
        getattr(nn.init, init.spec.call)(tensor, **init.spec.arguments(init))


def apply_layer_inits(model: nn.Sequential, spec: NetworkSpec) -> None:
    """Fill each layer's tensors by the design's per-layer choices, in design order (inner layers of groups too,
    every copy of a repeated group), weight before bias (the exported script's order). ``model`` is
    ``build_model(spec)``; the run calls this after the global setting."""
    from engine.build import module_paths

    paths = module_paths(spec)
    for layer in spec.all_layers():
        for name, init in layer.chosen_init().items():
            for path in paths[layer.id]:
                fill(getattr(model.get_submodule(path), name), init)


def init_source(spec: NetworkSpec, literal) -> list[str]:
    """The exported script's lines that apply each layer's init to ``model`` (``nn.init`` calls whose arguments
    are written by ``literal(value, layer_id, name)``, which checks they read back as the same constants)."""
    from engine.build import module_expression, module_paths

    paths = module_paths(spec)
    lines = []
    for layer in spec.all_layers():
        for name, init in layer.chosen_init().items():
            arguments = "".join(f", {key}={literal(value, layer.id, key)}"
                                for key, value in init.spec.arguments(init).items())
            for path in paths[layer.id]:
                lines.append(f"nn.init.{init.spec.call}({module_expression(path)}.{name}{arguments})"
                             f"  # {layer.id} {name}")
    return lines
