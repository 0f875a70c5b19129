"""The check of a checkpoint against the trainer that is to continue it.

A checkpoint file is read with ``weights_only=True``, so it cannot carry code, but its tensors and
numbers still reach torch's fused optimizer kernels, which trust them: a momentum buffer of another
shape corrupts the heap (a segfault), a step count of the wrong kind aborts a run. So
``validate_checkpoint`` checks every field against the live model, optimizer and data before anything
is loaded, and refuses with a sentence that names the field (``optimizer.state[3].exp_avg``).

This module knows the trainer only through its attributes (``model``, ``optimizer``, ``config``,
``train_samples``, ...), so it depends on no other module of ``engine.training`` but the format.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from engine.errors import WeightsError
from engine.shapes import format_shape
from engine.training.checkpoint_format import (
    _PARSE_ERRORS,
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    REQUIRED_FIELDS,
    _boolean,
    _integer,
    _list,
    _mapping,
    _number,
    _reason,
    _refuse,
    _show,
    _tensor,
)


# What each optimizer keeps per parameter: key -> (needed for this param group?, values never negative?).
# "step" is a 0-d count; every other entry has its parameter's shape.
def _always(group: dict) -> bool:
    return True


_OPTIMIZER_STATE: dict[type[torch.optim.Optimizer], dict[str, tuple[Callable[[dict], bool], bool]]] = {
    torch.optim.SGD: {"momentum_buffer": (lambda g: g["momentum"] != 0, False)},
    torch.optim.Adam: {"step": (_always, True), "exp_avg": (_always, False), "exp_avg_sq": (_always, True),
                       "max_exp_avg_sq": (lambda g: g["amsgrad"], True)},  # AdamW is an Adam
    torch.optim.RMSprop: {"step": (_always, True), "square_avg": (_always, True),
                          "momentum_buffer": (lambda g: g["momentum"] > 0, False),
                          "grad_avg": (lambda g: g["centered"], False)},
    torch.optim.Adagrad: {"step": (_always, True), "sum": (_always, True)},
    torch.optim.Adadelta: {"step": (_always, True), "square_avg": (_always, True), "acc_delta": (_always, True)},
    torch.optim.Adamax: {"step": (_always, True), "exp_avg": (_always, False), "exp_inf": (_always, True)},
}
# How the optimizer runs here (fused kernels, foreach loops): the live trainer's choice, never the file's.
_IMPLEMENTATION_SETTINGS = ("foreach", "fused", "capturable", "differentiable")
# Ranges of the optimizer settings (low, high, low excluded); other numeric settings only need to be finite.
_SETTING_RANGES = {
    "lr": (0.0, 1e6, False), "momentum": (0.0, 1.0, False), "dampening": (0.0, 1.0, False),
    "alpha": (0.0, 1.0, False), "rho": (0.0, 1.0, False), "betas": (0.0, 1.0, False), "eps": (0.0, 1.0, True),
    "weight_decay": (0.0, 1e6, False), "lr_decay": (0.0, 1e6, False), "initial_accumulator_value": (0.0, 1e6, False),
}


def validate_checkpoint(checkpoint, trainer) -> None:
    """Check every field of ``checkpoint`` against ``trainer`` (its model, optimizer, data and settings);
    WeightsError naming the first field that does not fit. Reads only: nothing is changed."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError("This is not a LayerStudio checkpoint: pick a file saved as a checkpoint by LayerStudio.")
    version = checkpoint.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= CHECKPOINT_VERSION:
        raise WeightsError(f"Checkpoint version {_show(version)} is not one this LayerStudio reads: "
                           "update LayerStudio.")
    for name in REQUIRED_FIELDS:
        if name not in checkpoint:
            _refuse(name, "is missing, so the checkpoint is incomplete")
    saved_config = _check_config(checkpoint["config"], trainer)
    epoch = _integer("epoch", checkpoint["epoch"], 0, 10**6)
    global_step = _integer("global_step", checkpoint["global_step"], epoch)
    _check_weights("model", checkpoint["model"], trainer, exact_keys=False)
    _check_optimizer(checkpoint["optimizer"], trainer, global_step)
    _check_schedule(checkpoint["schedule"], trainer, global_step)
    _check_history(checkpoint["history"], trainer, epoch)
    _check_rng(checkpoint["rng"], trainer)
    _check_spec(checkpoint.get("spec"))
    _check_data(checkpoint.get("data"))
    _check_scaler(checkpoint.get("scaler"))
    _check_progress(checkpoint.get("progress"), trainer, saved_config, global_step)
    _check_best(checkpoint.get("best"), epoch)
    if checkpoint.get("best_weights") is not None:
        _check_weights("best_weights", checkpoint["best_weights"], trainer, exact_keys=True)
    if checkpoint.get("loss_watch") is not None:
        _check_loss_watch(checkpoint["loss_watch"])


