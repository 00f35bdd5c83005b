"""The forkserver's preload list: step processes fork from it, so whatever it has imported a step does not import
again. The forkserver skips a module that fails to import without a word, so these tests make a renamed module
(a Dagster upgrade) or a new storage import visible."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from igait_pipeline.execution import INSTANCE_MODULES, PRELOAD_MODULES

ROOT = Path(__file__).resolve().parents[2]


def test_every_preloaded_module_imports():
    code = ("import importlib, json\n"
            "missing = []\n"
            f"for m in {PRELOAD_MODULES!r}:\n"
            "    try: importlib.import_module(m)\n"
            "    except ImportError: missing.append(m)\n"
            "print(json.dumps(missing))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_step_builds_its_instance_without_new_storage_imports(tmp_path):
    """After the preload, building the embedded instance (what each step process does first) imports almost
    nothing: before INSTANCE_MODULES it imported about 500 modules (0.5 s of every step's start)."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    code = ("import importlib, json, sys\n"
            f"for m in {INSTANCE_MODULES!r}:\n"
            "    try: importlib.import_module(m)\n"
            "    except ImportError: pass\n"
            "import dagster._core.executor.multiprocess\n"
            "from dagster import DagsterInstance\n"
            "before = set(sys.modules)\n"
            "DagsterInstance.get()\n"
            "new = sorted(set(sys.modules) - before)\n"
            "print(json.dumps([m for m in new if m.split('.')[0] in ('sqlalchemy', 'alembic', 'dagster')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300,
                         env={**os.environ, "DAGSTER_HOME": str(home)}, cwd=tmp_path)
    heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(heavy) < 20, heavy
