"""The Prometheus exporter, scraped over HTTP after real runs: in process, and as the operator runs it
(`python -m igait_pipeline.status.metrics`) beside a Dagster instance on disk."""
import os
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterRunStatus, instance_for_test
from prometheus_client import start_http_server

from igait_pipeline.status.events import StageMap
from igait_pipeline.status.metrics import registry_for
from igait_pipeline_tests.status.test_graph import FAIL_TAG, HOLD_TAG, HOLDS, Hold, make_defs, run_job, submit

REPO = Path(__file__).resolve().parents[2]


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def create_a_run(instance, defs, job_id: str) -> None:
    """A run created for the job but not started yet (what waits for the coordinator or a run worker)."""
    run = instance.create_run_for_job(defs.resolve_job_def("igait_job"), tags={"dagster/partition": job_id})
    assert run.status == DagsterRunStatus.NOT_STARTED


@pytest.fixture
def served(tmp_path):
    with instance_for_test() as instance:
        defs = make_defs(tmp_path / "storage", f"sqlite:{tmp_path}/status.sqlite3")
        registry = registry_for(instance, StageMap.from_definitions(defs))
        server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        try:
            yield instance, defs, tmp_path / "storage", f"http://127.0.0.1:{server.server_port}/metrics"
        finally:
            server.shutdown()
            thread.join(10)


def test_metrics_after_real_runs(served):
    instance, defs, root, url = served
    before = scrape(url)
    assert before["jobs_submitted_total"] == 0 and before["jobs_in_queue"] == 0
    for j in ("user1_1", "user1_2", "user1_3"):
        submit(instance, root, j)
    run_job(defs, instance, "user1_1")
    run_job(defs, instance, "user1_2", {FAIL_TAG: "keypoints"})
    create_a_run(instance, defs, "user1_3")
    m = scrape(url)
    assert m["jobs_submitted_total"] == 3
    assert m['jobs_completed_total{status="completed"}'] == 1
    assert m['jobs_completed_total{status="failed"}'] == 1
    assert m['stage_runs_total{stage="3",status="success"}'] == 2
    assert m['stage_runs_total{stage="4",status="success"}'] == 1
    assert m['stage_runs_total{stage="4",status="failed"}'] == 1
    assert m['stage_runs_total{stage="7",status="skipped"}'] == 1
    assert m['stage_duration_seconds_count{stage="1"}'] == 2
    assert m['stage_duration_seconds_count{stage="7"}'] == 1
    assert 0 < m['stage_duration_seconds_sum{stage="1"}'] < 60
    assert m['stage_duration_seconds_bucket{le="+Inf",stage="1"}'] == 2
    assert m['stage_duration_seconds_bucket{le="60.0",stage="1"}'] == 2
    assert m["jobs_in_queue"] == 1
    # counters only grow; a scrape with nothing new changes nothing
    assert scrape(url) == m


def test_a_stage_is_counted_when_it_ends_not_when_it_starts(served):
    instance, defs, root, url = served
    submit(instance, root, "user2_1")
    hold = HOLDS["user2_1"] = Hold()
    worker = threading.Thread(target=run_job, args=(defs, instance, "user2_1", {HOLD_TAG: "gait_cycles"}))
    worker.start()
    try:
        assert hold.entered.wait(30)
        m = scrape(url)
        assert m['stage_runs_total{stage="4",status="success"}'] == 1
        assert m['stage_runs_total{stage="5",status="success"}'] == 0
        assert m['jobs_completed_total{status="completed"}'] == 0
    finally:
        hold.release.set()
        worker.join(60)
    m = scrape(url)
    assert m['stage_runs_total{stage="5",status="success"}'] == 1
    assert m['jobs_completed_total{status="completed"}'] == 1


def test_exporter_command_serves_an_instance_on_disk(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        defs = make_defs(tmp_path / "storage", f"sqlite:{tmp_path}/status.sqlite3")
        submit(instance, tmp_path / "storage", "user3_1")
        run_job(defs, instance, "user3_1")
        env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "igait_pipeline.status.metrics", "--host", "127.0.0.1", "--port", "0",
             "--definitions", "igait_pipeline_tests.status.test_graph"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            found = re.search(r"serving (http://\S+/metrics)", line)
            assert found, f"no 'serving' line: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
            m = scrape(found.group(1))
            assert m["jobs_submitted_total"] == 1
            assert m['jobs_completed_total{status="completed"}'] == 1
            assert m['stage_runs_total{stage="6",status="success"}'] == 1
            run_job(defs, instance, "user3_1", {FAIL_TAG: "converted_video"})  # a re-run, seen by the next scrape
            m = scrape(found.group(1))
            assert m['stage_runs_total{stage="1",status="failed"}'] == 1
            assert m['jobs_completed_total{status="failed"}'] == 1
        finally:
            proc.terminate()
            proc.wait(10)