def _check_config(config, trainer):
    _mapping("config", config)
    try:
        saved = type(trainer.config).from_dict(dict(config))
    except _PARSE_ERRORS as exc:
        _refuse("config", f"is not valid ({_reason(exc)})")
    if saved.optimizer != trainer.config.optimizer:
        raise WeightsError(f"The checkpoint was trained with optimizer {saved.optimizer!r} but this run uses "
                           f"{trainer.config.optimizer!r}: choose {saved.optimizer!r} to resume it.")
    return saved


def _check_weights(field: str, state, trainer, exact_keys: bool) -> None:
    """A state_dict that fits the model: names, shapes, and values of the right kind (finite floats)."""
    from engine.io import check_fit, strip_wrapper_prefixes

    _mapping(field, state)
    for key, value in state.items():
        if not isinstance(key, str):
            _refuse(field, f"has a key {_show(key)}; state_dict keys are names such as '0.weight'")
        if not isinstance(value, torch.Tensor):
            _refuse(f"{field}[{_show(key)}]", f"must be a tensor but is {_show(value)}")
    own = trainer.model.state_dict()
    if exact_keys and set(state) != set(own):
        _refuse(field, "does not name exactly the tensors of this design's model")
    report = check_fit(trainer.model, state, trainer.spec)
    if not report.ok:
        first, _, rest = report.text().partition("\n")  # "The weights do not fit ...; nothing was loaded:"
        raise WeightsError(f"{first[:-1]} from checkpoint field {field}:\n{rest}")
    saved_by_bare = {strip_wrapper_prefixes(key): value for key, value in state.items()}
    for key, live in own.items():
        saved = saved_by_bare[strip_wrapper_prefixes(key)]
        _tensor(f"{field}[{key!r}]", saved, "float" if live.is_floating_point() else "integer", live.shape)


def _parameter_names(trainer) -> dict[int, str]:
    return {id(param): name for name, param in trainer.model.named_parameters()}


def _check_optimizer(saved, trainer, global_step: int) -> None:
    optimizer = trainer.optimizer
    _mapping("optimizer", saved, ("state", "param_groups"))
    groups = _list("optimizer.param_groups", saved["param_groups"], len(optimizer.param_groups))
    params: dict[int, tuple[torch.Tensor, dict]] = {}  # saved parameter id -> (live parameter, effective group)
    for index, (group, live) in enumerate(zip(groups, optimizer.param_groups, strict=True)):
        where = f"optimizer.param_groups[{index}]"
        _mapping(where, group, ("params",))
        ids = _list(f"{where}.params", group["params"], len(live["params"]))
        effective = {**live, **{k: v for k, v in group.items() if k in live and k not in _IMPLEMENTATION_SETTINGS}}
        for key, value in live.items():
            if key != "params" and key not in _IMPLEMENTATION_SETTINGS and key in group:
                _check_setting(f"{where}.{key}", key, group[key], value)
        for position, (param_id, param) in enumerate(zip(ids, live["params"], strict=True)):
            _integer(f"{where}.params[{position}]", param_id)
            if param_id in params:
                _refuse(f"{where}.params[{position}]", f"repeats parameter id {param_id}")
            params[param_id] = (param, effective)
    keys = next((table for cls, table in _OPTIMIZER_STATE.items() if isinstance(optimizer, cls)), None)
    if keys is None:
        raise TypeError(f"no checkpoint rules for optimizer {type(optimizer).__name__}")
    names = _parameter_names(trainer)
    kind = type(optimizer).__name__
    state = _mapping("optimizer.state", saved["state"])
    for param_id, entry in state.items():
        if param_id not in params:
            _refuse(f"optimizer.state[{_show(param_id)}]", "belongs to no parameter listed in optimizer.param_groups")
        _mapping(f"optimizer.state[{_show(param_id)}]", entry)
    # The trainer steps every parameter at every step, and some kernels (fused SGD, Adagrad) need all of them
    # to have state or none: state for some parameters only is not what this trainer writes.
    stepped = [param_id for param_id in params if state.get(param_id)]
    if stepped or isinstance(optimizer, torch.optim.Adagrad):  # Adagrad sets up its state from the start
        missing = next((param_id for param_id in params if param_id not in stepped), None)
        if missing is not None:
            _refuse(f"optimizer.state[{_show(missing)}]", f"is missing, but {kind} keeps state for every parameter "
                                                    "once it has stepped")
    for param_id in stepped:
        where, entry = f"optimizer.state[{_show(param_id)}]", state[param_id]
        param, group = params[param_id]
        for key in entry:
            if key not in keys:
                _refuse(f"{where}.{key}", f"is not part of {kind}'s state")
        for key, (needed, _) in keys.items():
            if key not in entry and needed(group):
                _refuse(f"{where}.{key}", f"is missing ({kind} keeps it for every parameter it has stepped)")
        for key, value in entry.items():
            if key == "step":
                _check_step(f"{where}.step", value, global_step)
                continue
            _tensor(f"{where}.{key}", value, "float", non_negative=keys[key][1])
            if tuple(value.shape) != tuple(param.shape):
                _refuse(f"{where}.{key}", f"has shape {format_shape(tuple(value.shape))} but parameter "
                                          f"{names.get(id(param), '?')} has shape {format_shape(tuple(param.shape))}")


