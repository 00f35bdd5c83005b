"""The uploads sensor on a real test instance, through build_sensor_context, and the scanner under it."""
import json
import os
import time

from dagster import AssetMaterialization, SensorResult, build_sensor_context, instance_for_test

from igait_pipeline.layout import job_key
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.resources.status import JobStatusResource
from igait_pipeline.sensors import uploads_sensor
from igait_pipeline.storage import LocalStorage
from igait_pipeline.uploads import scan_uploads
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, put_job


def status_uri(storage) -> str:
    return f"sqlite:{storage.root.parent / 'status.sqlite3'}"


def _tick(instance, storage, cursor=None):
    ctx = build_sensor_context(instance=instance, cursor=cursor,
                               resources={"storage": StorageResource(root=str(storage.root)),
                                          "job_status": JobStatusResource(uri=status_uri(storage))})
    result = uploads_sensor(ctx)
    assert isinstance(result, SensorResult)
    return result, ctx


def _bump(storage, job_id, seconds):
    p = storage.local_path(job_key(job_id, 0, "metadata.json"))
    t = time.time() + seconds
    os.utime(p, (t, t))


def test_sensor_adds_partitions_requests_one_run_per_job_and_then_nothing(local_storage, short_clip, tmp_path):
    put_job(local_storage, "alice_1", short_clip, short_clip, GOOD_METADATA)
    put_job(local_storage, "bob_2", short_clip, short_clip, GOOD_METADATA)
    put_job(local_storage, "carol_3", short_clip, short_clip, {**GOOD_METADATA, "height": "very tall"})
    put_job(local_storage, "dave_4", short_clip, None, GOOD_METADATA)  # metadata arrived without side.mp4
    put_job(local_storage, "erin_5", short_clip, short_clip, None)  # still uploading: no metadata yet
    with instance_for_test() as instance:
        result, ctx = _tick(instance, local_storage)
        assert sorted(r.run_key for r in result.run_requests) == ["alice_1", "bob_2"]
        assert all(r.partition_key == r.run_key for r in result.run_requests)
        (add,) = result.dynamic_partitions_requests
        assert add.partitions_def_name == "jobs" and sorted(add.partition_keys) == ["alice_1", "bob_2"]
        assert all(e.asset_key.path == ["upload"] for e in result.asset_events)
        assert sorted(e.partition for e in result.asset_events if isinstance(e, AssetMaterialization)) == [
            "alice_1", "bob_2"]
        # What the daemon does with the result: the partitions now exist.
        instance.add_dynamic_partitions("jobs", add.partition_keys)

        # A second tick with the cursor requests nothing.
        again, _ = _tick(instance, local_storage, result.cursor)
        assert not again.run_requests and again.skip_reason
        # metadata.json written again of a job whose partition was added without an upload record: nothing.
        _bump(local_storage, "alice_1", 5)
        dup, _ = _tick(instance, local_storage, again.cursor)
        assert not dup.run_requests
        # (a re-upload of a job with a recorded upload re-runs its whole graph: test_sensor_refused.py)
        # Even a re-scan from scratch (cursor lost) launches nothing for jobs already seen.
        rescan, _ = _tick(instance, local_storage, None)
        assert not rescan.run_requests
        # The upload that finishes later is picked up on its own.
        put_job(local_storage, "erin_5", None, None, GOOD_METADATA)
        _bump(local_storage, "erin_5", 10)
        late, _ = _tick(instance, local_storage, dup.cursor)
        assert [r.run_key for r in late.run_requests] == ["erin_5"]


def test_scanner_reports_bad_jobs_with_reason_and_reads_only_new_metadata(local_storage, short_clip):
    put_job(local_storage, "alice_1", short_clip, short_clip, GOOD_METADATA)
    put_job(local_storage, "carol_3", short_clip, short_clip, {**GOOD_METADATA, "height": "very tall"})
    put_job(local_storage, "dave_4", short_clip, None, GOOD_METADATA)
    put_job(local_storage, "frank_6", short_clip, short_clip, "{not json")
    first = scan_uploads(local_storage)
    assert [j.job_id for j in first.ready] == ["alice_1"]
    bad = {b.job_id: b.reason for b in first.bad}
    assert "height is not understood" in bad["carol_3"] and "very tall" not in bad["carol_3"]
    assert bad["dave_4"] == "side.mp4 is missing (metadata.json arrived without it)"
    assert "not valid JSON" in bad["frank_6"]

    reads = []

    class Counting(LocalStorage):
        def read_bytes(self, key):
            reads.append(key)
            return super().read_bytes(key)

    counting = Counting(local_storage.root)
    second = scan_uploads(counting, first.cursor)
    assert second.ready == [] and second.bad == [] and reads == []
    assert second.listed == 4
    cursor = json.loads(second.cursor)
    assert cursor == json.loads(first.cursor)


def test_a_backlog_is_worked_off_over_several_ticks_without_loss(local_storage, short_clip):
    for i in range(5):
        put_job(local_storage, f"user{i}_1", short_clip, short_clip, GOOD_METADATA)
        _bump(local_storage, f"user{i}_1", i)  # distinct upload times, oldest first
    put_job(local_storage, "late_1", short_clip, short_clip, GOOD_METADATA)
    _bump(local_storage, "late_1", 2)  # the same time as user2_1: the cursor must keep both
    seen, cursor = [], None
    for _ in range(4):
        scan = scan_uploads(local_storage, cursor, max_jobs=2)
        seen += [j.job_id for j in scan.ready]
        cursor = scan.cursor
    assert sorted(seen) == sorted([f"user{i}_1" for i in range(5)] + ["late_1"])
    assert len(seen) == len(set(seen))
    assert scan_uploads(local_storage, cursor).ready == []
