"""The CLI path without a daemon, on a fresh instance: `igait submit`, then `igait run`, as a researcher does.

One real job that is not the sample (a 2.5 s cut of it in the front slot, the same cut mirrored as the side view),
run by the multiprocess executor in step processes. The run's event log must show the two views of stages 1, 3 and
4 running at the same time; the job document, the metrics and `igait status` must show one job with seven
stages; the uploads sensor, ticking afterwards, must not launch a second run for it. And the standard
`dagster asset materialize --partition ID` for a job that is no partition yet must say what to do.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    RunsFilter,
    build_sensor_context,
)
from prometheus_client import generate_latest

from igait_pipeline import assets, cli
from igait_pipeline.jobs import igait_job
from igait_pipeline.layout import (
    ARCHIVE,
    CONVERTED,
    PIPELINE_STAGES,
    STAGES,
    VIEWS,
    job_key,
    stage_of_asset,
    view_of_asset,
)
from igait_pipeline.research_assets import RESEARCH_ASSETS
from igait_pipeline.resources import JobStatusResource, SmtpResource, build_resources
from igait_pipeline.schemas import Cycles
from igait_pipeline.sensors import uploads_sensor
from igait_pipeline.status.events import StageMap
from igait_pipeline.status.jobdoc import JobDocument, job_store_from_uri
from igait_pipeline.status.metrics import registry_for
from igait_pipeline.status.sensors import job_status_sensor
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, REPO
from igait_pipeline_tests.fixtures.webserver import dagster_webserver

PER_VIEW = ("converted_video", "reframed_video", "keypoints")


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    """A fresh Dagster instance on disk, as `igait` uses it ($DAGSTER_HOME with the repository's dagster.yaml)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("IGAIT_STATUS_URI", f"sqlite:{tmp_path}/status.sqlite3")
    monkeypatch.delenv("IGAIT_EXECUTOR", raising=False)  # the default: multiprocess
    return home


@pytest.fixture
def meta_file(tmp_path):
    p = tmp_path / "meta.json"
    p.write_text(json.dumps(GOOD_METADATA))
    return p


def _step_intervals(instance, run_id: str) -> dict[str, tuple[float, float]]:
    times: dict[str, dict] = {}
    for rec in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        times.setdefault(rec.dagster_event.step_key, {})[rec.dagster_event.event_type] = rec.timestamp
    return {k: (v[DagsterEventType.STEP_START], v[DagsterEventType.STEP_SUCCESS]) for k, v in times.items()}


@pytest.mark.slow
def test_submit_then_run_without_a_daemon(local_storage, dagster_home, short_clip, mirrored_clip, meta_file,
                                          tmp_path, capsys):
    assert cli.main(["submit", "--front", str(short_clip), "--side", str(mirrored_clip), "--metadata",
                     str(meta_file), "--user-id", "walker-7"]) == 0
    job_id = capsys.readouterr().out.strip()
    assert job_id == "walker-7_1"

    # both clips are side views (no licensed front-view walk exists): the view check only warns, as `igait demo`
    assert cli.main(["run", "--job-id", job_id, "--view-check", "warn"]) == 0
    out = capsys.readouterr().out
    assert local_storage.exists(ARCHIVE.key(job_id))
    with zipfile.ZipFile(local_storage.local_path(ARCHIVE.key(job_id))) as z:
        assert {"stage_1/front.mp4", "stage_1/side.mp4", "stage_3/front_crop.json", "stage_3/side_crop.json",
                "stage_4/front_keypoints.json", "stage_4/side_keypoints.json", "SUMMARY.txt"} <= set(z.namelist())
    # `igait status`, printed by `igait run`: one job, seven stages, each materialized
    stage_lines = [ln for ln in out.splitlines() if ln.startswith("  stage ")]
    assert [ln.split()[1:3] for ln in stage_lines] == [[str(s.number), s.asset] for s in PIPELINE_STAGES]
    assert all(ln.endswith("materialized") and "not" not in ln for ln in stage_lines)

    instance = DagsterInstance.get()
    (run,) = instance.get_runs(filters=RunsFilter(tags={"dagster/partition": job_id}))
    assert run.status.value == "SUCCESS" and run.tags["igait/job_id"] == job_id
    # the views of stages 1, 3 and 4 ran at the same time, each in its own step
    steps = _step_intervals(instance, run.run_id)
    for name in PER_VIEW:
        (f0, f1), (s0, s1) = steps[f"{name}_front"], steps[f"{name}_side"]
        assert f0 < s1 and s0 < f1, f"{name}: front {f0:.2f}-{f1:.2f} and side {s0:.2f}-{s1:.2f} do not overlap"

    # a later uploads-sensor tick (the daemon starting afterwards, no cursor) requests no run for the job
    status_resource = JobStatusResource(uri=f"sqlite:{tmp_path}/status.sqlite3")
    with build_sensor_context(instance=instance, resources={"storage": build_resources()["storage"],
                                                            "job_status": status_resource}) as ctx:
        tick = uploads_sensor(ctx)
    assert not tick.run_requests and tick.skip_reason

    # the job document and the metrics: one job, seven stages, each succeeded once
    resources = {**build_resources(), "job_status": status_resource, "smtp": SmtpResource()}
    defs = Definitions(assets=[assets.upload, *assets.STAGE_ASSETS], jobs=[igait_job],
                       sensors=[uploads_sensor, job_status_sensor], resources=resources)
    with build_sensor_context(instance=instance, definitions=defs, resources=resources) as ctx:
        job_status_sensor(ctx)
    doc = job_store_from_uri(f"sqlite:{tmp_path}/status.sqlite3").get(job_id)
    JobDocument.model_validate(doc)
    assert doc["status"] == "completed" and doc["current_stage"] == 7
    assert sorted(doc["stages"]) == [str(s.number) for s in PIPELINE_STAGES]
    assert all(st["status"] == "success" for st in doc["stages"].values())
    assert doc["stages"]["4"]["output_keys"] == sorted(job_key(job_id, 4, n) for n in PIPELINE_STAGES[3].files)
    s1 = doc["stages"]["1"]  # the stage lasts from its first view's start to its last view's end
    first, last = min(steps["converted_video_front"][0], steps["converted_video_side"][0]), \
        max(steps["converted_video_front"][1], steps["converted_video_side"][1])
    assert abs(s1["started_at"].timestamp() - first) < 0.01 and abs(s1["completed_at"].timestamp() - last) < 0.01
    metrics = generate_latest(registry_for(instance, StageMap.from_definitions(defs))).decode()
    for s in PIPELINE_STAGES:
        assert f'stage_runs_total{{stage="{s.number}",status="success"}} 1.0' in metrics
        assert f'stage_runs_total{{stage="{s.number}",status="failed"}} 0.0' in metrics
    assert 'jobs_completed_total{status="completed"} 1.0' in metrics

    # gait_cycles' metadata: a count only beside a measured value; a missing one (the front slot holds a side
    # clip: no base of support) says why, with no count that would read as a measurement
    cycles_meta = instance.fetch_materializations(AssetKey("gait_cycles"), limit=1).records[0] \
        .asset_materialization.metadata
    detail = Cycles.model_validate_json(local_storage.read_bytes(job_key(job_id, 5, "cycles.json"))).parameter_details
    missing = {k for k, d in detail.items() if d.value is None}
    assert "base_width_ratio" in missing and all(detail[k].n == 0 for k in missing)
    assert {k.removeprefix("n/") for k in cycles_meta if k.startswith("n/")} == set(detail) - missing
    assert {k.removeprefix("not_measured/") for k in cycles_meta if k.startswith("not_measured/")} == missing
    assert "front view" in cycles_meta["not_measured/base_width_ratio"].value

    # what a researcher sees: the real webserver on this instance, read through the GraphQL API the UI uses
    ui_names_every_asset_by_its_stage(dagster_home, job_id)


def ui_names_every_asset_by_its_stage(dagster_home, job_id: str) -> None:
    """The UI names an asset by its key's last part (lineage sidebar, catalog, page title, breadcrumb): for every
    asset of the code location that name says its stage (and, per view, its view) — none is just "front" or
    "side" — and each stage asset shows this job's materialization under that name."""
    with dagster_webserver(dagster_home) as graphql:
        nodes = graphql("{ assetNodes { assetKey { path } description "
                        f'assetMaterializations(partitions: ["{job_id}"], limit: 1) {{ partition }} }} }}')
    shown = {}
    research = {a.key.path[-1] for a in RESEARCH_ASSETS}  # one per cohort, named for what they are
    for node in nodes["assetNodes"]:
        path = node["assetKey"]["path"]
        name = path[-1]  # what the UI shows
        if name in research:
            assert len(path) == 1, path
            continue
        stage, view = stage_of_asset(path), view_of_asset(path)
        assert name not in VIEWS and name.startswith(stage.asset), path
        assert view is None or name == f"{stage.asset}_{view}", path
        assert node["description"].startswith(f"Stage {stage.number}"), (name, node["description"][:40])
        shown[name] = [m["partition"] for m in node["assetMaterializations"]]
    assert sorted(shown) == sorted(k for s in STAGES for k in s.asset_keys)
    assert all(shown[k] == [job_id] for s in PIPELINE_STAGES for k in s.asset_keys), shown


def _dagster(*args: str, env: dict) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "dagster")
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=600, cwd=REPO)


def test_standard_cli_says_what_to_do_for_an_unknown_job_then_reruns_one_view(local_storage, dagster_home,
                                                                              short_clip, meta_file):
    env = {**os.environ, "PYTHONPATH": str(REPO), "IGAIT_MAX_CONCURRENT": "1"}
    job_id = cli.submit(short_clip, short_clip, meta_file, job_id="nodaemon_3", storage=local_storage)
    select = ["asset", "materialize", "-m", "igait_pipeline.definitions", "--select", CONVERTED.asset_key("front"),
              "--partition", job_id]
    refused = _dagster(*select, env=env)
    assert refused.returncode != 0
    assert "DagsterInvalidSubsetError" in refused.stderr  # Dagster's own error, then what to do
    assert f"igait: job {job_id} is not a partition of this Dagster instance yet" in refused.stderr
    assert f"igait register {job_id}" in refused.stderr and f"igait run --job-id {job_id}" in refused.stderr

    assert cli.main(["register", job_id]) == 0
    done = _dagster(*select, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    # one view of one stage: only the front view's file was written
    assert [o.key for o in local_storage.list(f"jobs/{job_id}/stage_1/")] == [job_key(job_id, 1, "front.mp4")]
