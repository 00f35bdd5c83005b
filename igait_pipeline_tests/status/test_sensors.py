"""The status sensor on a real Dagster instance, after real runs of igait_job (the stand-in graph of
igait_pipeline_tests.status.test_graph: same asset names, stages, IO manager and storage layout; stages take
milliseconds)."""
import os
import threading
import time

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context, instance_for_test

from igait_pipeline.layout import KEYPOINTS, job_key
from igait_pipeline.resources import JobStatusResource, SmtpResource
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.sensors import uploads_sensor
from igait_pipeline.status.events import ReaderCursor
from igait_pipeline.status.jobdoc import JobDocument, JobStore, job_store_from_uri
from igait_pipeline.status.sensors import job_status_sensor
from igait_pipeline.storage import LocalStorage
from igait_pipeline_tests.status.test_graph import (
    FAIL_TAG,
    HOLD_TAG,
    HOLDS,
    INVALID_TAG,
    METADATA,
    VALIDATION_REASONS,
    Hold,
    make_defs,
    put_upload,
    run_job,
    submit,
)
from igait_pipeline_tests.status.test_notify import forbidden_details


class Env:
    def __init__(self, instance: DagsterInstance, root, status_uri: str, smtp_server=None):
        self.instance = instance
        self.storage_root = root / "storage"
        smtp = SmtpResource(host=smtp_server.host, port=smtp_server.port, sender="iGait <r@igait.example>",
                            timeout=5) if smtp_server else SmtpResource(host="")
        self.defs = make_defs(self.storage_root, status_uri, smtp)
        self.status_uri = status_uri
        self.store: JobStore = job_store_from_uri(status_uri)
        self.cursor = None

    def tick(self, cursor: str | None = "current", resources: dict | None = None):
        """One evaluation of the sensor as the daemon does it; the cursor moves only if it succeeds."""
        start = self.cursor if cursor == "current" else cursor
        with build_sensor_context(instance=self.instance, cursor=start, definitions=self.defs,
                                  resources=resources or self.defs.resources) as ctx:
            result = job_status_sensor(ctx)
        if cursor == "current":
            self.cursor = result.cursor
        return result

    def submit(self, job_id: str, metadata: dict | None = None):
        submit(self.instance, self.storage_root, job_id, metadata)

    def run(self, job_id: str, tags: dict | None = None):
        return run_job(self.defs, self.instance, job_id, tags)


@pytest.fixture
def env(tmp_path, smtp_server):
    with instance_for_test() as instance:
        yield Env(instance, tmp_path, f"sqlite:{tmp_path}/status.sqlite3", smtp_server)


def test_document_follows_a_job_from_upload_to_result_and_one_e_mail(env, smtp_server):
    env.submit("user1_1")
    env.tick()
    doc = env.store.get("user1_1")
    JobDocument.model_validate(doc)
    assert doc["status"] == "submitted" and doc["current_stage"] == 0
    assert doc["patient"] == {"age": 7.0, "sex": "F", "height": 127.0, "weight": 24.9,
                              "ethnicity": "Hispanic or Latino"}
    assert doc["email"] == METADATA["email"] and doc["email_sent"] is False

    assert env.run("user1_1").success
    env.tick()
    doc = env.store.get("user1_1")
    JobDocument.model_validate(doc)
    assert doc["status"] == "completed" and doc["current_stage"] == 7
    assert doc["result"] == {"score": 0.27, "classification": "NO ASD",
                             "archive_key": "jobs/user1_1/stage_7/results.zip", "model": "test-model 0"}
    for n in range(1, 8):
        st = doc["stages"][str(n)]
        assert st["status"] == "success" and st["error"] is None
        assert st["started_at"] <= st["completed_at"] and st["duration_ms"] >= 0
        assert st["output_keys"] and all(k.startswith(f"jobs/user1_1/stage_{n}/") for k in st["output_keys"])
    assert doc["stages"]["7"]["output_keys"] == ["jobs/user1_1/stage_7/results.zip"]
    assert doc["email_sent"] is True

    assert len(smtp_server.messages) == 1
    msg = smtp_server.messages[0].message
    assert smtp_server.messages[0].rcpt_tos == [METADATA["email"]]
    body = msg.get_content()
    assert "Screening result: NO ASD (score 0.27" in body and "not a clinically validated test" in body
    archive = LocalStorage(env.storage_root).url(job_key("user1_1", 7, "results.zip"))
    assert archive in body  # locally the link is the archive's path
    assert forbidden_details(body.replace(archive, "")) == []  # the temp path may hold any digits


