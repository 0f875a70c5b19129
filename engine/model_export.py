"""A design as an ONNX model or a TorchScript module, with trained or starting weights.

Both exporters take the built ``nn.Sequential`` in eval mode (Dropout off, BatchNorm on its running statistics)
and a batch of two samples; the batch dimension stays free. ONNX goes through ``torch.onnx.export`` with
``dynamo=False`` (the TorchScript-based exporter: about a second for a template, where the dynamo exporter takes
several) at opset ``ONNX_OPSET``; TorchScript through ``torch.jit.trace`` (``torch.jit.script`` cannot compile the
app's Reshape or its sequence LSTM/GRU; tracing runs them all, and a design has no data-dependent branches).

What an exporter cannot handle is declared once in ``LIMITS`` and checked before anything is built, so the person
reads which layer (by its path, ``2 › branch 2 › 1``) and what to change. Any other exporter failure is traced
back to the deepest layer or group that fails on its own (``_locate``) and named the same way: never an
exporter traceback. The model is serialized in memory first, then written atomically, so a failure leaves any
earlier file at the path untouched.
"""
from __future__ import annotations

import importlib.util
import io
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from engine.build import build_model, module_paths
from engine.errors import SpecError
from engine.files import check_output_path, write_atomically
from engine.io import apply_state_dict, load_weights
from engine.parameters import initial_model
from engine.shapes import BYTES_PER_VALUE, ENTRY_ONLY, Analysis, LayerRow, analyze, format_shape
from engine.spec import NetworkSpec
from engine.training.config import TrainConfig

ONNX, TORCHSCRIPT = "ONNX", "TorchScript"
# Opset 17: LayerNorm is one LayerNormalization node, and every runtime in wide use runs it (onnxruntime 1.11+,
# TensorRT 8.6+, OpenVINO 2022.3+); later opsets add nothing the registry's layers need.
ONNX_OPSET = 17
ONNX_OPSETS = range(13, 21)  # what the TorchScript-based exporter writes (Unflatten needs 13)
ONNX_SUFFIXES = (".onnx",)
TORCHSCRIPT_SUFFIXES = (".pt", ".pth")
ONNX_MAX_BYTES = 2**31  # protobuf's limit on one message: the ONNX file holds the weights inline
EXAMPLE_BATCH = 2  # not 1: no exporter may mistake the batch dimension for a constant 1
INPUT_NAME, OUTPUT_NAME = "input", "output"

Weights = str | os.PathLike | Mapping[str, torch.Tensor] | None
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- what an exporter cannot handle

@dataclass(frozen=True)
class ExportLimit:
    """Layers of ``kinds`` that ``exporters`` cannot write: ``refuses(row, params)`` gives the reason and the fix
    (a clause that follows the layer's name), or "" when this layer exports."""

    exporters: tuple[str, ...]
    kinds: tuple[str, ...]
    refuses: Callable[[LayerRow, dict], str]


def _adaptive_pool_sizes(row: LayerRow, params: dict) -> str:
    """The ONNX exporter writes adaptive pooling as a fixed window, which needs the output to divide the input."""
    assert row.in_shape is not None
    height, width = row.in_shape[-2:]
    size = params["output_size"]
    if height % size == 0 and width % size == 0:
        return ""
    common = math.gcd(height, width)
    divisors = [str(d) for d in range(1, common + 1) if common % d == 0]
    choice = divisors[0] if len(divisors) == 1 else ", ".join(divisors[:-1]) + " or " + divisors[-1]
    return (f"has an input of {format_shape((height, width))} and output_size {size}: ONNX writes adaptive pooling "
            f"as a fixed window, which needs the height and width to be multiples of output_size; set output_size "
            f"to {choice}, or change the layers before it so the size divides")


def _same_padding_dilated(row: LayerRow, params: dict) -> str:
    """ONNX writes padding 'same' as auto_pad SAME_UPPER, which onnxruntime cannot combine with dilation."""
    if params["padding"] != "same" or params["dilation"] == 1:
        return ""
    total = params["dilation"] * (params["kernel_size"] - 1)
    fix = (f"set padding to {total // 2}, which gives the same output" if total % 2 == 0 else
           "set dilation to 1, or use an odd kernel_size and padding "
           f"{params['dilation'] * params['kernel_size'] // 2}")
    return (f"has padding 'same' with dilation {params['dilation']}, which ONNX writes as auto_pad SAME_UPPER and "
            f"onnxruntime cannot run: {fix}")


