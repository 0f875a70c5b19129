"""engine.training.early_stopping: the watch's patience, best value and mode on real sequences of epoch
figures, the metric a run can watch on its data, and the Trainer's use of the watch (checkpoints included)."""
from __future__ import annotations

import math

import pytest

from engine.data import DataConfig, load_data
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig, Trainer
from engine.training.early_stopping import EarlyStopping, watched_metric


def observe_all(watch: EarlyStopping, values) -> list[bool]:
    """Feed one value per epoch (1-based); what ``observe`` answered each time."""
    return [watch.observe(value, epoch) for epoch, value in enumerate(values, start=1)]


def test_a_loss_must_fall_and_patience_counts_the_epochs_since_it_last_did():
    watch = EarlyStopping("val_loss", patience=2)
    assert watch.mode == "min"
    assert observe_all(watch, [1.0, 0.8, 0.85]) == [True, True, False]
    assert (watch.best, watch.best_epoch, watch.bad_epochs, watch.exhausted) == (0.8, 2, 1, False)
    assert watch.observe(0.8, 4) is False  # equal is not better
    assert (watch.bad_epochs, watch.exhausted) == (2, True)
    assert watch.observe(0.5, 5) is True  # a new best resets the count
    assert (watch.best, watch.best_epoch, watch.bad_epochs, watch.exhausted) == (0.5, 5, 0, False)


def test_an_accuracy_must_rise_by_more_than_min_delta():
    watch = EarlyStopping("train_acc", patience=3, min_delta=0.01)
    assert watch.mode == "max"
    assert observe_all(watch, [0.50, 0.505, 0.509, 0.52, 0.40]) == [True, False, False, True, False]
    assert (watch.best, watch.best_epoch, watch.bad_epochs) == (0.52, 4, 1)


def test_a_missing_or_not_finite_value_is_no_improvement():
    watch = EarlyStopping("val_loss", patience=3)
    assert observe_all(watch, [math.nan, None, math.inf]) == [False, False, False]
    assert (watch.best, watch.best_epoch, watch.bad_epochs, watch.exhausted) == (None, 0, 3, True)
    assert watch.observe(2.5, 4) is True  # the first finite value is the first best
    assert (watch.best, watch.best_epoch, watch.bad_epochs) == (2.5, 4, 0)


def test_the_state_round_trips_and_the_copy_goes_on_the_same_way():
    watch = EarlyStopping("val_loss", patience=3, min_delta=0.05)
    observe_all(watch, [1.0, 0.9, 0.88])
    copy = EarlyStopping("val_loss", patience=3, min_delta=0.05)
    copy.load_state_dict(watch.state_dict())
    assert copy.state_dict() == watch.state_dict() == {"value": 0.9, "epoch": 2, "bad_epochs": 1}
    for epoch, value in ((4, 0.86), (5, 0.87)):  # neither is 0.05 below 0.9
        assert copy.observe(value, epoch) is watch.observe(value, epoch) is False
    assert copy.exhausted and watch.exhausted and copy.state_dict() == watch.state_dict()


@pytest.mark.parametrize("wanted, has_val, classification, metric, notes", [
    ("val_loss", True, True, "val_loss", []),
    ("val_acc", True, True, "val_acc", []),
    ("val_loss", False, True, "train_loss", ["no validation data: early stopping watches train_loss"]),
    ("train_acc", True, False, "train_loss", ["accuracy needs classes: early stopping watches train_loss"]),
    ("val_acc", False, False, "train_loss", ["no validation data: early stopping watches train_acc",
                                             "accuracy needs classes: early stopping watches train_loss"]),
])
def test_the_watched_metric_falls_back_to_what_the_data_has(wanted, has_val, classification, metric, notes):
    assert watched_metric(wanted, has_val, classification) == (metric, notes)


def test_the_trainer_keeps_the_best_epoch_of_its_history_and_checkpoints_it():
    data = load_data(DataConfig(limit=300, val_fraction=0.2))
    spec = NetworkSpec((1, 28, 28), (LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 10})))
    config = TrainConfig(epochs=4, early_stopping=True, early_stopping_metric="val_acc", patience=10, device="cpu")
    trainer = Trainer(spec, data, config)
    assert trainer.run().reason == "completed"
    accuracies = trainer.history["val_acc"]
    assert trainer.early_stopping.best == max(accuracies)
    assert trainer.early_stopping.best_epoch == accuracies.index(max(accuracies)) + 1  # the first epoch that hit it
    assert trainer.early_stopping.bad_epochs == len(accuracies) - trainer.early_stopping.best_epoch
    saved = trainer.checkpoint()
    assert saved["best"] == trainer.early_stopping.state_dict()
    resumed = Trainer(spec, data, config)
    resumed.load_checkpoint(saved)
    assert resumed.early_stopping.state_dict() == trainer.early_stopping.state_dict()
