"""The README and docs/ are executable: every command of every ```bash block is run as written, in order (README
first, then docs/ by name), in a fresh copy of the checkout with its own instance and storage, and must exit 0.

What "fresh" means: the tracked files of this checkout copied to a temp directory, `.venv` linked to this one, and
what `scripts/setup.sh` leaves behind (`.dagster_home/dagster.yaml` with a migrated SQLite instance, the sample
video under data/samples/) — the set-up itself is not re-run. Placeholders a reader replaces are given real values:
`FRONT.mp4`, `SIDE.mp4`, `META.json` are files in the copy (a real front-view walk, 3 s of a real side-view walk:
enough for a job that runs to results.zip, which is all this test reads; valid metadata); `DIR` / `NAME` /
`VERSION` are a model trained elsewhere, its name and version (docs/research.md), with a labelled simulated cohort
in storage for it to be validated on. Long-running services (`dagster dev`, the metrics
exporter) are started, must answer on their port, and are stopped before the next command. What cannot run here
is in SKIP, with the reason; a skipped line is reported, never silently dropped.

After the README's commands, "Materialize all" on a job partition is launched through the webserver's GraphQL API
the way the UI does it (every asset of the code location, one partition): the launched run holds only per-job
assets, never a cohort-level one (issue 25: `*` selected the research assets and the run failed).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from igait_pipeline.layout import PIPELINE_STAGES
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# command prefix -> why it is not run here
SKIP = {
    "bash scripts/setup.sh": "the set-up itself: CI runs it (.ci/run) before the tests; this test starts from "
                             "its result",
    ".venv/bin/pytest": "the test command: CI runs it, and this test is part of it",
    ".venv/bin/python -m bench.job": "benchmark (several minutes: three rounds of a whole job and the raw tools)",
    ".venv/bin/python bench/stages.py": "benchmark (minutes: every stage against its raw tool)",
    ".venv/bin/python -m bench.sensor_tick": "benchmark (writes 10,000 jobs, local and on the GCS emulator)",
    ".venv/bin/python -m bench.walkers": "benchmark on clips that are never committed (.cache/bench-media)",
    ".venv/bin/python -m bench.events": "benchmark on clips that are never committed (.cache/bench-media); "
                                        "test_events_bench.py runs it on the Sports2D demo",
    ".venv/bin/python -m bench.pairs": "benchmark on clips that are never committed (.cache/bench-media); "
                                       "test_pairs_bench.py tests its parts",
    ".venv/bin/python -m bench.front_scenes": "benchmark (stage 2 on 822 synthetic scenes, many minutes)",
    ".venv/bin/python -m bench.research": "benchmark (10,000 jobs / an 80-participant cohort)",
    ".venv/bin/python -m bench.load": "load test (N jobs through a daemon); test_load_harness.py runs it with N = 3",
    "gcloud ": "Google Cloud (GKE, Cloud SQL, IAM, Artifact Registry): not reachable from this machine",
    "export PG_HOST=$(gcloud": "asks Cloud SQL for its address: not reachable from this machine",
    "kubectl ": "needs the GKE cluster: not reachable from this machine",
    "bash iam.sh": "applies the generated IAM script on Google Cloud: not reachable from this machine "
                   "(deploy/test_iam.py checks the script: bash -n, and every condition against the stage table)",
    "helm ": "the Dagster chart repository and a cluster: not reachable from this machine",
    "docker ": "needs a Docker engine and a registry: none here (the Dockerfile is checked by tests/deploy)",
}
# command prefix -> the URL that must answer while it runs
SERVICES = {
    ".venv/bin/dagster dev": "http://127.0.0.1:3000/server_info",
    "DAGSTER_HOME=$PWD/.dagster_home .venv/bin/igait-metrics --port 9464": "http://127.0.0.1:9464/metrics",
    "DAGSTER_HOME=$PWD/.dagster_home .venv/bin/python -m igait_pipeline.status.metrics --port 9464":
        "http://127.0.0.1:9464/metrics",
}
MODEL_VERSION, MODEL_NAME = "2.1.0", "team-net"
# the README's command that lists what `--select '*'` covers on the per-job code location: its output is checked
LIST_STAR = ".venv/bin/dagster asset list -m igait_pipeline.definitions --select '*'"


def doc_commands(path: Path) -> list[tuple[int, str]]:
    """(line, command) of every command in the file's ```bash blocks: continuation lines joined, comment-only and
    blank lines left out (a trailing comment stays: bash ignores it)."""
    text = path.read_text()
    out = []
    for m in re.finditer(r"```bash\n(.*?)```", text, re.S):
        first = text[:m.start()].count("\n") + 2
        pending, start = "", 0
        for i, line in enumerate(m.group(1).splitlines()):
            if not pending:
                start = first + i
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            cmd = (pending + line).strip()
            pending = ""
            if cmd and not cmd.startswith("#"):
                out.append((start, cmd))
    return out


def skip_reason(cmd: str) -> str | None:
    return next((why for prefix, why in SKIP.items() if cmd.startswith(prefix)), None)


def test_every_doc_command_is_run_or_skipped_with_a_reason():
    """The parse itself: the README's main commands are found, every skip names its reason, and no bracketed
    optional part (which bash cannot run as written) is left in a command that is run."""
    cmds = {c for p in DOCS for _, c in doc_commands(p)}
    assert ".venv/bin/igait demo      # 2. run the main job on the public sample walking video (local storage, " \
           "SQLite instance)" in cmds
    assert any(c.startswith(LIST_STAR) for c in cmds)  # what '*' covers, read back by the test below
    assert any("--select 'gait_cycles*' --partition user123_5" in c for c in cmds)
    run = [c for c in cmds if not skip_reason(c)]
    assert not [c for c in run if re.search(r"\s\[[^\]]*\]", c.split("#")[0])], "optional [..] in a command"
    unused = [p for p in SKIP if not any(c.startswith(p) for c in cmds)]
    assert not unused, f"skip entries that match no command any more: {unused}"


class Shell:
    """Runs doc commands in the copy, one bash per command, the exports of earlier commands carried over."""

    def __init__(self, work: Path, env: dict):
        self.work, self.env = work, env
        self.exports = work / ".doc_exports.sh"
        self.exports.write_text("")
        self.log: list[str] = []

    def script(self, cmd: str) -> str:
        return f"set -eo pipefail\nsource {self.exports}\n{cmd}\nexport -p > {self.exports}\n"

    def run(self, cmd: str, where: str) -> subprocess.CompletedProcess:
        t = time.monotonic()
        proc = subprocess.run(["bash", "-c", self.script(cmd)], cwd=self.work, env=self.env, capture_output=True,
                              text=True, timeout=900)
        self.log.append(f"{time.monotonic() - t:6.1f} s  {where}: {cmd[:90]}")
        assert proc.returncode == 0, (f"{where}: `{cmd}` exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
                                      f"\n--- stderr\n{proc.stderr[-5000:]}")
        return proc

    def service(self, cmd: str, url: str, where: str) -> None:
        t = time.monotonic()
        log = self.work / f".service-{len(self.log)}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(["bash", "-c", f"source {self.exports}\n{cmd}"], cwd=self.work,
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    urllib.request.urlopen(url, timeout=3).read()
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    assert proc.poll() is None, f"{where}: `{cmd}` exited {proc.returncode}: {log.read_text()[-3000:]}"
                    assert time.monotonic() < deadline, f"{where}: `{cmd}`: {url} never answered: " \
                                                        f"{log.read_text()[-3000:]}"
                    time.sleep(1)
        finally:
            _kill_group(proc)
        self.log.append(f"{time.monotonic() - t:6.1f} s  {where}: {cmd[:90]} (served {url})")


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the service's process group (bash and what it started), SIGKILL after 30 s."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _fresh_copy(work: Path, sample_video: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and (REPO / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    (work / ".venv").symlink_to(REPO / ".venv")
    # what scripts/setup.sh leaves: the sample, the instance's home with dagster.yaml, its SQLite storage migrated
    (work / "data" / "samples").mkdir(parents=True)
    shutil.copyfile(sample_video, work / "data" / "samples" / "sports2d_demo.mp4")
    (work / ".dagster_home").mkdir()
    shutil.copyfile(work / "dagster.yaml", work / ".dagster_home" / "dagster.yaml")
    subprocess.run([str(REPO / ".venv" / "bin" / "dagster"), "instance", "migrate"], cwd=work, check=True,
                   capture_output=True, env={**os.environ, "DAGSTER_HOME": str(work / ".dagster_home")})


def _research_cohort(work: Path, monkeypatch) -> Path:
    """docs/research.md's starting point: a labelled (simulated) cohort in the copy's storage, its jobs known to the
    instance, and DIR: a model trained elsewhere on other children."""
    from dagster import DagsterInstance

    from igait_pipeline.research import cohort
    from igait_pipeline.research_assets import LABELS_KEY
    from igait_pipeline.storage import LocalStorage
    from igait_pipeline_tests.research.team_model import export_team_model

    settings = cohort.CohortSettings(participants_per_class=10, jobs_per_participant=1, overlay_width=0)
    storage = LocalStorage(work / "data" / "storage")
    jobs = cohort.write_cohort(storage, settings)
    cohort.write_stage5(storage, jobs)
    monkeypatch.setenv("DAGSTER_HOME", str(work / ".dagster_home"))  # dagster.yaml reads it
    instance = DagsterInstance.from_config(str(work / ".dagster_home"))
    instance.add_dynamic_partitions("jobs", [j.job_id for j in jobs])
    storage.write_bytes(LABELS_KEY, cohort.cohort_labels(jobs, settings))
    # trained on 20 other children per class: on these 10 per class its AUC (0.96, interval from 0.86) passes the
    # default gate, as a model worth importing would
    team = cohort.CohortSettings(participants_per_class=20, jobs_per_participant=1, overlay_width=0, seed=7)
    return export_team_model(work / "elsewhere", name=MODEL_NAME, version=MODEL_VERSION, settings=team)


def _materialize_all_through_graphql(work: Path, env: dict, job_id: str) -> None:
    """The UI's "Materialize all" on a job partition: every executable asset node of the per-job code location,
    launched as one run of the implicit asset job with the partition tag. The launched run holds only per-job
    assets: no cohort asset (they are another code location)."""
    from igait_pipeline.research_assets import RESEARCH_ASSETS
    from igait_pipeline_tests.fixtures.webserver import dagster_webserver

    with dagster_webserver(work / ".dagster_home", env={k: v for k, v in env.items() if k != "DAGSTER_HOME"},
                           workspace=work / "workspace.yaml", cwd=work) as graphql:
        repo = '{repositoryLocationName: "igait_pipeline", repositoryName: "__repository__"}'
        nodes = graphql(f"{{ repositoryOrError(repositorySelector: {repo}) {{ ... on Repository {{ "
                        "assetNodes { assetKey { path } isExecutable } } } }")["repositoryOrError"]["assetNodes"]
        keys = [n["assetKey"]["path"] for n in nodes if n["isExecutable"]]
        everywhere = graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
        research = [a.key.path for a in RESEARCH_ASSETS]
        assert all(r in [n["assetKey"]["path"] for n in everywhere] for r in research)  # one lineage graph
        assert keys and not [k for k in keys if k in research], keys
        params = {"selector": {"repositoryLocationName": "igait_pipeline", "repositoryName": "__repository__",
                               "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": k} for k in keys]},
                  "executionMetadata": {"tags": [{"key": "dagster/partition", "value": job_id}]}}
        launched = graphql("mutation Launch($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) { "
                           "__typename ... on LaunchRunSuccess { run { runId assetSelection { path } } } "
                           "... on PythonError { message } ... on InvalidSubsetError { message } } }",
                           {"p": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    selected = sorted(k["path"] for k in launched["run"]["assetSelection"])
    assert selected == sorted(keys) and not [k for k in selected if k in research], selected


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_readme_and_docs_commands_run_as_written(tmp_path, monkeypatch, sample_video, vtest_approaching_front,
                                                 side_walk_3s):
    work = tmp_path / "igait-pipeline"
    work.mkdir()
    t = time.monotonic()
    _fresh_copy(work, sample_video)
    copied = f"{time.monotonic() - t:6.1f} s  (test) the fresh copy and its instance"
    shutil.copyfile(vtest_approaching_front, work / "FRONT.mp4")
    shutil.copyfile(side_walk_3s, work / "SIDE.mp4")
    (work / "META.json").write_text(json.dumps(GOOD_METADATA))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IGAIT_", "DAGSTER_", "PYTEST_"))}
    shell = Shell(work, env)
    shell.log.append(copied)
    skipped = []
    for doc in DOCS:
        if doc.name == "research.md":
            t = time.monotonic()
            model_dir = _research_cohort(work, monkeypatch)
            shell.log.append(f"{time.monotonic() - t:6.1f} s  (test) the research cohort and the model from elsewhere")
        for line, cmd in doc_commands(doc):
            where = f"{doc.relative_to(REPO)}:{line}"
            if why := skip_reason(cmd):
                skipped.append(f"{where}: {cmd[:60]} — {why}")
                continue
            cmd_run = cmd
            if doc.name == "research.md":  # the placeholders research.md explains
                for word, value in (("DIR", str(model_dir)), ("VERSION", MODEL_VERSION), ("NAME", MODEL_NAME)):
                    cmd_run = re.sub(rf"\b{word}\b", value, cmd_run)
            service = next((url for prefix, url in SERVICES.items() if cmd.startswith(prefix)), None)
            if service:
                shell.service(cmd_run, service, where)
            else:
                proc = shell.run(cmd_run, where)
                if cmd.startswith(LIST_STAR):  # '*' on the per-job location: every stage asset, no cohort asset
                    assert sorted(proc.stdout.split()) == sorted(k for st in PIPELINE_STAGES for k in st.asset_keys), \
                        proc.stdout
        if doc.name == "README.md":
            # the README ran user123_5 whole (`igait run --job-id`), then stage 5 on: now "Materialize all"
            t = time.monotonic()
            _materialize_all_through_graphql(work, env, "user123_5")
            shell.log.append(f"{time.monotonic() - t:6.1f} s  (test) Materialize all through GraphQL")
    print("\n".join(shell.log), "\nskipped:\n" + "\n".join(skipped))
    # what the commands did, read back: the jobs ran to results.zip, the imported model scored user123_5 and the
    # rollback put the reference model back; the backfill was submitted (the daemon would run it)
    for job in ("demo_1", "user123_5", "user124_1"):
        assert (work / "data" / "storage" / "jobs" / job / "stage_7" / "results.zip").is_file(), job
    pred = json.loads((work / "data/storage/jobs/user123_5/stage_6/prediction.json").read_text())
    assert (pred["model"]["name"], pred["model"]["version"]) == (MODEL_NAME, MODEL_VERSION)
    in_use = json.loads((work / "data/storage/models/in_use.json").read_text())
    assert in_use["name"] != MODEL_NAME
    assert (work / "data/storage/research/gait_feature_table.parquet").is_file()
