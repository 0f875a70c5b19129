"""Evaluation without a Trainer (engine.evaluation): the same numbers as Trainer.evaluate, from trained or loaded
weights; per-class precision, recall and F1 checked by hand; stopping; models that do not fit the data."""
from __future__ import annotations

import math

import pytest
import torch

from engine.build import build_model
from engine.data import DataConfig, load_data
from engine.errors import TrainingError
from engine.evaluation import ClassMetrics, class_metrics, evaluate_model, evaluation_split, macro_average, model_device
from engine.io import load_weights, save_weights
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig, Trainer

QUICK = TrainConfig(epochs=1, batch_size=32, device="cpu", seed=0)


def mlp(input_shape=(1, 28, 28), classes: int = 10) -> NetworkSpec:
    layers = [LayerSpec("Linear", {"out_features": 16}), LayerSpec("ReLU"),
              LayerSpec("Linear", {"out_features": classes})]
    if len(input_shape) > 1:
        layers.insert(0, LayerSpec("Flatten"))
    return NetworkSpec(tuple(input_shape), tuple(layers))


@pytest.fixture(scope="module")
def mnist():
    return load_data(DataConfig(limit=400, val_fraction=0.2))


@pytest.fixture(scope="module")
def trained(mnist):
    trainer = Trainer(mlp(), mnist, QUICK)
    assert trainer.run().reason == "completed"
    return trainer


def hand_metrics(predicted: list[int], targets: list[int], classes: int) -> list[tuple[int, float, float, float]]:
    """(support, precision, recall, F1) per class, counted sample by sample (NaN where undefined)."""
    rows = []
    for k in range(classes):
        tp = sum(p == k and t == k for p, t in zip(predicted, targets, strict=True))
        fp = sum(p == k and t != k for p, t in zip(predicted, targets, strict=True))
        fn = sum(p != k and t == k for p, t in zip(predicted, targets, strict=True))
        precision = tp / (tp + fp) if tp + fp else math.nan
        recall = tp / (tp + fn) if tp + fn else math.nan
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
        if not (math.isnan(precision) or math.isnan(recall)) and precision + recall:
            assert f1 == pytest.approx(2 * precision * recall / (precision + recall))  # the harmonic mean
        rows.append((tp + fn, precision, recall, f1))
    return rows


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)


# --------------------------------------------------------------------------- per-class metrics

def test_class_metrics_of_a_small_confusion_matrix_by_hand():
    confusion = [[5, 1, 0, 0, 0],   # class 0: 6 samples, 5 right
                 [2, 3, 1, 0, 0],   # class 1: 6 samples, 3 right
                 [0, 0, 0, 0, 0],   # class 2: no samples, predicted once (wrongly)
                 [1, 0, 0, 0, 0],   # class 3: 1 sample, never predicted
                 [0, 0, 0, 0, 0]]   # class 4: neither a sample nor a prediction
    metrics = class_metrics(confusion)
    assert metrics[0] == ClassMetrics(6, 5 / 8, 5 / 6, pytest.approx(2 * (5 / 8) * (5 / 6) / (5 / 8 + 5 / 6)))
    assert metrics[1] == ClassMetrics(6, 3 / 4, 3 / 6, pytest.approx(2 * 0.75 * 0.5 / 1.25))
    assert (metrics[2].support, metrics[2].precision, metrics[2].f1) == (0, 0.0, 0.0)
    assert math.isnan(metrics[2].recall)
    assert (metrics[3].support, metrics[3].recall, metrics[3].f1) == (1, 0.0, 0.0)
    assert math.isnan(metrics[3].precision)
    assert metrics[4].support == 0 and all(math.isnan(v) for v in (metrics[4].precision, metrics[4].recall,
                                                                    metrics[4].f1))
    assert macro_average(m.f1 for m in metrics) == pytest.approx((metrics[0].f1 + metrics[1].f1) / 4)


def test_f1_is_zero_when_a_class_is_predicted_and_present_but_never_right():
    metrics = class_metrics([[0, 2], [3, 0]])
    assert [(m.precision, m.recall, m.f1) for m in metrics] == [(0.0, 0.0, 0.0), (0.0, 0.0, 0.0)]
    assert math.isnan(macro_average([math.nan, math.nan]))


def test_class_metrics_agree_with_sklearn_when_it_is_installed():
    metrics_module = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(3)
    targets = torch.randint(0, 5, (300,), generator=generator).tolist()
    predicted = [t if torch.rand(1, generator=generator).item() < 0.6 else (t + 1) % 5 for t in targets]
    confusion = metrics_module.confusion_matrix(targets, predicted, labels=list(range(5))).tolist()
    precision, recall, f1, support = metrics_module.precision_recall_fscore_support(
        targets, predicted, labels=list(range(5)), zero_division=math.nan)
    for mine, p, r, f, s in zip(class_metrics(confusion), precision, recall, f1, support, strict=True):
        assert mine.support == s
        assert same(mine.precision, float(p)) and same(mine.recall, float(r)) and same(mine.f1, float(f))