def test_each_stage_shows_up_as_it_starts(env):
    env.submit("user2_1")
    hold = HOLDS["user2_1"] = Hold()
    worker = threading.Thread(target=env.run, args=("user2_1", {HOLD_TAG: "keypoints"}))
    worker.start()
    try:
        assert hold.entered.wait(30)
        env.tick()  # while stage 4 runs
        doc = env.store.get("user2_1")
        assert doc["status"] == "processing" and doc["current_stage"] == 4
        assert [doc["stages"][str(n)]["status"] for n in range(1, 8)] == [
            "success", "success", "success", "processing", "pending", "pending", "pending"]
        assert doc["stages"]["4"]["started_at"] is not None and doc["stages"]["4"]["completed_at"] is None
        assert ReaderCursor.from_json(env.cursor).runs  # the run is followed through its own log
    finally:
        hold.release.set()
        worker.join(60)
    env.tick()
    assert env.store.get("user2_1")["status"] == "completed"
    assert ReaderCursor.from_json(env.cursor).runs == {}


def test_refused_videos_fail_the_job_with_the_reason_e_mailed(env, smtp_server):
    env.submit("user3_1")
    assert not env.run("user3_1", {INVALID_TAG: "1"}).success
    env.tick()
    doc = env.store.get("user3_1")
    assert doc["status"] == "failed" and doc["current_stage"] == 2
    assert doc["stages"]["1"]["status"] == "success"
    assert doc["stages"]["2"]["status"] == "failed"
    assert VALIDATION_REASONS[0] in doc["stages"]["2"]["error"]
    assert doc["stages"]["2"]["output_keys"] == ["jobs/user3_1/stage_2/validation.json"]
    assert [doc["stages"][str(n)]["status"] for n in range(3, 8)] == ["skipped"] * 5
    assert doc["result"] == {"score": None, "classification": None, "archive_key": None, "model": None}
    body = smtp_server.messages[0].message.get_content()
    assert VALIDATION_REASONS[0] in body and "record both videos again" in body
    assert len(smtp_server.messages) == 1


def test_retried_and_replayed_ticks_change_nothing_and_send_nothing_again(env, smtp_server):
    env.submit("user4_1")
    env.submit("user4_2")
    first_cursor = env.cursor
    env.run("user4_1")
    env.run("user4_2", {FAIL_TAG: "gait_cycles"})
    env.tick()
    docs = {j: env.store.get(j) for j in ("user4_1", "user4_2")}
    assert docs["user4_1"]["status"] == "completed" and docs["user4_2"]["status"] == "failed"
    assert len(smtp_server.messages) == 2
    # the daemon retries a tick from the cursor it had (crash before the cursor was saved), or from scratch
    for cursor in (first_cursor, None, env.cursor):
        env.tick(cursor=cursor)
        assert {j: env.store.get(j) for j in docs} == docs  # identical, updated_at included: nothing written
    assert len(smtp_server.messages) == 2


class CrashingStore(JobStore):
    """The real SQLite store, but the process "dies" after a number of writes (to test crash recovery)."""

    def __init__(self, inner: JobStore, writes_before_crash: int):
        self.inner, self.left = inner, writes_before_crash

    def get(self, job_id):
        return self.inner.get(job_id)

    def find(self, **kw):
        return self.inner.find(**kw)

    def update(self, job_id, change):
        if self.left == 0:
            raise ConnectionError("the sensor process died here")
        self.left -= 1
        return self.inner.update(job_id, change)


class CrashingJobStatus(JobStatusResource):
    writes_before_crash: int

    def store(self) -> JobStore:
        return CrashingStore(job_store_from_uri(self.uri), self.writes_before_crash)