LIMITS = (
    ExportLimit((ONNX,), ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"), _adaptive_pool_sizes),
    ExportLimit((ONNX,), ("Conv1d", "Conv2d"), _same_padding_dilated),
)


def export_problems(spec: NetworkSpec, exporter: str, analysis: Analysis | None = None) -> list[str]:
    """One sentence per layer of ``spec`` that ``exporter`` (ONNX or TORCHSCRIPT) cannot write, in design order."""
    analysis = analysis or analyze(spec)
    problems = []
    for row in analysis.all_rows:
        for limit in LIMITS:
            if exporter in limit.exporters and row.kind in limit.kinds:
                reason = limit.refuses(row, spec.layer(row.layer_id).params)
                if reason:
                    problems.append(f"layer {row.path} ({row.label}) {reason}")
    if exporter == ONNX:
        size = (analysis.params + analysis.buffers) * BYTES_PER_VALUE
        if size >= ONNX_MAX_BYTES:
            problems.append(f"the weights take {size / 1e9:.1f} GB, and an ONNX file holds at most 2.1 GB of them "
                            "(protobuf's limit): export TorchScript, or make the design smaller")
    return problems


# --------------------------------------------------------------------------- modules ONNX gets in another form

class BatchFreeUnflatten(nn.Module):
    """nn.Unflatten as one reshape of the whole shape. Torch's ONNX exporter writes unflatten so that every layer
    after it that reads the batch size (Reshape, LSTM, GRU) reads the example's as a constant: other batch sizes
    then fail, or mix samples without a word. The batch read here stays a graph input's size."""

    def __init__(self, dim: int, sizes: tuple[int, ...]):
        super().__init__()
        self.dim, self.sizes = dim, tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = self.dim % x.dim()
        return x.reshape(*x.shape[:dim], *self.sizes, *x.shape[dim + 1:])


ONNX_STAND_INS: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {
    nn.Unflatten: lambda module: BatchFreeUnflatten(module.dim, module.unflattened_size),  # type: ignore[arg-type]
}


def _put_onnx_stand_ins(model: nn.Module) -> None:
    """Replace, in place, each module ONNX_STAND_INS names by its stand-in: the same computation, no weights."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            stand_in = ONNX_STAND_INS.get(type(child))
            if stand_in is not None:
                setattr(parent, name, stand_in(child))


# --------------------------------------------------------------------------- exporting

def export_onnx(spec: NetworkSpec, path: str | os.PathLike, weights: Weights = None, opset: int = ONNX_OPSET) -> str:
    """Write ``spec`` with ``weights`` (a weights file, a state_dict, or None for the weights a run starts from)
    as an ONNX model at ``opset``; returns a sentence saying what was written. SpecError (or WeightsError) names
    what stops it; nothing is written then."""
    if opset not in ONNX_OPSETS:
        raise SpecError(f"ONNX opset {opset} cannot be written: choose {ONNX_OPSETS[0]} to {ONNX_OPSETS[-1]} "
                        f"({ONNX_OPSET} runs everywhere)")

    def serialize(model: nn.Module, example: torch.Tensor) -> bytes:
        buffer = io.BytesIO()
        _put_onnx_stand_ins(model)
        torch.onnx.export(model, (example,), buffer,  # type: ignore[arg-type] # a file object works as well
                          dynamo=False, opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        return buffer.getvalue()

    analysis = _export(spec, path, weights, ONNX, ONNX_SUFFIXES, serialize)
    return f"ONNX opset {opset}: {_batch_text(spec, analysis, f'{INPUT_NAME!r} ', f'{OUTPUT_NAME!r} ')}"


def export_torchscript(spec: NetworkSpec, path: str | os.PathLike, weights: Weights = None) -> str:
    """Write ``spec`` with ``weights`` (as for ``export_onnx``) as a traced TorchScript module, which
    ``torch.jit.load`` reads without LayerStudio; returns a sentence saying what was written."""
    def serialize(model: nn.Module, example: torch.Tensor) -> bytes:
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.trace(model, (example,), check_trace=False), buffer)
        return buffer.getvalue()

    analysis = _export(spec, path, weights, TORCHSCRIPT, TORCHSCRIPT_SUFFIXES, serialize)
    return f"TorchScript, traced: {_batch_text(spec, analysis)}"


def _batch_text(spec: NetworkSpec, analysis: Analysis, input_name: str = "", output_name: str = "") -> str:
    """``input Nx1x28x28, output Nx10, any batch size N``."""
    return (f"input {input_name}Nx{format_shape(spec.input_shape)}, output {output_name}"
            f"Nx{format_shape(analysis.output_shape)}, any batch size N")


Serializer = Callable[[nn.Module, torch.Tensor], bytes]


def _export(spec: NetworkSpec, path: str | os.PathLike, weights: Weights, exporter: str, suffixes: tuple[str, ...],
            serialize: Serializer) -> Analysis:
    """Check the target, the design and its limits; build the model with its weights; serialize; write."""
    what = f"{exporter} model"
    target = check_output_path(path, suffixes, what, SpecError)
    if exporter == ONNX and importlib.util.find_spec("onnx") is None:
        raise SpecError("ONNX export needs the onnx package, which is not installed: pip install onnx")
    analysis = analyze(spec)
    if not analysis.ok:
        build_model(spec)  # its SpecError names the first broken layer
    problems = export_problems(spec, exporter, analysis)
    if problems:
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""
        raise SpecError(f"Cannot export to {exporter}: {problems[0]}{more}")
    model = _model(spec, weights).eval()
    example = example_input(spec)
    try:
        data = _quietly(serialize, model, example)
    except Exception as exc:  # the exporter's own failure: named by the layer it is in, its traceback logged
        log.warning("The %s exporter failed", exporter, exc_info=exc)
        raise SpecError(_locate(spec, analysis, model, example, serialize, exc, exporter)) from None
    write_atomically(target, lambda file: file.write(data), what)
    return analysis


def _model(spec: NetworkSpec, weights: Weights) -> nn.Sequential:
    """The built design with ``weights`` loaded (all or nothing), or the weights a run with the default seed
    starts from."""
    if weights is None:
        return initial_model(spec)
    with torch.device("meta"):  # no initialisation that the weights would overwrite (a second, for AlexNet)
        model = build_model(spec)
    model.to_empty(device="cpu")  # loading is all or nothing: a model that does not fit is never used
    if isinstance(weights, Mapping):
        apply_state_dict(model, dict(weights), spec)
    else:
        load_weights(model, weights, spec)
    return model


def untrained_weights_text() -> str:
    """How an export without weights names the weights it holds."""
    return f"untrained weights (those a run with seed {TrainConfig().seed} starts from)"


def example_input(spec: NetworkSpec, batch: int = EXAMPLE_BATCH) -> torch.Tensor:
    """A batch of zeros the design takes: token indices (int64) when it starts with an Embedding."""
    first = spec.first_leaf()
    dtype = torch.long if first is not None and first.kind == ENTRY_ONLY else torch.float32
    return torch.zeros(batch, *spec.input_shape, dtype=dtype)


def _quietly(serialize: Serializer, model: nn.Module, example: torch.Tensor) -> bytes:
    """Serialize without the exporters' deprecation and tracer warnings (the tests check the outputs instead).
    The graph torch's ONNX exporter prints when it fails goes to stderr, never into a command's output."""
    torch._C._jit_set_onnx_log_output_stream("stderr")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return serialize(model, example)


def _locate(spec: NetworkSpec, analysis: Analysis, model: nn.Module, example: torch.Tensor, serialize: Serializer,
            error: Exception, exporter: str) -> str:
    """A sentence naming the deepest layer or group that the exporter fails on by itself, with its reason.

    Each layer's module is exported alone on the input it gets in the whole model (recorded by forward hooks),
    top level first, then inside the first one that fails, and so on down."""
    paths = module_paths(spec)  # a layer in a repeated group has one module per copy
    modules = {path: model.get_submodule(path) for row in analysis.all_rows for path in paths.get(row.layer_id, ())}
    inputs: dict[str, torch.Tensor] = {}
    hooks = [module.register_forward_pre_hook(lambda _m, args, path=path: inputs.setdefault(path, args[0]))
             for path, module in modules.items()]
    try:
        with torch.no_grad():
            model(example)
    except Exception:  # the inputs recorded up to the layer that failed still find it
        log.warning("The model failed on the example batch while its exporter failure was traced", exc_info=True)
    finally:
        for hook in hooks:
            hook.remove()

    def failure(row: LayerRow) -> Exception | None:
        """The exporter's failure on the first copy of this layer that fails alone; None when none does."""
        for path in paths.get(row.layer_id, ()):
            if path in inputs:
                try:
                    _quietly(serialize, modules[path], inputs[path])
                except Exception as exc:
                    return exc
        return None

    found: tuple[LayerRow, Exception] | None = None
    rows = analysis.rows
    while True:
        failing = next(((row, exc) for row in rows if (exc := failure(row)) is not None), None)
        if failing is None:
            break
        found = failing
        rows = failing[0].children + failing[0].shortcut
    if found is None:
        return f"Cannot export to {exporter}: the exporter fails on the network as a whole ({_reason(error)})"
    row, exc = found
    return f"Cannot export to {exporter}: layer {row.path} ({row.label}) stops the exporter ({_reason(exc)})"


def _reason(exc: Exception) -> str:
    """The exporter's first sentence, without its advice to file a PyTorch issue."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.split(" Please feel free to request support")[0].split("  [Caused by")[0].strip()
    return text.removeprefix("Unsupported: ").rstrip(".")