def test_metrics_of_a_real_evaluation_match_a_count_of_its_predictions(trained, mnist):
    evaluation = trained.evaluate("test")
    targets = mnist.test_y.tolist()
    expected = hand_metrics(evaluation.predicted, targets, 10)
    for mine, (support, precision, recall, f1) in zip(evaluation.class_metrics(), expected, strict=True):
        assert mine.support == support
        assert same(mine.precision, precision) and same(mine.recall, recall) and same(mine.f1, f1)
    assert [m.recall for m in evaluation.class_metrics()] == evaluation.per_class_accuracy


# --------------------------------------------------------------------------- evaluating without a Trainer

def test_evaluate_model_gives_the_trainers_numbers(trained, mnist):
    by_trainer = trained.evaluate("test", samples=20)
    alone = evaluate_model(trained.spec, trained.model, mnist, "test", QUICK, samples=20)
    assert alone.confusion == by_trainer.confusion
    assert alone.predicted == by_trainer.predicted
    assert alone.accuracy == by_trainer.accuracy
    assert alone.loss == pytest.approx(by_trainer.loss, rel=1e-5)
    assert alone.samples == by_trainer.samples and alone.count == by_trainer.count == 1000


def test_loaded_weights_evaluate_like_the_model_that_was_trained(trained, mnist, tmp_path):
    path = tmp_path / "mlp.safetensors"
    save_weights(trained.model, path)
    model = build_model(trained.spec)
    load_weights(model, path, trained.spec)
    evaluation = evaluate_model(trained.spec, model, mnist)
    assert evaluation.confusion == trained.evaluate().confusion
    fresh = evaluate_model(trained.spec, build_model(trained.spec), mnist)
    assert fresh.confusion != evaluation.confusion  # the loaded weights are the ones that count


def test_a_flat_design_evaluates_image_data_reshaped_and_the_model_keeps_its_mode(mnist):
    spec = mlp(input_shape=(784,))
    trainer = Trainer(spec, mnist, QUICK)
    assert trainer.run().reason == "completed"
    trainer.model.train()
    evaluation = evaluate_model(spec, trainer.model, mnist, "val")
    assert trainer.model.training
    assert evaluation.split == "val" and evaluation.count == 80
    assert evaluation.confusion == trainer.evaluate("val").confusion


def test_regression_on_synthetic_data_reports_the_validation_split():
    data = load_data(DataConfig(source="synthetic-regression", samples=200))
    spec = NetworkSpec((2,), (LayerSpec("Linear", {"out_features": 1}),))
    trainer = Trainer(spec, data, TrainConfig(epochs=2, optimizer="sgd", lr=0.05, device="cpu"))
    assert trainer.run().reason == "completed"
    assert evaluation_split(data) == "val"
    evaluation = evaluate_model(spec, trainer.model, data, evaluation_split(data))
    assert evaluation.confusion is None and evaluation.class_metrics() is None
    assert evaluation.loss == pytest.approx(trainer.evaluate("val").loss, rel=1e-5)
    with torch.no_grad():
        first = trainer.model(data.val_x[:1]).item()
    assert evaluation.samples[0].predicted == pytest.approx(first)


def test_a_stop_request_ends_the_evaluation_without_results(trained, mnist):
    calls = []

    def stop_after_two_batches() -> bool:
        calls.append(1)
        return len(calls) > 2

    mode = trained.model.training
    assert evaluate_model(trained.spec, trained.model, mnist, should_stop=stop_after_two_batches,
                          batch_size=100) is None
    assert len(calls) == 3  # checked before every batch: two ran, the third was not started
    assert trained.model.training == mode


def test_weights_that_do_not_fit_the_data_get_a_sentence(mnist):
    spec = mlp(classes=3)
    with pytest.raises(TrainingError, match="3 values per sample|data has 10 classes"):
        evaluate_model(spec, build_model(spec), mnist)
    wrong_input = mlp(input_shape=(3, 32, 32))
    with pytest.raises(TrainingError, match="set the design.s input shape to"):
        evaluate_model(wrong_input, build_model(wrong_input), mnist)
    with pytest.raises(TrainingError, match="split must be"):
        evaluate_model(mlp(), build_model(mlp()), mnist, "holdout")


def test_model_device_is_where_the_weights_are():
    assert model_device(build_model(mlp())) == torch.device("cpu")
    assert model_device(torch.nn.Sequential(torch.nn.ReLU())) == torch.device("cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_model_on_the_gpu_is_evaluated_where_its_weights_are(mnist):
    trainer = Trainer(mlp(), mnist, TrainConfig(epochs=1, batch_size=32, device="cuda", seed=0))
    assert trainer.run().reason == "completed"
    assert model_device(trainer.model).type == "cuda"
    alone = evaluate_model(trainer.spec, trainer.model, mnist)
    by_trainer = trainer.evaluate()
    assert alone.accuracy == pytest.approx(by_trainer.accuracy, abs=0.002)
    assert alone.loss == pytest.approx(by_trainer.loss, rel=1e-4)
    assert model_device(trainer.model).type == "cuda"  # evaluated in place, not moved
