"""What analysis cannot know until a run starts: the data's values and the batch size.

``Trainer`` calls ``check`` before it builds the model, so a design that PyTorch would accept but
that fails on its first batch (a BatchNorm that would see a single value per channel, an Embedding
fed real numbers or token indices it has no vector for, a Linear fed integers) is refused with a
sentence instead of a torch error mid-run.
"""
from __future__ import annotations

from engine.controls import control
from engine.errors import TrainingError
from engine.layers import KINDS
from engine.shapes import Analysis
from engine.spec import NetworkSpec
from engine.tree import walk_paths


def check(spec: NetworkSpec, analysis: Analysis, data, batch_size: int, samples: int) -> None:
    """Raise TrainingError when ``spec`` cannot train on ``data`` (``samples`` training samples) in
    batches of ``batch_size``. ``analysis`` is ``analyze(spec)``, already free of errors."""
    _check_batch(analysis, batch_size, samples)
    _check_inputs(spec, data)


def batch_size_problem(analysis: Analysis, batch_size: int) -> str:
    """The sentence refusing ``batch_size`` for this design, '' when every layer can train on it (the Training
    tab shows it under Batch size; ``check`` raises it)."""
    row = _needing(analysis, batch_size)
    if row is None:
        return ""
    return (f"Batch size {batch_size} is too small for {_needs(row)}: set {control('training.batch_size')} to "
            f"{row.min_batch} or more.")


def _needing(analysis: Analysis, batch_size: int):
    """The first layer that cannot train on ``batch_size``: inside a group, the inner layer that needs more (the
    group itself when its automatic shortcut's BatchNorm does)."""
    row = next((r for r in analysis.rows if r.min_batch > batch_size), None)
    while row is not None:
        inner = next((r for r in row.children + row.shortcut if r.min_batch > batch_size), None)
        if inner is None:
            return row
        row = inner
    return None


def _needs(row) -> str:
    return f"layer {row.path} ({row.kind}), which needs training batches of {row.min_batch} or more " \
           f"(it normalises over the batch)"


def _check_batch(analysis: Analysis, batch_size: int, samples: int) -> None:
    """The largest batch a run cuts is min(batch size, samples); a trailing batch of one is skipped."""
    problem = batch_size_problem(analysis, batch_size)
    if problem:
        raise TrainingError(problem)
    row = _needing(analysis, min(batch_size, samples))
    if row is not None:
        raise TrainingError(f"The data has only {samples} training sample{'s' if samples != 1 else ''}, too few for "
                            f"{_needs(row)}: use more training samples.")


def first_leaf(spec: NetworkSpec):
    """(the layer the input meets first, its path): the first registry layer in design order, inside groups too;
    None for a design without one. It alone decides whether the inputs are token indices or real numbers."""
    return next(((layer, path) for layer, path in walk_paths(spec.layers) if not layer.is_group), None)


def _splits(data):
    return (("training", data.train_x), ("validation", data.val_x), ("test", data.test_x))


def _check_inputs(spec: NetworkSpec, data) -> None:
    """The first layer decides what the inputs must be: token indices in its range, or real numbers."""
    found = first_leaf(spec)
    if found is None:
        return
    first, where = found
    tokens = KINDS[first.kind].tokens
    for split, x in _splits(data):
        dtype = str(x.dtype).removeprefix("torch.")
        whole = not (x.is_floating_point() or x.is_complex()) and dtype != "bool"
        if tokens is None:
            if not (x.is_floating_point() or x.numel() == 0):
                raise TrainingError(f"Layer {where} ({first.kind}) takes real numbers but the {split} data holds "
                                    f"{dtype} values: convert the inputs to floating point.")
            continue
        count = tokens(first.params)
        if not whole:
            raise TrainingError(
                f"Layer {where} ({first.kind}) looks up integer token indices but the {split} data holds {dtype} "
                f"values: give it token data (whole numbers from 0 to {count - 1}), or start the design with a layer "
                f"that takes real numbers, such as Linear.")
        if x.numel():
            low, high = int(x.min()), int(x.max())
            if low < 0:
                raise TrainingError(f"Layer {where} ({first.kind}) looks up token indices from 0, but the {split} data "
                                    f"holds {low}: map the tokens to whole numbers from 0 to {count - 1}.")
            if high >= count:
                raise TrainingError(f"Layer {where} ({first.kind}) has vectors for tokens 0 to {count - 1}, but the "
                                    f"{split} data holds token {high}: set num_embeddings to {high + 1} or more.")
