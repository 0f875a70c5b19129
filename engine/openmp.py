"""The OpenMP wait policy that every entry point sets before torch loads (the app and CLI, tests, benchmarks).

OpenMP threads that busy-wait at barriers collapse when another torch process (or a second thread team in
this one) wants the cores: LeNet on 2 cores went from 0.3 s to 23 s an epoch. A short spin and then sleep
keeps CPU training steady (measured here, LeNet epoch quiet / beside a second run: busy-wait 0.3 / 23 s,
2000 spins 0.36 / 0.9 s, no spin 0.56 / 0.7 s). The runtime reads these variables once, when torch loads
it, so importing ``engine`` does not set them behind a host program's back: entry points call
``use_passive_wait()`` first. A user's own settings win.
"""
from __future__ import annotations

import logging
import os
import sys

POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "2000"}
log = logging.getLogger(__name__)


def use_passive_wait() -> None:
    """Set the wait policy for this process (and its children) unless the user set one; call before torch loads."""
    if "torch" in sys.modules:
        log.debug("torch is already loaded: its OpenMP runtime keeps the wait policy it started with")
    for name, value in POLICY.items():
        os.environ.setdefault(name, value)
