"""Issue 12: the uploads sensor loses no job. Refused uploads stay visible and are looked at again when their
files change; a re-upload of a finished job re-runs the whole graph, never mixing generations. Real storage,
a real Dagster instance, a real SQLite job store and a real SMTP server."""
import json
import os
import time
from datetime import timedelta

from dagster import AssetKey, AssetRecordsFilter, instance_for_test

from igait_pipeline import cli
from igait_pipeline.launch import DATA_VERSION_TAG
from igait_pipeline.layout import job_key
from igait_pipeline.resources.status import SmtpResource
from igait_pipeline.status.jobdoc import JobDocument, job_store_from_uri
from igait_pipeline.status.sensors import send_pending_emails
from igait_pipeline.uploads import UploadCursor
from igait_pipeline_tests.dagster.test_sensor import _tick, status_uri
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, put_job


def _apply(instance, result):
    """What the daemon does with a sensor result: add the partitions and record the asset events."""
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    for ev in result.asset_events or []:
        instance.report_runless_asset_event(ev)


def _later(storage, key, seconds):
    p = storage.local_path(key)
    t = time.time() + seconds
    os.utime(p, (t, t))


def test_metadata_before_the_videos_is_refused_then_run_when_the_videos_arrive(local_storage, short_clip):
    """Was: refused once, the cursor moved past it and the job never ran."""
    put_job(local_storage, "early_1", None, None, GOOD_METADATA)
    store = job_store_from_uri(status_uri(local_storage))
    with instance_for_test() as instance:
        first, _ = _tick(instance, local_storage)
        assert not first.run_requests
        assert "early_1" in UploadCursor.from_json(first.cursor).refused
        doc = store.get("early_1")
        JobDocument.model_validate(doc)
        assert doc["status"] == "failed" and doc["current_stage"] == 0
        assert doc["error"] == "upload refused: front.mp4 is missing (metadata.json arrived without it)"
        assert doc["email"] == GOOD_METADATA["email"] and doc["email_retry_at"]  # e-mail only after a grace period
        idle, _ = _tick(instance, local_storage, first.cursor)  # nothing changed: nothing re-checked in vain
        assert not idle.run_requests and idle.cursor == first.cursor

        put_job(local_storage, "early_1", short_clip, short_clip, None)  # the videos, later
        _later(local_storage, job_key("early_1", 0, "side.mp4"), 3)
        late, _ = _tick(instance, local_storage, idle.cursor)
        assert [r.run_key for r in late.run_requests] == ["early_1"]
        assert "early_1" not in UploadCursor.from_json(late.cursor).refused
        doc = store.get("early_1")
        assert doc["status"] == "submitted" and doc["error"] is None and doc["email_retry_at"] is None


def test_igait_register_of_a_refused_upload_fixed_later_starts_its_document_again(local_storage, short_clip,
                                                                                 monkeypatch):
    """Was: `igait run` / `igait register` recorded the fixed upload but left the document the sensor wrote for the
    refusal (failed at stage 0, "upload refused: ...") while the job ran. Now the CLI resets it as the sensor does
    (the same function, `launch.accepted_doc`)."""
    monkeypatch.setenv("IGAIT_STATUS_URI", status_uri(local_storage))
    put_job(local_storage, "late_1", None, short_clip, GOOD_METADATA)
    store = job_store_from_uri(status_uri(local_storage))
    with instance_for_test() as instance:
        _tick(instance, local_storage)
        assert store.get("late_1")["status"] == "failed" and store.get("late_1")["error"].startswith("upload refused")
        put_job(local_storage, "late_1", short_clip, None, None)  # the missing video, later; no sensor running
        job, recorded = cli.register("late_1", instance=instance)
        assert recorded and job.job_id == "late_1"
        doc = store.get("late_1")
        JobDocument.model_validate(doc)
        assert doc["status"] == "submitted" and doc["current_stage"] == 0
        assert doc["error"] is None and doc["email_retry_at"] is None  # no refusal e-mail will go out
        assert doc["email"] == GOOD_METADATA["email"] and doc["patient"]["age"] == GOOD_METADATA["age"]
        assert cli.register("late_1", instance=instance)[1] is False  # registered once
        assert store.get("late_1") == doc