def _check_step(field: str, value, global_step: int) -> None:
    """Optimizer step counts: a 0-d float tensor (fused kernels need float32) holding a whole number of steps."""
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        _refuse(field, f"must be a single-number tensor but is {_show(value)}")
    if value.dtype not in (torch.float32, torch.float64):
        _refuse(field, f"holds {value.dtype} but step counts are float32 tensors")
    count = float(value)
    if not math.isfinite(count) or count < 0 or count != int(count) or count > global_step:
        _refuse(field, f"is {count:g} but must be a whole number of steps from 0 to the run's {global_step}")


def _check_setting(field: str, key: str, value, live) -> None:
    """An optimizer setting of the same kind as the live one, in its range."""
    low, high, low_open = _SETTING_RANGES.get(key, (-math.inf, math.inf, False))
    if isinstance(live, bool):
        _boolean(field, value)
    elif isinstance(live, (int, float)):
        _number(field, value, low, high, low_open)
    elif isinstance(live, tuple):
        for index, item in enumerate(_list(field, value, len(live))):
            _number(f"{field}[{index}]", item, low, high if key != "betas" else math.nextafter(high, 0), low_open)
    elif isinstance(live, str) and not isinstance(value, str):
        _refuse(field, f"must be text but is {_show(value)}")
    elif live is None and value is not None:
        _refuse(field, f"must be None but is {_show(value)}")


def fitted_optimizer_state(saved: dict, optimizer: torch.optim.Optimizer) -> dict:
    """A validated optimizer state_dict ready for ``optimizer.load_state_dict``: the implementation flags
    (fused, foreach, ...) are this optimizer's own, settings the file lacks take its values, and
    settings this torch does not know are dropped, so a checkpoint moves between devices and versions."""
    groups = []
    for group, live in zip(saved["param_groups"], optimizer.param_groups, strict=True):
        merged = {key: value for key, value in live.items() if key != "params"}
        for key, value in group.items():
            if key in merged and key not in _IMPLEMENTATION_SETTINGS:
                merged[key] = tuple(value) if isinstance(live[key], tuple) else value
        groups.append({**merged, "params": list(group["params"])})
    return {"state": saved["state"], "param_groups": groups}


def _check_schedule(schedule, trainer, global_step: int) -> None:
    _mapping("schedule", schedule, ("steps", "plateau_factor", "best", "bad_epochs", "base_lrs"))
    _integer("schedule.steps", schedule["steps"], 0, global_step)
    _number("schedule.plateau_factor", schedule["plateau_factor"], 0.0, 1.0, low_open=True)
    _number("schedule.best", schedule["best"], finite=False)  # infinite until a first epoch ends
    if schedule["best"] == -math.inf:
        _refuse("schedule.best", "is -inf but must be a loss or inf")
    _integer("schedule.bad_epochs", schedule["bad_epochs"])
    for index, lr in enumerate(_list("schedule.base_lrs", schedule["base_lrs"], len(trainer.optimizer.param_groups))):
        _number(f"schedule.base_lrs[{index}]", lr, 0.0, 1e6, low_open=True)


def _check_history(history, trainer, epoch: int) -> None:
    keys = tuple(trainer.history)
    _mapping("history", history, keys)
    for key in keys:
        values = _list(f"history.{key}", history[key])
        if len(values) != epoch:
            _refuse(f"history.{key}", f"has {len(values)} entries but the checkpoint is at epoch {epoch}")
        for index, value in enumerate(values):
            where = f"history.{key}[{index}]"
            if value is None and key != "lr" and key != "train_loss":
                continue
            if key.endswith("_acc"):
                _number(where, value, 0.0, 1.0)
            elif key == "lr":
                _number(where, value, 0.0, 1e6)
            else:
                _number(where, value, finite=False)  # a validation loss may overflow and is recorded as it was