def test_a_tick_that_crashes_midway_is_redone_to_the_same_documents(env, tmp_path, smtp_server):
    for j in ("user5_1", "user5_2", "user5_3"):
        env.submit(j)
    env.run("user5_1")
    env.run("user5_2", {INVALID_TAG: "1"})
    env.run("user5_3")
    crashing = dict(env.defs.resources, job_status=CrashingJobStatus(uri=f"sqlite:{tmp_path}/status.sqlite3",
                                                                     writes_before_crash=2))
    with pytest.raises(Exception, match="sensor process died"):
        env.tick(resources=crashing)
    assert env.cursor is None  # the failed tick did not move the cursor
    written = [j for j in ("user5_1", "user5_2", "user5_3") if env.store.get(j) is not None]
    assert len(written) == 2 and smtp_server.messages == []
    env.tick()
    docs = {j: env.store.get(j) for j in ("user5_1", "user5_2", "user5_3")}
    assert [d["status"] for d in docs.values()] == ["completed", "failed", "completed"]
    assert len(smtp_server.messages) == 3
    # the same history replayed from the start into a fresh store gives the same documents
    fresh = Env(env.instance, tmp_path / "again", f"sqlite:{tmp_path}/again.sqlite3")
    fresh.storage_root = env.storage_root
    fresh.defs = make_defs(env.storage_root, f"sqlite:{tmp_path}/again.sqlite3", SmtpResource(host=""))
    fresh.tick()
    strip = lambda d: {k: v for k, v in d.items() if k == "email" or not k.startswith(("updated_at", "email"))}  # noqa: E731
    assert {j: strip(fresh.store.get(j)) for j in docs} == {j: strip(d) for j, d in docs.items()}


def test_crash_between_claim_and_send_never_sends_twice(env, smtp_server):
    """The documented window: email_sent is set before the message goes out. A crash right after the claim
    (simulated by claiming without sending) means the sensor will not send it: at most once."""
    env.submit("user6_1")
    env.tick()
    env.run("user6_1")
    assert env.store.claim_email("user6_1")
    env.tick()
    assert env.store.get("user6_1")["status"] == "completed" and smtp_server.messages == []


def test_failure_that_dagster_will_retry_waits_for_the_retry(tmp_path, smtp_server):
    with instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 1}}) as instance:
        env = Env(instance, tmp_path, f"sqlite:{tmp_path}/status.sqlite3", smtp_server)
        env.submit("user7_1")
        result = env.run("user7_1", {FAIL_TAG: "prediction"})
        assert instance.get_run_by_id(result.run_id).tags.get("dagster/will_retry") == "true"
        env.tick()
        doc = env.store.get("user7_1")
        assert doc["status"] == "processing" and doc["stages"]["6"]["status"] == "failed"
        assert smtp_server.messages == []
        env.run("user7_1")  # the retry
        env.tick()
        assert env.store.get("user7_1")["status"] == "completed"
        assert len(smtp_server.messages) == 1
        assert "result is ready" in smtp_server.messages[0].message["Subject"]


def test_finished_jobs_wait_for_smtp_configuration(tmp_path, smtp_server):
    with instance_for_test() as instance:
        env = Env(instance, tmp_path, f"sqlite:{tmp_path}/status.sqlite3", smtp_server=None)
        env.submit("user8_1")
        env.run("user8_1")
        env.tick()
        assert env.store.get("user8_1")["status"] == "completed"
        assert env.store.get("user8_1")["email_sent"] is False
        configured = dict(env.defs.resources, smtp=SmtpResource(host=smtp_server.host, port=smtp_server.port))
        env.tick(resources=configured)
        assert env.store.get("user8_1")["email_sent"] is True and len(smtp_server.messages) == 1


