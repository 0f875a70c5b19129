"""engine.search: the space from the settings' declarations, architecture knobs, and real optuna searches that train
the real Trainer on the bundled sample (pruning, broken designs, reproducible trials)."""
from __future__ import annotations

import json
import re

import optuna
import pytest

from engine.data import DataConfig, load_data
from engine.errors import TrainingError
from engine.groups import group
from engine.layers import KINDS
from engine.schema import setting_named
from engine.search import SearchSpace, TrialResult, apply_params, default_space, run_search
from engine.search_space import declared_settings, suggest, width_layers
from engine.shapes import analyze
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import load_design
from engine.training import TrainConfig

TINY = {"epochs": 3, "health": False, "batch_size": 64}


@pytest.fixture(scope="module")
def data():
    """One bundle for every search here, as run_search reuses one across its trials."""
    return load_data(DataConfig(limit=600))


def search(data, spec, space, trials, **options):
    results: list[TrialResult] = []
    study = run_search(spec, "test", options.pop("training", TINY), {}, space, trials=trials, timeout_s=None,
                       data=data, seed=0, on_trial=results.append, **options)
    return study, results


# --------------------------------------------------------------------------- the space and the declarations

def test_default_space_is_the_declared_search_ranges_on_their_declared_scales():
    spec, _ = load_design("mlp")
    space = default_space(spec, {})
    assert space.settings == {name: (s.search[0], s.search[1], s.log) for name, s in declared_settings().items()
                              if s.search is not None}
    assert space.settings["lr"] == (1e-4, 1e-1, True)
    assert space.settings["batch_size"] == (32, 512, setting_named(TrainConfig, "batch_size").log)
    assert space.width is space.dropout is None and not space.repeat and not space.activation  # knobs off


def test_every_declared_number_gets_its_declared_scale_and_range():
    """A space file that leaves out "log" gets the declaration's scale; ends outside the declared range are refused
    with the declared range in the sentence."""
    for name, s in declared_settings().items():
        if s.type not in (int, float):
            continue
        low = s.search[0] if s.search else (s.low if s.low > 0 or not s.log else min(1e-6, s.high))
        space = SearchSpace.from_dict({"settings": {name: {"low": low, "high": s.high}}})
        assert space.settings[name] == (low, s.high, s.log)
        declared = re.escape(f"high must be a {'whole ' if s.type is int else ''}number {s.range_text()}, got")
        with pytest.raises(TrainingError, match=rf"'{name}' \({re.escape(s.label)}\): {declared}"):
            SearchSpace.from_dict({"settings": {name: {"low": low, "high": s.high * 2 + 1}}})


def test_optuna_draws_each_setting_from_its_declared_distribution():
    spec, _ = load_design("mlp")
    space = default_space(spec, {})
    space.settings["optimizer"] = ["sgd", "adam"]
    space.settings["momentum"] = (0.5, 0.99, False)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen_momentum = set()
    for _ in range(12):
        trial = study.ask()
        params = suggest(trial, space, {})
        lr = trial.distributions["lr"]
        assert (lr.low, lr.high, lr.log) == (1e-4, 1e-1, True)
        batch = trial.distributions["batch_size"]
        assert isinstance(batch, optuna.distributions.IntDistribution) and batch.log
        assert 32 <= params["batch_size"] <= 512 and isinstance(params["batch_size"], int)
        if params["weight_decay.zero"]:
            assert "weight_decay" not in params  # the zero switch of a log-scale setting that accepts 0
        else:
            assert 1e-6 <= params["weight_decay"] <= 1e-2
        seen_momentum.add(("momentum" in params, params["optimizer"]))  # momentum only when it applies (SGD)
        study.tell(trial, 0.0)
    assert seen_momentum == {(True, "sgd"), (False, "adam")}


def test_a_space_file_round_trips():
    space = SearchSpace(settings={"lr": (1e-4, 0.1, True), "optimizer": ["adam", "sgd"], "amsgrad": [True, False],
                                  "epochs": (1, 4, False)},
                        width=(0.5, 2.0), dropout=(0.0, 0.6), repeat={"b3": (1, 3)},
                        activation={"ReLU": ["ReLU", "GELU", "SiLU"]})
    text = json.dumps(space.to_dict())
    assert SearchSpace.from_dict(json.loads(text)) == space


