"""Operators' view: a run's log as JSON lines and a job's spans over OTLP, from real runs.

- The real graph, configured by the repo's own dagster.yaml `python_logs`: the real uploads sensor accepts a job,
  `launch.run_job` runs it as the daemon's run worker would (multiprocess executor: each step its own process),
  the real status sensor sends the e-mail to a real SMTP server. The "videos" are not videos, so stage 1 refuses
  them after one ffprobe call: cheap, and the failure lines are checked too. Every line of the run is JSON with
  the job ID, run ID and the trace ID derived from the job and its upload version; no patient value anywhere;
  the spans (run, each step, upload, e-mail) reach a real OTLP/HTTP receiver as one trace.
- The status tests' stand-in graph (same asset keys and stage metadata, milliseconds per stage), run the same
  way, so that every step runs: one span per step with its stage, view and job ID, all in the job's trace.
"""
from __future__ import annotations

import json
import multiprocessing.forkserver
import os
from pathlib import Path

import pytest
import yaml
from dagster import Definitions, build_reconstructable_job, build_sensor_context, execute_job, instance_for_test

from igait_pipeline import assets, launch
from igait_pipeline.jobs import igait_job
from igait_pipeline.layout import CONVERTED, STAGES, VIEWS, job_key
from igait_pipeline.observability import logs, tracing
from igait_pipeline.partitions import PARTITION_TAG
from igait_pipeline.resources import JobStatusResource, SmtpResource, build_resources
from igait_pipeline.sensors import uploads_sensor
from igait_pipeline.status.sensors import job_status_sensor
from igait_pipeline.storage import LocalStorage
from igait_pipeline.uploads import check_upload
from igait_pipeline_tests.status import test_graph as stand_in

ROOT = Path(__file__).resolve().parents[2]
JOB = "kid-42_1"
METADATA = {"age": 6, "sex": "M", "height": "3'11\"", "weight": "21 kg", "ethnicity": "Not Hispanic or Latino",
            "email": "family.of.kid42@example.org"}
REFUSED = "kid-43_1"  # its upload is refused: a height nobody can read
REFUSED_METADATA = {**METADATA, "height": "taller than the door", "email": "family.of.kid43@example.org"}
PATIENT_VALUES = ["family.of.kid42@example.org", "Not Hispanic or Latino", "3'11", "21 kg",
                  "taller than the door", "family.of.kid43@example.org"]


def shipped_python_logs() -> dict:
    """The python_logs section of the embedded default instance (dagster.yaml, copied by scripts/setup.sh)."""
    return yaml.safe_load((ROOT / "dagster.yaml").read_text())["python_logs"]


def _put_upload(root: Path, job_id: str, metadata: dict = METADATA) -> None:
    st = LocalStorage(root)
    for view in VIEWS:
        st.write_bytes(job_key(job_id, 0, f"{view}.mp4"), b"these bytes are not a video")
    st.write_bytes(job_key(job_id, 0, "metadata.json"), json.dumps(metadata).encode())


def _read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]  # every line must be one JSON object


def test_tags_agree_with_launch():
    assert (logs.JOB_TAG, logs.UPLOAD_VERSION_TAG, logs.PARTITION_TAG) == (
        launch.JOB_TAG, launch.UPLOAD_VERSION_TAG, PARTITION_TAG)


def test_off_by_default(monkeypatch):
    """`dagster dev` stays readable: no JSON lines without $IGAIT_LOG_JSON, no spans without an endpoint."""
    monkeypatch.delenv(logs.JSON_ENV, raising=False)
    for name in tracing.ENDPOINT_ENVS:
        monkeypatch.delenv(name, raising=False)
    handler = shipped_python_logs()["dagster_handler_config"]["handlers"]["json_lines"]
    assert handler["target_env"] == logs.JSON_ENV
    assert logs.JsonLinesHandler(target_env=logs.JSON_ENV).target is None
    assert tracing.provider() is None and tracing.start_span("x", 1) is None
    monkeypatch.setenv(logs.JSON_ENV, "1")
    assert logs.JsonLinesHandler(target_env=logs.JSON_ENV).target == "stderr"
    prod = yaml.safe_load((ROOT / "deploy" / "dagster.prod.yaml").read_text())
    assert prod["python_logs"]["dagster_handler_config"]["handlers"]["json_lines"]["target"] == "stdout"


def test_trace_ids_are_derived_from_job_and_upload_version():
    a = tracing.trace_id_for(JOB, "0123abcd")
    assert a == tracing.trace_id_for(JOB, "0123abcd") and 0 < a < 2 ** 128
    assert a != tracing.trace_id_for(JOB, "0123abce") and a != tracing.trace_id_for("kid-42_2", "0123abcd")
    # a run without an upload version (a stage materialized from the UI) has a trace of its own
    assert tracing.trace_id_for(JOB, None, "run-a") != tracing.trace_id_for(JOB, None, "run-b")


