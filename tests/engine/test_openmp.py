"""Importing engine leaves the process alone; the entry points set the OpenMP wait policy before torch loads."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from engine.openmp import POLICY

CLEAN = {k: v for k, v in os.environ.items() if k not in POLICY}


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], env=CLEAN, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_importing_engine_sets_no_environment_variable():
    seen = run("import json, os, engine, engine.spec, engine.shapes; "
               f"print(json.dumps({{k: os.environ.get(k) for k in {list(POLICY)!r}}}))")
    assert seen == {name: None for name in POLICY}


def test_the_console_script_sets_the_policy_before_torch_loads():
    seen = run("import json, os, sys, io, contextlib\n"
               "from gui.launch import main\n"
               "with contextlib.redirect_stdout(io.StringIO()): main(['templates'])\n"
               f"print(json.dumps({{k: os.environ.get(k) for k in {list(POLICY)!r}}}))")
    assert seen == POLICY


def test_a_users_own_setting_wins():
    env = dict(CLEAN, OMP_WAIT_POLICY="ACTIVE")
    out = subprocess.run([sys.executable, "-c", "import os; from engine.openmp import use_passive_wait; "
                          "use_passive_wait(); print(os.environ['OMP_WAIT_POLICY'])"],
                         env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "ACTIVE"