@pytest.mark.parametrize("data, message", [
    ([1, 2], "The search space must be a JSON object, got list."),
    ({"setings": {}}, "The search space has an unknown part 'setings'"),
    ({"settings": {"learning_rate": {"low": 1, "high": 2}}}, "names 'learning_rate', which is not a training setting"),
    ({"settings": {"device": ["cpu"]}}, "names 'device', which is not a training setting"),
    ({"settings": {"lr": {"low": 0.1, "high": 0.001}}}, "low (0.1) must not be above high (0.001)"),
    ({"settings": {"lr": {"low": 1e-9, "high": 0.1}}}, "low must be a number between 1e-08 and 1,000,000, got 1e-09"),
    ({"settings": {"lr": [0.1, -1]}}, "each choice must be a number between 1e-08 and 1,000,000"),
    ({"settings": {"weight_decay": {"low": 0, "high": 0.1}}}, "its low end must be above 0 (0 is tried as well)"),
    ({"settings": {"batch_size": {"low": 8.5, "high": 64}}}, "low must be a whole number"),
    ({"settings": {"lr": {"low": 0.01, "high": 0.1, "log": "yes"}}}, "log must be true or false, got 'yes'"),
    ({"settings": {"lr": {"low": 0.01}}}, 'must be an object {"low": A, "high": B, "log": true|false}'),
    ({"settings": {"optimizer": {"low": 1, "high": 2}}}, "must be a list of choices (one of sgd, adam"),
    ({"settings": {"optimizer": ["adam", "lion"]}}, "each choice must be one of sgd, adam"),
    ({"settings": {"optimizer": []}}, "must list at least one value"),
    ({"width": {"low": 0, "high": 2}}, "\"width\": low must be a number between 0.0625 and 16, got 0"),
    ({"dropout": {"low": 0.2, "high": 1.0}}, "\"dropout\": high must be a number between 0 and"),
    ({"repeat": {"b3": {"low": 0, "high": 2}}}, "\"repeat\" of group 'b3': low must be a whole number between 1 and"),
    ({"activation": {"Linear": ["ReLU"]}}, "names 'Linear', which is not an activation layer"),
    ({"activation": {"ReLU": ["GELU", "Conv2d"]}}, "lists 'Conv2d', which is not an activation layer"),
])
def test_a_bad_space_is_refused_with_a_sentence(data, message):
    with pytest.raises(TrainingError) as caught:
        SearchSpace.from_dict(data)
    text = str(caught.value)
    assert message in text and text[0].isupper() and text.endswith("."), text


@pytest.mark.parametrize("space, message", [
    (SearchSpace(repeat={"fc1": (1, 2)}), "no group with that id"),
    (SearchSpace(activation={"GELU": ["ReLU"]}), "replaces GELU layers, but the design has none"),
    (SearchSpace(dropout=(0.0, 0.5)), "no dropout layer"),
])
def test_a_space_that_does_not_fit_the_design_is_refused(space, message):
    spec, _ = load_design("lenet")
    with pytest.raises(TrainingError, match=message):
        space.check(spec)


# --------------------------------------------------------------------------- architecture knobs

def test_width_scales_every_linear_and_conv_but_the_output_layer():
    spec, _ = load_design("lenet")
    wide, _ = apply_params(spec, {}, {"width": 2.0})
    narrow, _ = apply_params(spec, {}, {"width": 0.5})
    scaled = {layer_id for layer_id, _ in width_layers(spec)}
    assert scaled == {"conv1", "conv2", "conv3", "fc1"}  # fc2 sets the 10 outputs
    for layer in spec.all_layers():
        for name in ("out_features", "out_channels"):
            if name in layer.params:
                factor = (2, 0.5) if layer.id in scaled else (1, 1)
                assert wide.layer(layer.id).params[name] == round(layer.params[name] * factor[0])
                assert narrow.layer(layer.id).params[name] == round(layer.params[name] * factor[1])
    for changed in (wide, narrow):
        analysis = analyze(changed)
        assert analysis.ok and analysis.output_shape == (10,)
    assert analyze(wide).params > analyze(spec).params > analyze(narrow).params


def test_dropout_repeat_and_activation_edit_layers_at_any_depth():
    spec, _ = load_design("resnet18")
    groups = [layer for layer in spec.all_layers() if layer.is_group and layer.params["mode"] == "residual"]
    target = groups[0].id
    relus = [layer.id for layer in spec.all_layers() if layer.kind == "ReLU"]
    assert any(spec.place(layer_id).parent is not None for layer_id in relus)  # some sit inside groups
    changed, training = apply_params(spec, {"epochs": 2}, {"repeat." + target: 3, "activation.ReLU": "GELU",
                                                           "lr": 0.01})
    assert training == {"epochs": 2, "lr": 0.01}
    assert changed.layer(target).params["repeat"] == 3
    assert all(changed.layer(layer_id).kind == "GELU" for layer_id in relus)
    assert changed.layer(relus[0]).params == KINDS["GELU"].defaults()
    analysis = analyze(changed)
    assert analysis.ok and analysis.output_shape == analyze(spec).output_shape
    assert analysis.params > analyze(spec).params  # the repeated copies have their own weights

    mlp, _ = load_design("mlp")
    dropped, _ = apply_params(mlp, {}, {"dropout": 0.3})
    dropouts = [layer for layer in dropped.all_layers() if layer.kind == "Dropout"]
    assert dropouts and all(layer.params["p"] == 0.3 for layer in dropouts) and analyze(dropped).ok