def test_real_run_logs_json_lines_and_exports_one_trace(tmp_path, monkeypatch, smtp_server, otlp_receiver):
    root = tmp_path / "storage"
    _put_upload(root, JOB)
    _put_upload(root, REFUSED, REFUSED_METADATA)
    log_file = tmp_path / "igait.jsonl"
    monkeypatch.setenv("IGAIT_STORAGE_ROOT", str(root))  # the run's code location (igait_pipeline.definitions)
    monkeypatch.setenv(logs.JSON_ENV, str(log_file))
    monkeypatch.setenv("IGAIT_EXECUTOR", "multiprocess")
    resources = {**build_resources(str(root)),
                 "job_status": JobStatusResource(uri=f"sqlite:{tmp_path}/status.sqlite3"),
                 "smtp": SmtpResource(host=smtp_server.host, port=smtp_server.port, timeout=5)}
    defs = Definitions(assets=[assets.upload, *assets.STAGE_ASSETS], jobs=[igait_job],
                       sensors=[uploads_sensor, job_status_sensor], resources=resources)

    with instance_for_test(overrides={"python_logs": shipped_python_logs()}) as instance:
        def tick(sensor):
            with build_sensor_context(instance=instance, definitions=defs, resources=resources) as ctx:
                return sensor(ctx)

        found = tick(uploads_sensor)
        (request,) = found.run_requests
        for add in found.dynamic_partitions_requests:  # what the daemon does with the sensor's result
            instance.add_dynamic_partitions(add.partitions_def_name, add.partition_keys)
        for event in found.asset_events:
            instance.report_runless_asset_event(event)
        job = check_upload(LocalStorage(root), JOB)
        assert request.tags == launch.run_tags(job)
        result = launch.run_job(instance, job)  # the run worker's work: each step in its own process
        assert not result.success
        tick(job_status_sensor)
    assert len(smtp_server.messages) == 1

    version = job.fingerprint
    trace_hex = tracing.trace_hex(tracing.trace_id_for(JOB, version))
    text = log_file.read_text()
    lines = _read_lines(log_file)
    run_lines = [x for x in lines if x["run_id"] == result.run_id]
    assert len(run_lines) >= 20
    for line in run_lines:
        assert line["job_id"] == JOB and line["trace_id"] == trace_hex and line["span_id"], line
        assert line["timestamp"] and line["level"] and line["service"] and line["message"] is not None, line
    # the step processes' lines: the stage's label as service, its view, the step's own span ID
    steps = {logs._op_name(k): v for k, v in zip(CONVERTED.asset_keys, VIEWS)}
    failed = [x for x in run_lines if x["event"] == "STEP_FAILURE"]
    assert {x["step"] for x in failed} == set(steps), failed
    for x in run_lines:
        if x["step"] in steps:
            assert (x["service"], x["stage"], x["view"]) == (CONVERTED.label, 1, steps[x["step"]]), x
            assert x["span_id"] == tracing.span_hex(tracing.step_span_id(result.run_id, x["step"]))
    assert {x["event"] for x in run_lines} >= {"RUN_START", "STEP_START", "STEP_FAILURE", "RUN_FAILURE"}
    for x in failed:  # the cause, as the stage gave it: the job, the stage, what is wrong
        assert x["level"] == "ERROR" and f"job {JOB}: {CONVERTED.label} failed" in x["error"], x
    # the sensors' lines: the sensor's name as service, the job ID, and the job's trace where the upload is known
    uploads = [x for x in lines if x["service"] == "uploads_sensor"]
    (accepted,) = [x for x in uploads if x["job_id"] == JOB]
    assert accepted["trace_id"] == trace_hex and version in accepted["message"], accepted
    (refused,) = [x for x in uploads if x["job_id"] == REFUSED]
    assert refused["level"] == "ERROR" and "height" in refused["message"] and refused["trace_id"] is None, refused
    sensor_lines = [x for x in lines if x["service"] == "job_status_sensor"]
    assert sensor_lines and all(x["job_id"] == JOB and x["trace_id"] == trace_hex for x in sensor_lines), \
        sensor_lines
    assert any("e-mail sent" in x["message"] for x in sensor_lines)
    for value in PATIENT_VALUES:
        assert value not in text, f"a patient value ({value!r}) is in the JSON log"

    # the same job's spans, received over OTLP: one trace, joined by derived IDs across processes
    want = {"upload", "run", "e-mail", *(f"{CONVERTED.label} ({v})" for v in VIEWS)}
    tracing.flush()
    spans = otlp_receiver.wait_for(lambda got: want <= {s.name for s in got})
    assert {s.trace_id for s in spans} == {trace_hex}
    by_name = {s.name: s for s in spans}
    upload, run, mail = by_name["upload"], by_name["run"], by_name["e-mail"]
    assert upload.parent_span_id == "" and run.parent_span_id == mail.parent_span_id == upload.span_id
    assert run.attributes["dagster.run_id"] == result.run_id and run.status == "STATUS_CODE_ERROR"
    assert mail.attributes[tracing.JOB_ID] == JOB and mail.attributes["igait.email_result"] == "sent"
    for view in VIEWS:
        step = by_name[f"{CONVERTED.label} ({view})"]
        assert step.parent_span_id == run.span_id and step.status == "STATUS_CODE_ERROR"
        assert step.attributes[tracing.JOB_ID] == JOB
        assert (step.attributes[tracing.STAGE], step.attributes[tracing.VIEW]) == (1, view)
        assert step.start_ns >= run.start_ns and step.end_ns <= run.end_ns
    assert all(s.service == tracing.SERVICE_NAME for s in spans)
    assert not any(v in json.dumps([s.attributes for s in spans]) for v in PATIENT_VALUES)


