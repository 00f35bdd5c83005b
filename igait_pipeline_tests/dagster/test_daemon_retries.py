"""Transient failures under a real `dagster-daemon` (this repository's dagster.yaml: queued runs, run monitoring, run
retries with retry_on_asset_or_op_failure false), storage in the GCS emulator behind the fault-injecting proxy
(fixtures/gcs_faults.py), the real SMTP server catching the e-mails. Two real jobs (the load test's short clips),
uploaded together:

- `storefault_1`: the proxy fails some of its requests: stage 4's uploads (503), stage 3's downloads (connection
  reset), stage 4's manifest write (the reply lost after the write), copy and listing (503), stage 6's reads (429):
  the client's retries absorb them; and stage 5's uploads fail until Dagster has retried the gait_cycles step,
  longer than the client's retry limit ($IGAIT_GCS_RETRY_TIMEOUT_S=10 here): the run still succeeds, one run.
- `podkill_1`: its run worker is SIGKILLed while stage 4 (pose) runs, as when a pod dies; run monitoring marks
  the run failed, the daemon's run retry launches a second run (FROM_FAILURE: stages 1-3 are not run again)
  that completes.

For both: the job document ends `completed`, exactly one e-mail per job reaches the SMTP server (counted there,
once two more status-sensor ticks have ended), and every stage is whole (each manifest's files are there with their size
and sha256, the final keys hold the same bytes, no commit folder but the manifest's).

Run monitoring's poll interval is 5 s here instead of 30 s (dagster.yaml) so that the dead worker is noticed
quickly, and the status sensor's 5 s instead of 15 s ($IGAIT_STATUS_SENSOR_INTERVAL_S) so that the e-mails and the
ticks after them come sooner; the retry policy itself is the repository's."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from igait_pipeline.launch import JOB_TAG, RETRY_STRATEGY, RETRY_STRATEGY_TAG
from igait_pipeline.launcher import worker_pid
from igait_pipeline.layout import PIPELINE_STAGES, job_key, stage_prefix
from igait_pipeline.status.jobdoc import job_store_from_uri
from igait_pipeline.status.sensors import INTERVAL_ENV as STATUS_INTERVAL_ENV
from igait_pipeline.storage import storage_from_uri
from igait_pipeline.storage.gcs import RETRY_TIMEOUT_ENV
from igait_pipeline.storage.stage_files import manifest_key
from igait_pipeline_tests.fixtures.gcs_faults import Fault, start_front
from igait_pipeline_tests.fixtures.media import put_job

REPO = Path(__file__).resolve().parents[2]
METADATA = {"age": 8, "sex": "M", "height": "4'1\"", "weight": "26 kg", "ethnicity": "not stated"}
STATUS_INTERVAL_S = 5
JOBS = {"storefault_1": "family-store@example.org", "podkill_1": "family-kill@example.org"}


def _faults() -> list[Fault]:
    j = "storefault_1"
    return [Fault(("upload", "upload_start", "upload_chunk"), f"{j}/stage_4/.commit.", "503", times=2),
            Fault("download", f"{j}/stage_3/", "reset", times=2),
            Fault("upload", f"{j}/stage_4/.manifest.", "reset_after", times=1),
            Fault("copy", f"{j}/stage_4/", "503", times=1),
            Fault("list", f"{j}/stage_4/", "503", times=1),
            Fault(("download", "get"), f"{j}/stage_6/", "429", times=1),
            # an outage: every upload of stage 5 fails until the test has seen Dagster retry the step
            Fault(("upload", "upload_start", "upload_chunk"), f"{j}/stage_5/", times=-1)]


def _instance_yaml(home: Path) -> None:
    cfg = yaml.safe_load((REPO / "dagster.yaml").read_text())
    cfg["run_monitoring"]["poll_interval_seconds"] = 5
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stage_problems(storage, job_id: str) -> list[str]:
    """Every stage of the job whole: per manifest (one per view of a per-view stage) its files with the size and
    sha256 it records, the final key holding the same bytes, and no commit folder but the manifest's."""
    problems = []
    for st in PIPELINE_STAGES:
        prefix = stage_prefix(job_id, st.number)
        units = ["front", "side"] if st.per_view else [None]
        keys = {o.key for o in storage.list(prefix)}
        kept = set()
        for unit in units:
            try:
                manifest = json.loads(storage.read_bytes(manifest_key(prefix, unit)))
            except FileNotFoundError:
                problems.append(f"{prefix}: no manifest for {unit or 'the stage'}")
                continue
            for name, e in manifest["files"].items():
                data = storage.read_bytes(e["key"])
                if len(data) != e["size"] or _sha(data) != e["sha256"]:
                    problems.append(f"{e['key']} is not the file its manifest names")
                if storage.read_bytes(prefix + name) != data:
                    problems.append(f"{prefix + name} differs from its manifest's {e['key']}")
                kept.add(e["key"])
            kept.add(manifest_key(prefix, unit))
        stray = [k for k in keys if "/.commit." in k and k not in kept]
        if stray:
            problems.append(f"{prefix}: leftover commit objects {sorted(stray)[:3]}")
    return problems


