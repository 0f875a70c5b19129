"""Exported code never holds design text as code: hostile ids are refused with a sentence, hostile names and
descriptions give a script that runs and does nothing else (checked by running it and looking for a marker file)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from engine.cli import main
from engine.export import python_source
from engine.spec import NetworkSpec
from resources import TEMPLATES

MARKER = "pwned.txt"
PAYLOADS = (
    f"x')\n__import__('pathlib').Path({MARKER!r}).touch()\n#",
    f'x"""\n__import__("pathlib").Path({MARKER!r}).touch()\n"""',
    f"\\\nimport pathlib; pathlib.Path({MARKER!r}).touch()",
    f"\r__import__('pathlib').Path({MARKER!r}).touch()",
    f"\u2028__import__('pathlib').Path({MARKER!r}).touch()",  # a line break to some editors, not to Python
    "\x1b[31mred\x1b[0m \u202edesrever",
    "\x00\x0c\x0b",
)


def design_with(**changes) -> dict:
    design = json.loads((TEMPLATES / "lenet-bn.json").read_text(encoding="utf-8"))
    design.update(changes)
    return design


def export(tmp_path, design: dict, name: str) -> tuple[int, str]:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(design), encoding="utf-8")
    return main(["export", str(path), "--python", str(tmp_path / f"{name}.py")]), name


@pytest.mark.parametrize("payload", PAYLOADS + ("__import__('os')", "a b", "\ud800", "x" * 65))
def test_an_id_that_is_not_a_safe_identifier_is_refused_and_nothing_is_written(tmp_path, capsys, payload):
    design = design_with()
    design["layers"][2]["id"] = payload
    code, name = export(tmp_path, design, "hostile")
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: hostile.json"), err
    assert "\x1b" not in err and "\r" not in err
    assert not (tmp_path / "hostile.py").exists()


def test_hostile_names_and_descriptions_give_scripts_that_run_and_do_nothing_else(tmp_path, capsys):
    scripts = []
    for i, payload in enumerate(PAYLOADS):
        code, name = export(tmp_path, design_with(name=payload, description=payload * 3), f"design{i}")
        assert code == 0, capsys.readouterr().err
        scripts.append(str(tmp_path / f"{name}.py"))
    capsys.readouterr()
    for script in scripts:
        source = open(script, encoding="utf-8").read()
        ast.parse(source)
        assert "pathlib" not in source and "\x1b" not in source and "\r" not in source
    runner = "import runpy, sys\nfor script in sys.argv[1:]:\n    runpy.run_path(script, run_name='__main__')\n"
    result = subprocess.run([sys.executable, "-c", runner, *scripts], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("output shape per sample: (10,)") == len(scripts)
    assert not (tmp_path / MARKER).exists()


def test_every_value_in_the_script_is_a_literal_and_ids_only_reach_comments():
    spec = NetworkSpec.from_dict(design_with())
    tree = ast.parse(python_source(spec))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr != "Sequential"
             and getattr(node.func.value, "id", "") == "nn"]
    assert calls, "the script builds nn layers"
    for call in calls:
        for argument in [*call.args, *(keyword.value for keyword in call.keywords)]:
            ast.literal_eval(argument)  # a constant, never a name or a call
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {layer.id for layer in spec.layers}