def test_apply_params_refuses_an_unknown_name_and_reads_the_zero_switch():
    spec, _ = load_design("mlp")
    with pytest.raises(TrainingError, match="Unknown search parameter 'depth'"):
        apply_params(spec, {}, {"depth": 3})
    _, training = apply_params(spec, {"weight_decay": 0.1}, {"weight_decay.zero": True})
    assert training == {"weight_decay": 0.0}
    _, training = apply_params(spec, {}, {"weight_decay.zero": False, "weight_decay": 1e-4})
    assert training == {"weight_decay": 1e-4}


# --------------------------------------------------------------------------- real searches

def test_a_trial_whose_design_fails_analysis_is_pruned_at_once_with_the_reason(data):
    pool = LayerSpec("MaxPool2d", {"kernel_size": 2}, id="pool")
    spec = NetworkSpec((1, 28, 28), (group("sequence", [pool], id="halve"), LayerSpec("Flatten", id="flat"),
                                     LayerSpec("Linear", {"out_features": 10}, id="out")))
    study, results = search(data, spec, SearchSpace(repeat={"halve": (6, 6)}), trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    reason = trial.user_attrs["reason"]
    assert reason.startswith("The trial's design has an error at layer 0 › 0 (MaxPool2d): In repeat 5: "), reason
    assert not trial.intermediate_values  # nothing trained
    assert [(r.state, r.reason) for r in results if r.state != "running"] == [("pruned", reason)]


def test_pruning_stops_bad_trials_early_and_each_trial_is_reproduced_by_its_params(data):
    spec, _ = load_design("mlp")
    space = SearchSpace(settings={"lr": [1e-6, 3e-3]}, width=(0.25, 1.0))
    training = {**TINY, "epochs": 4}
    study, results = search(data, spec, space, trials=12, objective="val_acc", pruner="median", training=training)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, [t.state for t in study.trials]
    for trial in pruned:  # the Trainer stopped: fewer epochs than planned, and the reason says when
        epochs = len(trial.intermediate_values)
        assert 1 <= epochs < 4 and trial.user_attrs["epoch"] == epochs
        assert trial.user_attrs["reason"].startswith(f"Pruned after epoch {epochs}: its validation accuracy ")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(len(t.intermediate_values) == 4 for t in complete)
    assert study.best_value == max(t.value for t in complete)
    finished = [r for r in results if r.state != "running"]
    assert [r.number for r in finished] == list(range(12))
    for trial in study.trials:  # apply_params gives the design the trial trained
        trial_spec, trial_training = apply_params(spec, training, trial.params)
        assert analyze(trial_spec).params == trial.user_attrs["parameters"]
        assert trial_training["lr"] == trial.params["lr"]
    reports = [r for r in results if r.state == "running" and r.number == pruned[0].number]
    assert [r.epoch for r in reports] == [0, *range(1, len(pruned[0].intermediate_values) + 1)]


def test_settings_a_trial_cannot_train_with_prune_it_with_the_trainers_reason(data):
    spec, _ = load_design("mlp")
    study, _ = search(data, spec, SearchSpace(settings={"loss": ["bce"]}), trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["reason"].startswith("The trial cannot train: loss 'bce' needs outputs between 0 and 1")


def test_should_stop_ends_the_running_trial_and_the_search(data):
    spec, _ = load_design("mlp")
    stop = {"after": False}

    def on_trial(result):
        if result.epoch == 1:
            stop["after"] = True

    study = run_search(spec, "test", {**TINY, "epochs": 50}, {}, default_space(spec, {}), trials=5, timeout_s=None,
                       data=data, on_trial=on_trial, should_stop=lambda: stop["after"])
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["reason"] == "Stopped before it finished." and trial.user_attrs["epoch"] == 1


def test_a_search_without_validation_samples_is_refused(data):
    spec, _ = load_design("mlp")
    bundle = load_data(DataConfig(limit=300, val_fraction=0.0))
    with pytest.raises(TrainingError, match="--val-fraction above 0"):
        run_search(spec, "test", TINY, {}, default_space(spec, {}), trials=1, timeout_s=None, data=bundle)


def test_a_study_of_another_objective_is_refused(data, tmp_path):
    spec, _ = load_design("mlp")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    search(data, spec, SearchSpace(settings={"lr": [1e-3]}), trials=1, storage=storage, study_name="s")
    with pytest.raises(TrainingError, match="optimises val_loss, not val_acc: search it with --objective val_loss"):
        search(data, spec, SearchSpace(), trials=1, storage=storage, study_name="s", objective="val_acc")
