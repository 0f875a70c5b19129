"""engine.training.events: a run's finish reason is an Enum that still reads, compares, keys and writes as its word."""
from __future__ import annotations

import json

import pytest

from engine.training import REASONS, FinishReason, RunFinished


def test_a_finish_reason_given_as_a_word_becomes_the_enum_and_still_is_the_word():
    finished = RunFinished("early_stopped", "Stopped early.", 3)
    assert finished.reason is FinishReason.EARLY_STOPPED
    assert finished.reason == "early_stopped" and finished.reason in ("completed", "early_stopped")
    assert {"early_stopped": "Stopped early"}[finished.reason] == "Stopped early"  # GUI tables keyed by the word
    assert f"{finished.reason}" == str(finished.reason) == "%s" % finished.reason == "early_stopped"  # noqa: UP031 - %-formatting is checked
    assert json.loads(json.dumps({"reason": finished.reason})) == {"reason": "early_stopped"}
    assert RunFinished(FinishReason.STOPPED, "", 0) == RunFinished("stopped", "", 0)


def test_reasons_lists_every_word_and_an_unknown_one_is_refused():
    assert REASONS == tuple(reason.value for reason in FinishReason)
    assert REASONS == ("completed", "stopped", "early_stopped", "diverged", "out_of_memory", "error")
    with pytest.raises(ValueError):
        RunFinished("finished", "", 0)