def test_an_emptied_video_replaced_later_is_picked_up(local_storage, short_clip, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    put_job(local_storage, "fix_1", short_clip, empty, GOOD_METADATA)
    with instance_for_test() as instance:
        first, _ = _tick(instance, local_storage)
        assert not first.run_requests
        local_storage.upload(short_clip, job_key("fix_1", 0, "side.mp4"))
        again, _ = _tick(instance, local_storage, first.cursor)
        assert [r.run_key for r in again.run_requests] == ["fix_1"]


def test_a_refused_upload_gets_one_e_mail_after_the_grace_period(local_storage, short_clip, smtp_server):
    put_job(local_storage, "bad_1", short_clip, short_clip, {**GOOD_METADATA, "height": "as tall as a door"})
    put_job(local_storage, "bad_2", short_clip, short_clip, {**GOOD_METADATA, "email": "two@a.org, b@c.org"})
    store = job_store_from_uri(status_uri(local_storage))
    settings = SmtpResource(host=smtp_server.host, port=smtp_server.port).settings()
    with instance_for_test() as instance:
        result, _ = _tick(instance, local_storage)
        assert store.get("bad_2")["email"] is None and store.get("bad_2")["error"].startswith("upload refused")
        log = _Log()
        assert send_pending_emails(store, local_storage, settings, log, timedelta(days=7), 50) == {}  # grace
        for j in ("bad_1", "bad_2"):
            store.update(j, lambda d: {**d, "email_retry_at": "2000-01-01T00:00:00+00:00"})
        assert send_pending_emails(store, local_storage, settings, log, timedelta(days=7), 50) == {"bad_1": "sent"}
        _tick(instance, local_storage, None)  # a re-scan refuses it again: no second e-mail
        assert send_pending_emails(store, local_storage, settings, log, timedelta(days=7), 50) == {}
    (got,) = smtp_server.messages
    body = got.message.get_content()
    assert "could not be completed (job bad_1)" in got.message["Subject"]
    assert "metadata.json is invalid" not in body or "height" in body
    assert "height is not understood" in body and "as tall as a door" not in body
    assert store.get("bad_1")["email_sent"] is True


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, m):
        self.lines.append(m)

    warning = error = info


def test_a_malformed_job_id_in_storage_is_refused_by_the_sensor(local_storage, short_clip):
    """Was: 'a_1\\n' accepted (regex $ admits a final newline), making jobs/a_1\\n/ a partition."""
    put_job(local_storage, "good_1", short_clip, short_clip, GOOD_METADATA)
    for bad in ("a_1\n", "u" * 200 + "_1"):
        d = local_storage.root / "jobs" / bad / "stage_0"
        d.mkdir(parents=True)
        for name in ("front.mp4", "side.mp4"):
            (d / name).write_bytes(short_clip.read_bytes())
        (d / "metadata.json").write_text(json.dumps(GOOD_METADATA))
    with instance_for_test() as instance:
        result, _ = _tick(instance, local_storage)
        assert [r.run_key for r in result.run_requests] == ["good_1"]
        assert list(result.dynamic_partitions_requests[0].partition_keys) == ["good_1"]


def test_a_re_upload_of_a_finished_job_re_runs_the_whole_graph_once(local_storage, short_clip, tmp_path):
    """Was: stage_0 replaced, stages 1–7 kept, nothing stale; stage 6 alone mixed the new age with old keypoints."""
    put_job(local_storage, "redo_1", short_clip, short_clip, GOOD_METADATA)
    with instance_for_test() as instance:
        first, _ = _tick(instance, local_storage)
        _apply(instance, first)
        (req,) = first.run_requests
        v1 = first.asset_events[-1].tags[DATA_VERSION_TAG]
        assert req.run_key == "redo_1" and req.tags["igait/upload_version"] == v1
        for n, name in ((1, "front.mp4"), (4, "side_keypoints.json"), (7, "results.zip")):  # the old outputs
            local_storage.write_bytes(job_key("redo_1", n, name), b"old generation")
        same, _ = _tick(instance, local_storage, None)  # a re-scan of the unchanged upload: nothing
        assert not same.run_requests and local_storage.exists(job_key("redo_1", 4, "side_keypoints.json"))

        put_job(local_storage, "redo_1", None, None, {**GOOD_METADATA, "age": 6})  # the family corrects the age
        _later(local_storage, job_key("redo_1", 0, "metadata.json"), 5)
        again, _ = _tick(instance, local_storage, same.cursor)
        (req,) = again.run_requests
        v2 = again.asset_events[-1].tags[DATA_VERSION_TAG]
        assert v2 != v1 and req.run_key == f"redo_1@{v2}" and req.partition_key == "redo_1"
        assert not again.dynamic_partitions_requests
        # no stage output of the old upload is left to be mixed with the new one
        assert [o.key for o in local_storage.list("jobs/redo_1/") if "/stage_0/" not in o.key] == []
        _apply(instance, again)
        rec = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("upload"),
                                                                 asset_partitions=["redo_1"]), limit=1).records[0]
        assert rec.event_log_entry.tags[DATA_VERSION_TAG] == v2
        twice, _ = _tick(instance, local_storage, None)  # the same re-upload seen again: no second run
        assert not twice.run_requests
