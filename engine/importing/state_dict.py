"""A design proposed from a bare state_dict: the module names in its keys and the shapes of its tensors.

Only layers with weights leave a trace in a state_dict, so the proposal is a chain of them in the file's order
(Linear, Conv1d/Conv2d with their groups, BatchNorm, LayerNorm/GroupNorm, PReLU, LSTM/GRU), a Flatten where a
convolution meets a Linear; activations, pooling, dropout, strides, padding and skip connections cannot be known,
and the proposal says so. Each proposed layer's id is its module name in the file (``features.0`` ->
``features-0``), so after the person completes the design the file's weights still find their layers
(``weights_by_layer_ids``; engine.io tries it when the keys do not fit as they are).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from engine import blocks
from engine.build import module_paths
from engine.controls import control
from engine.errors import SpecError
from engine.importing.mapping import Hint, Imported, Mapping, Note, Unmapped, finish, layers_from_modules
from engine.importing.source import INPUT_SHAPE_SETTING
from engine.io import WEIGHTS_SUFFIXES, read_state_dict, strip_wrapper_prefixes
from engine.spec import ID_PATTERN, NetworkSpec

WEIGHT_SUFFIXES = WEIGHTS_SUFFIXES
RECURRENT = {4: blocks.SequenceLSTM, 3: blocks.SequenceGRU}  # gates per hidden unit -> the class
UNKNOWABLE = ("a state_dict holds only the layers with weights, so activations, pooling, dropout, strides, padding "
              "and skip connections are not in it: the proposal is a chain of those layers; add the rest where the "
              "model had them, then load the weights")
Shapes = dict[str, tuple[int, ...]]


def propose_from_file(path: str | Path, input_shape: tuple[int, ...] | None = None) -> Imported:
    """The design proposed for the state_dict in ``path`` (.pt, .pth, .safetensors or a checkpoint)."""
    return propose(read_state_dict(path), Path(path).name, input_shape)


def propose(state_dict: dict[str, torch.Tensor], name: str, input_shape: tuple[int, ...] | None = None) -> Imported:
    """A chain of the layers ``state_dict``'s keys and shapes show, for ``input_shape`` (a first Linear's width
    when not given)."""
    modules: dict[str, Shapes] = {}
    for key, tensor in state_dict.items():
        prefix, _, tensor_name = strip_wrapper_prefixes(key).rpartition(".")
        modules.setdefault(prefix, {})[tensor_name] = tuple(tensor.shape)
    if not modules:
        raise SpecError(f"{name} holds no tensors: there is nothing to propose a design from")
    chain: list[nn.Module] = []
    locations: dict[int, tuple[str, str]] = {}
    mapping = Mapping(lambda module: locations.get(id(module), ("the file", type(module).__name__)))
    rank, width = 0, 0  # the sample's rank and channels (features) after the layers so far; 0: not known yet
    first_input: tuple | None = None
    for prefix, shapes in modules.items():
        where = f"keys {prefix}.*" if prefix else "the keys"
        what = ", ".join(f"{tensor} {'x'.join(map(str, shape)) or 'scalar'}" for tensor, shape in shapes.items()
                         if tensor != "num_batches_tracked")
        try:
            module, needs = _module(shapes, rank, width)
        except ValueError as exc:
            chain.append(Unmapped(where, what, str(exc)))
            continue
        if not locations:  # the first layer read: its input is the design's
            first_input = needs
        if isinstance(module, nn.Linear) and rank > 1:
            chain.append(nn.Flatten())
        locations[id(module)] = (where, what)
        layer_id = prefix.replace(".", "-") or "root"
        if ID_PATTERN.fullmatch(layer_id):
            mapping.hints[id(module)] = Hint(id=layer_id)
        chain.append(module)
        rank, width = _after(module, rank, width)
    shape = input_shape or first_input
    if shape is None or None in shape:
        raise SpecError(f"{name} starts with a layer whose input size the weights do not tell: give the shape of "
                        f"one input sample with {control(INPUT_SHAPE_SETTING)}, e.g. 3x32x32")
    mapping.notes.append(Note("the file", name, UNKNOWABLE, left_out=False))
    return finish(layers_from_modules(chain, mapping), tuple(shape), mapping, name)


def _module(shapes: Shapes, rank: int, width: int) -> tuple[nn.Module, tuple | None]:
    """The layer these tensors are the weights of (built on the meta device), and the input shape it implies when
    it comes first (None where the weights do not tell: a convolution's height and width); ValueError saying why
    none fits."""
    for test, make in PROPOSALS:
        if test(shapes):
            with torch.device("meta"):
                return make(shapes, rank, width)
    names = ", ".join(shapes)
    raise ValueError(f"tensors {names} fit no layer kind this proposes (Linear, Conv1d, Conv2d, BatchNorm, LayerNorm, "
                     "GroupNorm, PReLU, LSTM, GRU): add the layer by hand")


def _recurrent(shapes: Shapes, rank: int, width: int):
    hidden = shapes["weight_hh_l0"][1]
    gates = shapes["weight_ih_l0"][0] // hidden
    if gates not in RECURRENT or "bias_ih_l0" not in shapes:
        raise ValueError("these recurrent weights are not an LSTM's or GRU's with biases, the two the design has")
    layers = sum(1 for tensor in shapes if tensor.startswith("weight_ih_l") and not tensor.endswith("_reverse"))
    bidirectional = any(tensor.endswith("_reverse") for tensor in shapes)
    features = shapes["weight_ih_l0"][1]
    module = RECURRENT[gates](features, hidden, num_layers=layers, bidirectional=bidirectional)
    return module, (None, features)


def _conv(shapes: Shapes, rank: int, width: int):
    out, per_group, *kernel = shapes["weight"]
    if len(set(kernel)) != 1:
        raise ValueError(f"the kernel is {'x'.join(map(str, kernel))}, not square: the design's convolutions take "
                         "one size for every side")
    groups = width // per_group if width and width % per_group == 0 and out % (width // per_group) == 0 else 1
    cls = nn.Conv2d if len(kernel) == 2 else nn.Conv1d
    module = cls(per_group * groups, out, kernel[0], groups=groups, bias="bias" in shapes)
    return module, (per_group, *(None,) * len(kernel))


def _batchnorm(shapes: Shapes, rank: int, width: int):
    cls = nn.BatchNorm2d if rank == 3 else nn.BatchNorm1d
    return cls(shapes["running_mean"][0], affine="weight" in shapes), (shapes["running_mean"][0],)


def _norm(shapes: Shapes, rank: int, width: int):
    features = shapes["weight"][0]
    if rank >= 3:  # per channel: a GroupNorm (how many groups the weights do not tell: one)
        return nn.GroupNorm(1, features), None
    return nn.LayerNorm(features), (features,)


def _linear(shapes: Shapes, rank: int, width: int):
    out, features = shapes["weight"]
    return nn.Linear(features, out, bias="bias" in shapes), (features,)


def _prelu(shapes: Shapes, rank: int, width: int):
    return nn.PReLU(shapes["weight"][0]), None


def _has(*names: str, rank: int | None = None) -> Callable[[Shapes], bool]:
    return lambda shapes: all(name in shapes for name in names) and (rank is None or len(shapes["weight"]) == rank)


PROPOSALS = (  # in the order they are tried: the first whose tensors are there makes the layer
    (_has("weight_ih_l0", "weight_hh_l0"), _recurrent),
    (_has("running_mean", "running_var"), _batchnorm),
    (_has("weight", rank=4), _conv),
    (_has("weight", rank=3), _conv),
    (_has("weight", rank=2), _linear),
    (_has("weight", "bias", rank=1), _norm),
    (_has("weight", rank=1), _prelu),
)


def _after(module: nn.Module, rank: int, width: int) -> tuple[int, int]:
    """The sample's rank and width after ``module``."""
    if isinstance(module, nn.Linear):
        return 1, module.out_features
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return (2 if isinstance(module, nn.Conv1d) else 3), module.out_channels
    if isinstance(module, blocks.SequenceLSTM | blocks.SequenceGRU):
        return 1, module.hidden_size * (2 if module.bidirectional else 1)
    return rank, width


def weights_by_layer_ids(spec: NetworkSpec, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The file's tensors renamed to the design's keys through the layer ids a proposal gave (``features-0`` holds
    ``features.0.*``), wherever the design still has such a layer; other keys stay as they are."""
    paths = module_paths(spec)
    renamed = {}
    for key, tensor in state_dict.items():
        prefix, _, tensor_name = strip_wrapper_prefixes(key).rpartition(".")
        targets = paths.get(prefix.replace(".", "-") or "root", [])
        renamed[f"{targets[0]}.{tensor_name}" if len(targets) == 1 else key] = tensor
    return renamed