def test_the_sensor_writes_firestore_documents(tmp_path, firestore, smtp_server):
    with instance_for_test() as instance:
        env = Env(instance, tmp_path, firestore.uri, smtp_server)
        env.submit("user9_1")
        env.tick()
        env.run("user9_1", {FAIL_TAG: "keypoints"})
        env.tick()
        snap = firestore.client().collection("jobs").document("user9_1").get()
        doc = snap.to_dict()
        JobDocument.model_validate(doc)
        assert doc["status"] == "failed" and doc["current_stage"] == 4 and doc["email_sent"] is True
        assert doc["stages"]["4"]["error"] == "job user9_1: keypoints failed: test failure"
        assert "(during pose estimation)" in smtp_server.messages[0].message.get_content()
        before = doc
        env.tick(cursor=None)  # a replay from scratch against Firestore
        assert firestore.client().collection("jobs").document("user9_1").get().to_dict() == before
        assert len(smtp_server.messages) == 1


def test_jobs_that_finished_long_ago_get_no_e_mail(env, tmp_path, smtp_server):
    """A new, empty store filled from an instance's history must not e-mail every family of the past."""
    env.submit("user10_1")
    env.run("user10_1")
    old_news = dict(env.defs.resources, job_status=JobStatusResource(uri=f"sqlite:{tmp_path}/status.sqlite3",
                                                                     email_max_age_hours=0.0))
    env.tick(resources=old_news)
    doc = env.store.get("user10_1")
    assert doc["status"] == "completed" and doc["email_status"] == "skipped"
    assert doc["email_sent"] is False  # nothing was sent, so nothing is marked sent
    assert smtp_server.messages == []
    env.tick()  # and it stays that way
    assert smtp_server.messages == []


def test_a_stage_of_two_views_fails_if_one_view_fails_though_the_other_succeeds_after_it(env):
    """keypoints_front fails, keypoints_side (its own step) succeeds afterwards: stage 4 is failed, started once."""
    env.submit("user10_1")
    run = env.run("user10_1", {FAIL_TAG: KEYPOINTS.asset_key("front")})
    steps = [(e.step_key, e.event_type_value) for e in run.all_events if e.step_key and e.step_key.startswith("keyp")
             and e.event_type_value in ("STEP_FAILURE", "STEP_SUCCESS")]
    assert steps == [("keypoints_front", "STEP_FAILURE"), ("keypoints_side", "STEP_SUCCESS")]
    env.tick()
    doc = env.store.get("user10_1")
    JobDocument.model_validate(doc)
    assert doc["status"] == "failed"
    st = doc["stages"]["4"]
    assert st["status"] == "failed" and st["error"] == "job user10_1: keypoints failed: test failure"
    assert doc["stages"]["3"]["status"] == "success"
    assert all(doc["stages"][str(n)]["status"] == "skipped" for n in (5, 6, 7))


def test_a_refused_e_mail_is_retried_by_the_sensor_after_its_back_off_and_sent_once(env, smtp_server):
    env.submit("user11_1")
    env.run("user11_1")
    smtp_server.refuse_rcpt = 1
    env.tick()
    doc = env.store.get("user11_1")
    assert (doc["email_sent"], doc["email_status"], doc["email_attempts"]) == (False, "retry", 1)
    env.tick()  # within the back-off: no second attempt
    assert env.store.get("user11_1")["email_attempts"] == 1 and smtp_server.messages == []
    env.store.update("user11_1", lambda d: {**d, "email_retry_at": "2000-01-01T00:00:00+00:00"})  # time passes
    env.tick()
    env.tick()
    doc = env.store.get("user11_1")
    assert (doc["email_sent"], doc["email_status"]) == (True, "sent") and len(smtp_server.messages) == 1