def stand_in_job():
    """The stand-in graph's igait_job (storage from $IGAIT_STORAGE_ROOT), re-loaded by name in step processes."""
    return stand_in.make_defs().resolve_job_def("igait_job")


def test_every_step_of_a_job_is_a_span_of_its_trace(tmp_path, monkeypatch, otlp_receiver):
    root = tmp_path / "storage"
    monkeypatch.setenv("IGAIT_STORAGE_ROOT", str(root))
    version = "5eed0f00"
    with instance_for_test(overrides={"python_logs": shipped_python_logs()}) as instance:
        stand_in.submit(instance, root, JOB)
        recon = build_reconstructable_job(__name__, "stand_in_job")
        forkserver = {"start_method": {"forkserver": {"preload_modules": [__name__]}}}
        with execute_job(recon, instance=instance, run_config={"execution": {"config": {"multiprocess": forkserver}}},
                         tags={PARTITION_TAG: JOB, launch.JOB_TAG: JOB, launch.UPLOAD_VERSION_TAG: version}) as res:
            assert res.success
            run_id = res.run_id
            step_keys = {e.step_key for e in res.all_events if e.event_type_value == "STEP_SUCCESS"}
    want = {node.name for node in stand_in_job().nodes}
    assert step_keys == want and {logs.step_stage(k)[0] for k in want} == set(STAGES[1:])

    spans = otlp_receiver.wait_for(lambda got: len([s for s in got if "dagster.step_key" in s.attributes])
                                   >= len(want) and any(s.name == "run" for s in got))
    assert {s.trace_id for s in spans} == {tracing.trace_hex(tracing.trace_id_for(JOB, version))}
    (run,) = [s for s in spans if s.name == "run"]
    steps = {s.attributes["dagster.step_key"]: s for s in spans if "dagster.step_key" in s.attributes}
    assert set(steps) == want and len(spans) == len(want) + 1  # one span per step, once each
    for key, s in steps.items():
        stage, view = logs.step_stage(key)
        assert s.parent_span_id == run.span_id and s.status == "STATUS_CODE_OK"
        assert s.attributes[tracing.JOB_ID] == JOB and s.attributes[tracing.STAGE] == stage.number
        assert s.attributes[tracing.STAGE_LABEL] == stage.label and s.attributes.get(tracing.VIEW) == view
        assert s.attributes["dagster.run_id"] == run_id
    assert {s.attributes.get(tracing.VIEW) for s in steps.values()} == {None, *VIEWS}


@pytest.fixture(autouse=True)
def _fresh_forkserver(monkeypatch):
    """Step processes are forked from the multiprocess executor's forkserver, one per test process, and inherit
    the environment it started with: restart it so this test's steps see this test's endpoint and JSON target,
    and stop it after, so later tests' steps do not write to them."""
    monkeypatch.delenv(logs.JSON_ENV, raising=False)
    multiprocessing.forkserver._forkserver._stop()
    yield
    multiprocessing.forkserver._forkserver._stop()


def test_metrics_exporter_writes_json_lines(tmp_path):
    """igait-metrics on an instance set up as scripts/setup.sh does (the repo's dagster.yaml), JSON switched on."""
    import re
    import subprocess
    import sys
    import urllib.request

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    log_file = tmp_path / "metrics.jsonl"
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT), logs.JSON_ENV: str(log_file)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "igait_pipeline.status.metrics", "--host", "127.0.0.1", "--port", "0",
         "--definitions", "igait_pipeline_tests.status.test_graph"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r"serving (http://\S+/metrics)", line)
        assert found, f"no 'serving' line: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        assert b"jobs_in_queue 0.0" in urllib.request.urlopen(found.group(1), timeout=30).read()
    finally:
        proc.terminate()
        proc.wait(10)
    (served,) = _read_lines(log_file)
    assert served["service"] == "igait-metrics" and served["level"] == "INFO"
    assert served["message"] == f"serving {found.group(1)}"
