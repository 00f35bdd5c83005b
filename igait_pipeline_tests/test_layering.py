"""The layers hold: the job layout, storage, stages, contracts and upload scanning import no Dagster, and the stage
table (number, asset, label, files) is written once, in igait_pipeline.layout."""
from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import igait_pipeline
from igait_pipeline import research, stages, storage
from igait_pipeline.layout import STAGES

PACKAGE = Path(igait_pipeline.__file__).parent
DAGSTER_FREE = ["igait_pipeline.layout", "igait_pipeline.schemas", "igait_pipeline.uploads",
                # loaded by the logging configuration of every process (python_logs), before any code location
                "igait_pipeline.observability.logs", "igait_pipeline.observability.tracing",
                "igait_pipeline.observability.sensor_log",
                *(f"storage.{m.name}" for m in pkgutil.iter_modules(storage.__path__)),
                *(f"research.{m.name}" for m in pkgutil.iter_modules(research.__path__)),
                *(f"stages.{m.name}" for m in pkgutil.iter_modules(stages.__path__))]


def _module(name: str) -> str:
    return name if name.startswith("igait_pipeline.") else f"igait_pipeline.{name}"


def test_plain_layers_do_not_import_dagster():
    modules = [_module(n) for n in DAGSTER_FREE]
    assert "igait_pipeline.stages.pose" in modules and "igait_pipeline.storage.gcs" in modules
    assert "igait_pipeline.research.training" in modules
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(k for k in sys.modules if k == 'dagster' or k.startswith('dagster.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_code_location_loads_without_the_model_libraries():
    """The daemon, the web server, `igait run` and every code-server reload import definitions.py: torch and
    MediaPipe (seconds of imports) load only in the step processes that use them (the forkserver preloads them)."""
    code = ("import json, sys, igait_pipeline.definitions\n"
            "print(json.dumps(sorted(k for k in ('torch', 'mediapipe') if k in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant in the module's code, docstrings left out (prose may name a stage's files)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_stage_table_is_written_once():
    """No module but layout.py spells a stage's label, its `stage_N` folder, or the list of stage assets."""
    labels = {s.label for s in STAGES if s.label != s.asset}  # "prediction" is also a word used on its own
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "layout.py" and path.parent == PACKAGE:
            continue
        for line, value in _string_literals(path):
            path_like = not any(c.isspace() for c in value)  # a key or glob, not a sentence in a description
            hit = (value in labels or (path_like and any(f"stage_{s.number}/" in value for s in STAGES))
                   or (value.count(",") >= 3 and all(s.asset in value for s in STAGES[1:4])))
            if hit:
                offenders.append(f"{path.relative_to(PACKAGE)}:{line}: {value[:60]!r}")
    assert offenders == []


def test_ruff_is_clean():
    """The lint rules of pyproject.toml ([tool.ruff]) hold over the whole repository."""
    root = PACKAGE.parent
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(root)], capture_output=True,
                         text=True, cwd=root, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:]
