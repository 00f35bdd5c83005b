"""The Dockerfile, read as data (no Docker engine here): what it installs, as whom, and what it serves.

The install step that turns pyproject.toml into requirements is executed for real; the CMD and the command the
Helm chart composes from helm/values.yaml are parsed by Dagster's own CLI definition.
"""
from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]

    def last(self, op: str) -> str | None:
        found = self.all(op)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages (instructions with continuation lines joined)."""
    logical, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.IGNORECASE)
            assert m, line
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda v: args[v[1] or v[2]], m[1])
            stages.append(Stage(image=image, name=m[2]))
        elif op == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            assert stages, f"{op} before FROM"
            stages[-1].instructions.append((op, rest))
    return args, stages


def exec_form(arg: str) -> list[str]:
    value = json.loads(arg)
    assert isinstance(value, list), f"use the exec form: {arg}"
    return value


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


@pytest.fixture(scope="module")
def runtime(stages) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for d in deps:
        name, sep, version = d.partition("==")
        assert sep and version, f"pyproject dependency not pinned: {d}"
        out[name.strip().lower()] = version.strip()
    return out


@pytest.fixture(scope="module")
def user_deployment() -> dict:
    """The per-job pipeline's code server (the image's default command); the research one differs only in its
    module (test_helm_values.test_code_location_deployments)."""
    values = yaml.safe_load((ROOT / "helm" / "values.yaml").read_text())
    by_name = {d["name"]: d for d in values["dagster-user-deployments"]["deployments"]}
    return by_name["igait-pipeline"]


def test_multi_stage_on_debian_python_311(stages, runtime):
    assert len(stages) >= 2
    for s in stages:
        assert re.fullmatch(r"python:3\.11-slim(-bookworm|-trixie)?", s.image), s.image
    assert any("--from=" + stages[0].name in c for c in runtime.all("COPY")), "runtime copies the built venv"
    assert not any("pip install" in r for r in runtime.all("RUN")), "nothing is pip-installed in the runtime stage"


def _pip_installs(stage: Stage) -> list[list[str]]:
    cmds = []
    for run in stage.all("RUN"):
        lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for tok in [*lexer, "&&"]:
            if tok in ("&&", ";", "||"):
                if words[:2] == ["pip", "install"]:
                    cmds.append(words[2:])
                words = []
            else:
                words.append(tok)
    return cmds


def test_requirements_are_generated_from_pyproject(stages, pins, tmp_path):
    """Run the Dockerfile's own requirements step on pyproject.toml and check it yields every pin, and that
    the same RUN installs them."""
    build = stages[0]
    (run,) = [r for r in build.all("RUN") if "tomllib" in r]
    generate, _, rest = run.partition("&&")
    words = shlex.split(generate)
    assert words[:2] == ["python", "-c"] and words[-2:] == [">", "requirements.txt"], generate
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run([sys.executable, "-c", words[2]], cwd=tmp_path, capture_output=True, text=True,
                         check=True, timeout=30).stdout.split()
    assert {d.split("==")[0].lower(): d.split("==")[1] for d in out} == pins
    assert shlex.split(rest) == ["pip", "install", "-r", "requirements.txt"]
    copies = build.all("COPY")
    assert copies.index("pyproject.toml ./") < copies.index("igait_pipeline ./igait_pipeline"), \
        "dependencies are installed before the code is copied (layer cache)"


def test_explicit_pins_match_pyproject_and_torch_is_cpu(stages, pins):
    installs = _pip_installs(stages[0])
    explicit = [w for args in installs for w in args if "==" in w]
    assert explicit, "torch is installed explicitly from the CPU index"
    for req in explicit:
        name, version = req.split("==")
        assert pins[name.lower()] == version, f"Dockerfile pins {req}, pyproject.toml {name}=={pins[name.lower()]}"
    (torch_args,) = [a for a in installs if any(w.startswith("torch==") for w in a)]
    assert "--index-url" in torch_args
    build_args = dict(a.partition("=")[::2] for a in stages[0].all("ARG"))
    assert build_args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    assert ["--no-deps", "."] in installs, "the package itself adds no unpinned dependencies"


def test_ffmpeg_from_debian(runtime):
    apt = [r for r in runtime.all("RUN") if "apt-get install" in r]
    assert apt and "ffmpeg" in shlex.split(apt[0])
    assert "rm -rf /var/lib/apt/lists/*" in apt[0]


def test_runs_as_non_root(runtime, user_deployment):
    user = runtime.last("USER")
    assert user, "no USER: the container would run as root"
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric non-zero UID (runAsNonRoot can only verify numbers)"
    assert any(f"--uid {uid}" in r for r in runtime.all("RUN")), "the user exists in /etc/passwd"
    sec = user_deployment["podSecurityContext"]
    assert sec["runAsUser"] == int(uid) and sec["runAsNonRoot"] is True
    if gid:
        assert sec["runAsGroup"] == int(gid)
    assert runtime.all("ENV") and "DAGSTER_HOME=/opt/dagster/dagster_home" in " ".join(runtime.all("ENV"))
    assert any(f"chown -R {uid}:" in r and "/opt/dagster" in r for r in runtime.all("RUN"))


def _code_server_params(args: list[str]) -> dict:
    """Parse `dagster code-server start ...` with Dagster's own CLI definition."""
    from dagster._cli import cli

    assert args[:3] == ["dagster", "code-server", "start"], args
    ctx = cli.commands["code-server"].commands["start"].make_context("start", list(args[3:]))
    p = ctx.params
    module = p["module_name"]
    return {"module": module[0] if isinstance(module, (tuple, list)) else module, "host": p["host"],
            "port": p["port"]}


def test_default_command_serves_the_code_location_over_grpc(runtime, user_deployment):
    entrypoint, cmd = exec_form(runtime.last("ENTRYPOINT")), exec_form(runtime.last("CMD"))
    # The chart (and the run launcher) pass their command as container *args*; an ENTRYPOINT that is more than
    # an init would be prefixed to them.
    assert entrypoint == ["tini", "--"]
    assert "tini" in shlex.split([r for r in runtime.all("RUN") if "apt-get install" in r][0])
    served = _code_server_params(cmd)
    assert served == {"module": "igait_pipeline.definitions", "host": "0.0.0.0", "port": user_deployment["port"]}
    assert runtime.last("EXPOSE") == str(user_deployment["port"])
    # What the chart runs: dagster code-server start -h 0.0.0.0 -p <port> <codeServerArgs>
    chart_args = ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", str(user_deployment["port"]),
                  *user_deployment["codeServerArgs"]]
    assert _code_server_params(chart_args) == served
    toml = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert toml["tool"]["dagster"]["module_name"] == served["module"]


def test_dockerignore_lets_in_only_what_is_copied(stages):
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for p in patterns:
            neg = p.startswith("!")
            pat = p[1:] if neg else p
            if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat.rstrip("/") + "/*") or pat == "**":
                keep = neg
        return keep

    sources = [c.split()[0] for s in stages for c in s.all("COPY") if not c.startswith("--from")]
    for src in sources:
        assert included(src) or included(src + "/placement.py"), src
    for private in (".venv/bin/python", ".git/config", "data/storage/x", "igait_pipeline_tests/stages/test_media.py",
                    "dagster_home/dagster.yaml"):
        assert not included(private), private
    assert included("igait_pipeline/placement.yaml"), "package data goes into the image"
