"""Short names for training runs that say what differs between them: "lr 0.01, batch 128".

A run's settings are one flat dict: its TrainConfig fields, its DataConfig fields under ``data.``
and ``design`` (what makes two designs train the same network). The first run is named by its
optimizer, learning rate and batch size; every later run by the settings that differ from the
run before it, so the legend of the plots reads like a lab notebook.
"""
from __future__ import annotations

from engine.schema import settings_of
from engine.settings import SECTIONS

DATA_PREFIX = "data."
DESIGN_KEY = "design"
MOST_DIFFERENCES = 3  # more than this many differences end in "+N more"
LONGEST_VALUE = 24  # longer values (paths) keep their end: "…/datasets/cats"
FIRST_RUN_KEYS = ("optimizer", "lr", "batch_size")

# Short names for the plots' legends; a value that names itself (sgd, cpu, mnist-sample) has none.
SHORT_NAMES = {
    "optimizer": "", "lr": "lr", "weight_decay": "wd", "label_smoothing": "smoothing", "warmup_epochs": "warm-up",
    "plateau_patience": "plateau patience", "batch_size": "batch", "init_std": "init std",
    "init_value": "init value", "grad_clip": "clip", "device": "", "amp": "amp", "channels_last": "channels_last",
    "compile": "compile", "early_stopping_metric": "watch", "patience": "patience", "min_delta": "min delta",
    "restore_best": "restore best",
    f"{DATA_PREFIX}source": "", f"{DATA_PREFIX}val_fraction": "val", f"{DATA_PREFIX}limit": "limit",
    f"{DATA_PREFIX}seed": "split seed", f"{DATA_PREFIX}image_size": "size",
    f"{DATA_PREFIX}augment_crop_padding": "crop", f"{DATA_PREFIX}augment_hflip": "flip",
}


def run_settings(config: dict, data_config: dict, design=None) -> dict:
    """One flat dict of everything a run used (``design``: any comparable value naming the network)."""
    settings = {} if design is None else {DESIGN_KEY: design}  # a new design first: the biggest difference
    settings.update(config)
    settings.update({f"{DATA_PREFIX}{key}": value for key, value in data_config.items()})
    return settings


def _matters(key: str, settings: dict) -> bool:
    """Whether the setting ``key`` has an effect with these ``settings`` (momentum only for SGD, ...)."""
    section, values = ("data", {k[len(DATA_PREFIX):]: v for k, v in settings.items() if k.startswith(DATA_PREFIX)}) \
        if key.startswith(DATA_PREFIX) else ("training", settings)
    name = key[len(DATA_PREFIX):] if key.startswith(DATA_PREFIX) else key
    declared = next((s for s in settings_of(SECTIONS[section]) if s.name == name), None)
    return declared is None or declared.applies(values)


def _value_text(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_value_text(v) for v in value)
    text = str(value).replace("_", " ") if value != "" else "none"
    return text if len(text) <= LONGEST_VALUE else "…" + text[1 - LONGEST_VALUE:]


def setting_text(key: str, value) -> str:
    """``lr 0.01``, ``batch 128``, ``sgd``, ``nesterov on``."""
    if key == DESIGN_KEY:
        return "other design"
    name = SHORT_NAMES.get(key, key[len(DATA_PREFIX):] if key.startswith(DATA_PREFIX) else key).replace("_", " ")
    value = _value_text(value)
    return f"{name} {value}" if name else value


def run_name(settings: dict, previous: dict | None) -> str:
    """The run's name: its main settings for a first run, else what differs from the ``previous`` run."""
    if previous is None:
        return ", ".join(setting_text(key, settings[key]) for key in FIRST_RUN_KEYS if key in settings)
    differences = [key for key in settings if settings[key] != previous.get(key) and _matters(key, settings)]
    if not differences:
        return "same settings"
    shown = [setting_text(key, settings[key]) for key in differences[:MOST_DIFFERENCES]]
    more = len(differences) - MOST_DIFFERENCES
    return ", ".join(shown) + (f" +{more} more" if more > 0 else "")