def _step_keys(instance, run_id: str, event: DagsterEventType) -> list[str]:
    return [e.dagster_event.step_key for e in instance.all_logs(run_id, of_type=event)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
    except OSError:
        return "?"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_storage_faults_and_a_killed_run_worker_under_the_daemon(tmp_path, gcs_emulator, smtp_server, monkeypatch):
    from bench.load import MARK_ENV, clips, lingering, settle

    front_clip, side_clip = clips("short")
    home = tmp_path / "dagster_home"
    _instance_yaml(home)
    faults = _faults()
    mark = uuid.uuid4().hex
    with start_front(gcs_emulator.host, *faults) as front:
        root = f"gs://{gcs_emulator.bucket}/retries-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(home), "IGAIT_STORAGE_ROOT": root,
               "STORAGE_EMULATOR_HOST": front.host, "IGAIT_STATUS_URI": f"sqlite:{tmp_path}/status.sqlite3",
               "IGAIT_CACHE_DIR": str(tmp_path / "cache"), "IGAIT_EXECUTOR": "multiprocess",
               RETRY_TIMEOUT_ENV: "10", "IGAIT_STORAGE_RETRY_WAIT_S": "5", MARK_ENV: mark,
               "IGAIT_SMTP_HOST": smtp_server.host, "IGAIT_SMTP_PORT": str(smtp_server.port),
               "IGAIT_SMTP_SECURITY": "none", "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2",
               STATUS_INTERVAL_ENV: str(STATUS_INTERVAL_S)}
        for k in ("DAGSTER_HOME", "IGAIT_STORAGE_ROOT", "STORAGE_EMULATOR_HOST", "IGAIT_STATUS_URI"):
            monkeypatch.setenv(k, env[k])
        instance = DagsterInstance.get()  # creates the SQLite tables before the daemon's processes race to
        storage = storage_from_uri(root)
        for job_id, email in JOBS.items():
            put_job(storage, job_id, front_clip, side_clip, {**METADATA, "email": email})
        t0 = time.time()
        log = open(tmp_path / "daemon.log", "wb")
        daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                                   str(REPO / "workspace.yaml")], env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        killed = None
        try:
            def mails(job_id):
                return [m for m in list(smtp_server.messages) if JOBS[job_id] in m.rcpt_tos]

            deadline = t0 + 780
            outage = faults[-1]
            while time.time() < deadline and not all(mails(j) for j in JOBS):
                if outage.times:  # the outage ends once Dagster has put the step up for retry
                    for rec in instance.get_run_records(RunsFilter(tags={JOB_TAG: "storefault_1"})):
                        if _step_keys(instance, rec.dagster_run.run_id, DagsterEventType.STEP_UP_FOR_RETRY):
                            outage.times = 0
                if killed is None:
                    for rec in instance.get_run_records(RunsFilter(tags={JOB_TAG: "podkill_1"},
                                                                   statuses=[DagsterRunStatus.STARTED])):
                        run_id = rec.dagster_run.run_id
                        if any(k.startswith("keypoints_")
                               for k in _step_keys(instance, run_id, DagsterEventType.STEP_START)):
                            time.sleep(2)  # MediaPipe at work
                            pid, _ = worker_pid(instance, run_id)
                            os.kill(pid, signal.SIGKILL)
                            killed = (run_id, pid, time.time() - t0)
                time.sleep(1)
            mailed_at = time.time() - t0
            # two more status-sensor ticks: a second e-mail for a job would come now
            ticks = settle(instance, time.time()) if all(mails(j) for j in JOBS) else 0
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            log.close()
            orphans = {p: _cmdline(p) for p in lingering(mark, exclude=(os.getpid(),))}
            for p in orphans:  # only processes this test's daemon started (they carry its mark)
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        tail = (tmp_path / "daemon.log").read_text(errors="replace")[-3000:]
        store = job_store_from_uri(env["IGAIT_STATUS_URI"])
        docs = {j: store.get(j) for j in JOBS}
        runs = {j: sorted(instance.get_runs(RunsFilter(tags={JOB_TAG: j})), key=lambda r: r.tags.get(
            "dagster/retry_number", "0")) for j in JOBS}
        summary = {j: [(r.run_id[:8], r.status.value) for r in rs] for j, rs in runs.items()}
        print(f"e-mails after {mailed_at:.0f} s, then {ticks} status-sensor ticks; killed {killed}; runs {summary}; "
              f"faults injected "
              f"{[(f.kinds[0], f.name.split('/', 1)[1], f.action, f.injected) for f in faults]}; "
              f"{len(front.failed)} requests failed of {len(front.seen)}; orphans {len(orphans)}")
        assert all(mails(j) for j in JOBS), f"no e-mail in time: {summary}\n{tail}"
        assert ticks >= 2, f"{ticks} status-sensor ticks after the e-mails\n{tail}"

        # every job: completed once, one e-mail, every stage whole
        for j in JOBS:
            assert docs[j]["status"] == "completed" and docs[j]["email_status"] == "sent", (j, docs[j]["status"])
            assert len(mails(j)) == 1, (j, len(mails(j)))
            assert stage_problems(storage, j) == [], j
        assert not orphans, orphans

        # (a) storage faults: really injected, absorbed by the client, and one step retry for the outage
        assert all(f.injected >= 1 for f in faults), [(f.name, f.injected) for f in faults]
        assert {s.kind for s in front.failed} >= {"upload", "download", "copy", "list"}
        (run,) = runs["storefault_1"]
        assert run.status == DagsterRunStatus.SUCCESS
        assert _step_keys(instance, run.run_id, DagsterEventType.STEP_UP_FOR_RETRY) == ["gait_cycles"] * len(
            _step_keys(instance, run.run_id, DagsterEventType.STEP_UP_FOR_RETRY)) != []
        assert docs["storefault_1"]["stages"]["5"]["status"] == "success"

        # (b) the killed run worker: the first run failed, the daemon's retry resumed at stage 4 and completed
        assert killed is not None, "the run worker was never seen in stage 4"
        first, retry = runs["podkill_1"]
        assert first.run_id == killed[0] and first.status == DagsterRunStatus.FAILURE
        # the killed worker's steps died with it (they do not run on beside the retry run's)
        assert not [k for k in _step_keys(instance, first.run_id, DagsterEventType.STEP_SUCCESS)
                    if k.startswith("keypoints_")]
        assert retry.status == DagsterRunStatus.SUCCESS
        assert retry.tags.get("dagster/parent_run_id") == first.run_id and retry.tags.get("dagster/retry_number") == "1"
        assert retry.tags.get(RETRY_STRATEGY_TAG) == RETRY_STRATEGY
        redone = set(_step_keys(instance, retry.run_id, DagsterEventType.STEP_START))
        assert {"keypoints_front", "keypoints_side", "results_archive"} <= redone
        assert not redone & {"converted_video_front", "converted_video_side", "validation_report",
                             "reframed_video_front", "reframed_video_side"}, redone
        assert job_key("podkill_1", 7, "results.zip") in {o.key for o in storage.list(stage_prefix("podkill_1", 7))}