def _generator_state(field: str, state, device: torch.device) -> None:
    """A generator state that torch accepts for a generator on ``device`` (tried on a scratch generator)."""
    scratch = torch.Generator(device=device)
    expected = scratch.get_state()
    _tensor(field, state, "bytes", tuple(expected.shape))
    if not state.is_contiguous():
        _refuse(field, "is not a contiguous tensor")
    try:
        scratch.set_state(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        _refuse(field, f"is not a valid random number generator state ({str(exc).splitlines()[0]})")


def _check_rng(rng, trainer) -> None:
    _mapping("rng", rng, ("torch", "device_type", "generator", "augment_generator"))
    cpu = torch.device("cpu")
    _generator_state("rng.torch", rng["torch"], cpu)
    _generator_state("rng.generator", rng["generator"], cpu)
    device_type = rng["device_type"]
    if not isinstance(device_type, str):
        _refuse("rng.device_type", f"must be a device kind such as 'cpu' or 'cuda' but is {_show(device_type)}")
    device_state = rng.get("device")
    if device_type != trainer.device.type:  # the device streams are not used on another kind of device
        for key, value in (("device", device_state), ("augment_generator", rng["augment_generator"])):
            if value is not None:
                _tensor(f"rng.{key}", value, "bytes")
        return
    _generator_state("rng.augment_generator", rng["augment_generator"], trainer.device)
    if trainer.device.type == "cpu":
        if device_state is not None:
            _tensor("rng.device", device_state, "bytes")
    elif device_state is not None:
        _generator_state("rng.device", device_state, trainer.device)


def _check_spec(spec) -> None:
    if spec is None:
        return
    from engine.spec import NetworkSpec

    try:
        NetworkSpec.from_dict(spec)
    except _PARSE_ERRORS as exc:
        _refuse("spec", f"is not a valid design ({_reason(exc)})")


def _check_data(data) -> None:
    if data is None:
        return
    from engine.data import DataConfig

    _mapping("data", data)
    try:
        DataConfig.from_dict(dict(data))
    except _PARSE_ERRORS as exc:
        _refuse("data", f"is not valid ({_reason(exc)})")


def _check_scaler(scaler) -> None:
    if scaler is None or scaler == {}:  # {}: saved by a disabled scaler
        return
    _mapping("scaler", scaler, ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"))
    _number("scaler.scale", scaler["scale"], 0.0, low_open=True)
    _number("scaler.growth_factor", scaler["growth_factor"], 1.0, low_open=True)
    _number("scaler.backoff_factor", scaler["backoff_factor"], 0.0, 1.0, low_open=True)
    _integer("scaler.growth_interval", scaler["growth_interval"], 1)
    _integer("scaler._growth_tracker", scaler["_growth_tracker"])


def _check_progress(progress, trainer, saved_config, global_step: int) -> None:
    """The unfinished epoch: its sample order must be a permutation of this data's training samples."""
    if progress is None:
        return
    _mapping("progress", progress, ("perm", "step", "losses", "correct", "seconds"))
    perm = progress["perm"]
    _tensor("progress.perm", perm, "integer")
    if perm.dim() != 1:
        _refuse("progress.perm", f"has shape {format_shape(tuple(perm.shape))} but must be a list of sample indices")
    if perm.numel() != trainer.train_samples:
        raise WeightsError(f"The checkpoint was trained on {perm.numel()} samples but this data has "
                           f"{trainer.train_samples}: load the same data to resume.")
    if not torch.equal(torch.sort(perm.to(torch.int64)).values, torch.arange(trainer.train_samples)):
        _refuse("progress.perm", f"is not an order of the {trainer.train_samples} training samples")
    if saved_config.batch_size != trainer.config.batch_size:
        return  # the trainer starts this epoch over: its steps and losses are not used
    step = _integer("progress.step", progress["step"], 0, min(trainer.steps_per_epoch, global_step))
    losses = _list("progress.losses", progress["losses"], step)
    for index, loss in enumerate(losses):
        _number(f"progress.losses[{index}]", loss)
    _integer("progress.correct", progress["correct"], 0, step * trainer.config.batch_size)
    _number("progress.seconds", progress["seconds"], 0.0)


def _check_best(best, epoch: int) -> None:
    if best is None:
        return
    _mapping("best", best, ("value", "epoch", "bad_epochs"))
    if best["value"] is not None:
        _number("best.value", best["value"])
    _integer("best.epoch", best["epoch"], 0, epoch)
    _integer("best.bad_epochs", best["bad_epochs"], 0, epoch)


def _check_loss_watch(state) -> None:
    from engine.divergence import DIVERGENCE_STEPS

    _mapping("loss_watch", state, ("reference", "total", "count", "above"))
    if state["reference"] is not None:
        _number("loss_watch.reference", state["reference"])
    _number("loss_watch.total", state["total"])
    _integer("loss_watch.count", state["count"])
    _integer("loss_watch.above", state["above"], 0, DIVERGENCE_STEPS - 1)