def test_re_running_one_view_keeps_the_other_views_files_in_the_document(env):
    """Was: run_start reset every planned stage, so `--select keypoints_front` on a finished job left stage 4
    listing only the front view's file, though the side view's file is still in storage and valid."""
    env.submit("user12_1")
    assert env.run("user12_1").success
    env.tick()
    both = [job_key("user12_1", 4, "front_keypoints.json"), job_key("user12_1", 4, "side_keypoints.json")]
    assert env.store.get("user12_1")["stages"]["4"]["output_keys"] == both

    one = env.defs.resolve_job_def("igait_job").execute_in_process(
        partition_key="user12_1", instance=env.instance, asset_selection=[AssetKey(KEYPOINTS.asset_key("front"))])
    assert one.success
    assert [e.step_key for e in one.all_events if e.event_type_value == "STEP_START"] == ["keypoints_front"]
    env.tick()
    doc = env.store.get("user12_1")
    JobDocument.model_validate(doc)
    st = doc["stages"]["4"]
    assert st["status"] == "success" and st["output_keys"] == both
    assert st["started_at"] >= doc["stages"]["7"]["completed_at"]  # it is the re-run's stage
    assert doc["status"] == "completed" and doc["stages"]["5"]["status"] == "success"  # not planned: untouched

    # a full re-run of both views starts the stage clean: while it runs, stage 4 lists no file of the old run
    hold = HOLDS["user12_1"] = Hold()
    worker = threading.Thread(target=env.run, args=("user12_1", {HOLD_TAG: "keypoints"}))
    worker.start()
    try:
        assert hold.entered.wait(30)
        env.tick()
        assert env.store.get("user12_1")["stages"]["4"]["output_keys"] == []
    finally:
        hold.release.set()
        worker.join(60)
    env.tick()
    assert env.store.get("user12_1")["stages"]["4"]["output_keys"] == both


def _uploads_tick(env: Env, cursor: str | None):
    """One tick of the real uploads sensor on the stand-in's storage, and what the daemon does with its result
    (add the partitions, record the upload events); its run requests are returned, not launched."""
    with build_sensor_context(instance=env.instance, cursor=cursor, resources={
            "storage": StorageResource(root=str(env.storage_root)),
            "job_status": JobStatusResource(uri=env.status_uri)}) as ctx:
        result = uploads_sensor(ctx)
    for req in result.dynamic_partitions_requests or []:
        env.instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    for ev in result.asset_events or []:
        env.instance.report_runless_asset_event(ev)
    return result


def test_a_run_of_a_replaced_upload_no_longer_changes_the_document(env, smtp_server):
    """Was: re-uploaded while the first upload's run was still going, the job's document started afresh, but that
    run's later stages and its end (result, e-mail) still landed in it: the family got the replaced video's result."""
    put_upload(env.storage_root, "user14_1")
    first = _uploads_tick(env, None)
    (req_a,) = first.run_requests
    version_a = req_a.tags["igait/upload_version"]
    env.tick()

    hold = HOLDS["user14_1"] = Hold()
    old_run, tags_a = [], {**req_a.tags, HOLD_TAG: "prediction"}
    worker = threading.Thread(target=lambda: old_run.append(env.run("user14_1", tags_a)))
    worker.start()
    try:
        assert hold.entered.wait(30)
        env.tick()  # the first upload's run is at stage 6
        assert env.store.get("user14_1")["current_stage"] == 6

        put_upload(env.storage_root, "user14_1", {**METADATA, "age": 6})  # the family uploads again
        meta = LocalStorage(env.storage_root).local_path(job_key("user14_1", 0, "metadata.json"))
        later = time.time() + 5
        os.utime(meta, (later, later))
        again = _uploads_tick(env, first.cursor)
        (req_b,) = again.run_requests
        version_b = req_b.tags["igait/upload_version"]
        assert version_b != version_a
        fresh = env.store.get("user14_1")
        assert fresh["status"] == "submitted" and fresh["patient"]["age"] == 6.0
        env.tick()  # the re-upload's materialization: the same document
    finally:
        hold.release.set()
        worker.join(60)
    assert env.store.get("user14_1") == fresh

    assert old_run[0].success  # its stage 6 had its input already: it ends with a result, of the replaced video
    env.tick()  # the old run's stages 6-7 and its end
    doc = env.store.get("user14_1")
    assert doc == fresh  # not even updated_at moved
    assert doc["status"] == "submitted" and doc["result"]["score"] is None
    assert [doc["stages"][str(n)]["status"] for n in range(1, 8)] == ["pending"] * 7
    assert smtp_server.messages == []  # no e-mail for the replaced video

    assert env.run("user14_1", req_b.tags).success  # the re-upload's own run
    env.tick()
    doc = env.store.get("user14_1")
    JobDocument.model_validate(doc)
    assert doc["status"] == "completed" and doc["upload_version"] == version_b
    assert doc["result"]["score"] == 0.27 and doc["patient"]["age"] == 6.0
    assert len(smtp_server.messages) == 1
