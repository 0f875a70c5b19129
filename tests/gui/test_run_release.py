"""A new run frees the previous one before it builds its model: the old trainer and its optimizer are gone
(weakrefs dead), and the trained weights live on, on the CPU without gradients (the model itself when it trained
there, a CPU copy of one on a GPU), so Save Weights still writes them when the next run fails before it trains.
The GPU version of the check (peak memory of two runs) is marked cuda.
"""
from __future__ import annotations

import gc
import weakref

import pytest
import torch

from engine.io import read_state_dict
from engine.spec import LayerSpec, NetworkSpec
from engine.training import Trainer
from tests.gui.test_training import RUN_TIMEOUT_MS, make_document


def state_of(model) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def run_references(controller) -> list[weakref.ref]:
    trainer = controller.trainer
    return [weakref.ref(trainer), weakref.ref(trainer.model), weakref.ref(trainer.optimizer)]


def test_the_previous_run_is_freed_before_the_next_one_builds_its_model(area, monkeypatch):
    ui = area()
    assert ui.run(start=ui.controller.start).reason == "completed"
    old = run_references(ui.controller)
    trained = state_of(ui.controller.model)
    alive_at_build: list[list[bool]] = []
    build = Trainer._build_model

    def observed_build(self, spec):  # runs in the new run's worker thread
        gc.collect()
        alive_at_build.append([ref() is not None for ref in old])
        return build(self, spec)

    monkeypatch.setattr(Trainer, "_build_model", observed_build)
    with ui.qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert ui.controller.start()
        gc.collect()
        assert [ref() is None for ref in old] == [True, False, True]  # freed as soon as the new run starts...
        kept = ui.controller.model  # ...but the previous weights, until the new run has its own
        assert kept is old[1]()  # trained on the CPU: kept as they are, not copied
        assert all(p.device.type == "cpu" and p.grad is None for p in kept.parameters())
        assert all(torch.equal(trained[key], value) for key, value in kept.state_dict().items())
    assert blocker.args[0].reason == "completed"
    assert alive_at_build == [[False, True, False]]
    assert ui.controller.model is ui.controller.trainer.model  # the new run's model replaced the copy


def test_when_the_next_run_fails_before_training_the_previous_weights_can_still_be_saved(area, tmp_path):
    ui = area()
    assert ui.run(start=ui.controller.start).reason == "completed"
    old = run_references(ui.controller)
    trained = state_of(ui.controller.model)
    ui.doc.extras = {**ui.doc.extras, "data": {"source": "csv", "root": str(tmp_path / "missing.csv")}}
    result = ui.run(start=ui.controller.start)
    assert result.reason == "error" and "missing.csv" in result.message
    gc.collect()
    assert [ref() is None for ref in old] == [True, False, True]  # the trained model alone stays
    assert ui.controller.trainer is None  # nothing left to checkpoint; the weights are kept
    ui.controller.save_weights(tmp_path / "kept.pt")
    saved = read_state_dict(tmp_path / "kept.pt")
    assert saved.keys() == trained.keys() and all(torch.equal(saved[k], trained[k]) for k in trained)


def test_a_full_garbage_collection_runs_only_for_a_run_kept_alive_by_a_cycle(area, monkeypatch):
    """Releasing a run frees it by reference counting; the full collection (~0.25 s in a window's process, on the UI
    thread at every Start) runs only when something of the run survived that, e.g. a reference cycle."""
    ui = area()
    assert ui.run(start=ui.controller.start).reason == "completed"
    collections = []
    collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or collect(*args))
    gone = weakref.ref(ui.controller.trainer)
    ui.controller.release_run()
    assert gone() is None and collections == []  # freed without one
    assert ui.run(start=ui.controller.start).reason == "completed"
    trainer = ui.controller.trainer
    trainer.itself = trainer  # a cycle: only the collector frees it
    gone = weakref.ref(trainer)
    del trainer
    ui.controller.release_run()
    assert len(collections) == 1 and gone() is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_two_runs_on_the_gpu_never_hold_both_runs_at_once(area):
    wide = NetworkSpec((1, 28, 28), (
        LayerSpec("Flatten", id="flat"), LayerSpec("Linear", {"out_features": 4096}, id="a"),
        LayerSpec("ReLU", id="r1"),
        LayerSpec("Linear", {"out_features": 4096}, id="b"), LayerSpec("ReLU", id="r2"),
        LayerSpec("Linear", {"out_features": 10}, id="out")))
    ui = area(make_document(wide, training={"device": "cuda", "epochs": 1, "batch_size": 64},
                            data={"limit": 2000}))
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    assert ui.run(start=ui.controller.start).reason == "completed"
    one_run = torch.cuda.max_memory_allocated() - base
    held = torch.cuda.memory_allocated() - base
    assert held > 0.5 * one_run  # the finished run is kept (Save Checkpoint) until the next one starts
    torch.cuda.reset_peak_memory_stats()
    assert ui.run(start=ui.controller.start).reason == "completed"
    two_runs = torch.cuda.max_memory_allocated() - base
    assert two_runs < 1.5 * one_run, f"second run peaked at {two_runs / 2**20:.0f} MiB, one alone at " \
                                     f"{one_run / 2**20:.0f} MiB"
