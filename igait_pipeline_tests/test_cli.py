"""The igait command and the embedded dagster.yaml."""
import json
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, instance_for_test, materialize

from igait_pipeline import cli
from igait_pipeline.layout import PIPELINE_STAGES, job_key
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, REPO


@pytest.fixture
def meta_file(tmp_path):
    p = tmp_path / "meta.json"
    p.write_text(json.dumps(GOOD_METADATA))
    return p


def test_submit_writes_videos_then_metadata_and_prints_the_id(local_storage, short_clip, meta_file, capsys):
    assert cli.main(["submit", "--front", str(short_clip), "--side", str(short_clip), "--metadata", str(meta_file),
                     "--user-id", "user123"]) == 0
    assert capsys.readouterr().out.strip() == "user123_1"
    assert cli.main(["submit", "--front", str(short_clip), "--side", str(short_clip), "--metadata", str(meta_file),
                     "--user-id", "user123"]) == 0
    assert capsys.readouterr().out.strip() == "user123_2"
    objs = {o.key: o for o in local_storage.list("jobs/user123_1/")}
    assert set(objs) == {job_key("user123_1", 0, n) for n in ("front.mp4", "side.mp4", "metadata.json")}
    meta = objs[job_key("user123_1", 0, "metadata.json")]
    assert all(meta.updated >= o.updated for o in objs.values())  # metadata.json last


@pytest.mark.parametrize("args,message", [
    (["--job-id", "user 1/2"], "job ID 'user 1/2' is malformed"),
    (["--job-id", ""], "job ID '' is empty"),  # was: silently replaced by a generated ID
    (["--job-id", "a_1\n"], "contains white space"),  # was: accepted, making jobs/a_1\n/
    (["--metadata", "BAD"], "metadata.json is invalid: email"),
    (["--side", "CORRUPT"], "side video"),
])
def test_submit_refuses_bad_input_before_storing_anything(local_storage, short_clip, corrupt_video, meta_file,
                                                          tmp_path, capsys, args, message):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**GOOD_METADATA, "email": "nope"}))
    base = {"--front": str(short_clip), "--side": str(short_clip), "--metadata": str(meta_file)}
    extra = dict(zip(args[::2], args[1::2]))
    extra = {k: {"BAD": str(bad), "CORRUPT": str(corrupt_video)}.get(v, v) for k, v in extra.items()}
    argv = ["submit"] + [x for kv in {**base, **extra}.items() for x in kv]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert list(local_storage.list("jobs/")) == []


def test_submit_refuses_an_existing_job(local_storage, short_clip, meta_file, capsys):
    argv = ["submit", "--front", str(short_clip), "--side", str(short_clip), "--metadata", str(meta_file),
            "--job-id", "user9_1"]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 2
    assert "job user9_1 already exists" in capsys.readouterr().err


def test_status_reports_stages_from_the_instance(local_storage, short_clip, meta_file):
    from igait_pipeline import assets
    from igait_pipeline.resources import build_resources

    job_id = cli.submit(short_clip, short_clip, meta_file, job_id="user7_1", storage=local_storage)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("jobs", [job_id])
        front, side = assets.converted_video
        for view in (front, side):  # one view, then the other: the stage is materialized once both are
            assert materialize([assets.upload, view], partition_key=job_id, instance=instance,
                               resources=build_resources(str(local_storage.root))).success
            if view is front:
                assert cli.job_status(job_id, instance)["stages"]["converted_video"]["state"] == "not materialized"
        st = cli.job_status(job_id, instance)
    assert list(st["stages"]) == [s.asset for s in PIPELINE_STAGES]  # seven stages, not one line per view
    assert st["stages"]["converted_video"]["state"] == "materialized"
    assert st["stages"]["keypoints"]["state"] == "not materialized"
    assert st["uploaded"] and st["result"] is None


def test_embedded_dagster_yaml_gives_sqlite_and_a_queued_coordinator(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = DagsterInstance.get()
    try:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 2
        assert type(instance.run_storage).__name__ == "ConsolidatedSqliteEventLogStorage" or \
            "Sqlite" in type(instance.run_storage).__name__
        assert Path(instance.root_directory) == home
    finally:
        instance.dispose()


def _embedded_instance(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return DagsterInstance.get()


def test_embedded_dagster_yaml_limits_each_job_to_one_run_and_monitors_runs(tmp_path, monkeypatch):
    """Issue 12: two materializations of one partition both ran; a run whose worker was SIGKILLed stayed
    STARTED for ever."""
    instance = _embedded_instance(tmp_path, monkeypatch)
    try:
        limits = {(lim["key"], json.dumps(lim.get("value"), sort_keys=True)): lim["limit"]
                  for lim in instance.run_coordinator.get_run_queue_config().tag_concurrency_limits}
        per_value = json.dumps({"applyLimitPerUniqueValue": True})
        assert limits[("dagster/partition", per_value)] == 1 and limits[("igait/job_id", per_value)] == 1
        assert instance.run_monitoring_enabled and instance.run_launcher.supports_check_run_worker_health
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    finally:
        instance.dispose()


def test_run_monitoring_fails_a_run_whose_worker_died(tmp_path, monkeypatch):
    import logging
    import subprocess
    import sys

    from dagster import DagsterRunStatus
    from dagster._core.events import EngineEventData
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    instance = _embedded_instance(tmp_path, monkeypatch)
    try:
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        run = instance.add_run(DagsterRun(job_name="igait_job", run_id="r" * 8 + "-0000-0000-0000-000000000000",
                                          status=DagsterRunStatus.STARTED, tags={"dagster/partition": "u_1"}))
        instance.report_engine_event(f"Started process for run (pid: {worker.pid}).", run,
                                     EngineEventData.in_process(worker.pid))
        assert instance.run_launcher.check_run_worker_health(run).status.value == "RUNNING"
        worker.kill()  # SIGKILL of the run worker
        worker.wait()
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status.value == "FAILED" and str(worker.pid) in health.msg
        record = instance.get_run_records()[0]
        monitor_started_run(instance, None, record, logging.getLogger("test"))
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    finally:
        instance.dispose()
