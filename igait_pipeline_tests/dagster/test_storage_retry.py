"""A GCS outage longer than the client's retries, during a real stage (ffmpeg conversion of a real clip, stored on
the emulator through the fault-injecting proxy, fixtures/gcs_faults.py): Dagster retries the step (the IO
manager's `retry_transient`: only for TransientStorageError) and the stage ends whole; an outage that outlasts
every attempt fails the step with an error naming the job, the stage and the key. A rejected input is never
retried."""
import pytest
from dagster import DagsterEventType, instance_for_test, materialize

from igait_pipeline import assets
from igait_pipeline.layout import job_key
from igait_pipeline.resources import build_resources
from igait_pipeline.resources.io_manager import STORAGE_RETRY_WAIT_ENV, STORAGE_STEP_RETRIES
from igait_pipeline.storage import read_stage, storage_from_uri
from igait_pipeline.storage.gcs import RETRY_TIMEOUT_ENV
from igait_pipeline_tests.fixtures.gcs_faults import Fault
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, put_job

SIDE = [assets.upload, assets.converted_video[1]]  # converted_video_side
assert SIDE[1].key.to_user_string() == "converted_video_side"


def _convert(gcs_root, job_id):
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("jobs", [job_id])
        result = materialize(SIDE, partition_key=job_id, instance=instance, resources=build_resources(gcs_root),
                             raise_on_error=False)
        kinds = [e.event_type for e in result.all_events if e.step_key == "converted_video_side"]
        failures = [e.event_specific_data.error for e in result.all_events if e.is_step_failure]
        return result, kinds, failures


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setenv(RETRY_TIMEOUT_ENV, "1")  # the client gives up on a request after ~1 s
    monkeypatch.setenv(STORAGE_RETRY_WAIT_ENV, "0.5")  # and the step is tried again half a second later


@pytest.mark.slow
def test_an_outage_longer_than_the_client_retries_retries_the_step(gcs_root, faulty_gcs, short_clip, quick_retries,
                                                                    tmp_path):
    st = storage_from_uri(gcs_root)
    put_job(st, "outage_1", short_clip, short_clip, GOOD_METADATA)
    outage = Fault(("upload", "upload_start", "upload_chunk"), "outage_1/stage_1/", for_seconds=4)
    faulty_gcs.fail(outage)
    result, kinds, failures = _convert(gcs_root, "outage_1")
    assert result.success, failures
    assert outage.injected >= 2  # the first attempt's upload failed on the wire and was retried by the client too
    retries = kinds.count(DagsterEventType.STEP_UP_FOR_RETRY)
    assert 1 <= retries <= STORAGE_STEP_RETRIES and kinds[-1] == DagsterEventType.STEP_SUCCESS
    files = read_stage(st, "outage_1", 1, tmp_path / "cache", view="side")
    assert files.names() == ["side.mp4"] and files["side.mp4"].stat().st_size > 0


@pytest.mark.slow
def test_an_outage_that_outlasts_every_attempt_fails_naming_job_stage_and_key(gcs_root, faulty_gcs, short_clip,
                                                                               quick_retries):
    st = storage_from_uri(gcs_root)
    put_job(st, "outage_2", short_clip, short_clip, GOOD_METADATA)
    faulty_gcs.fail(Fault(("upload", "upload_start", "upload_chunk"), "outage_2/stage_1/", times=-1))
    result, kinds, failures = _convert(gcs_root, "outage_2")
    assert not result.success
    assert kinds.count(DagsterEventType.STEP_UP_FOR_RETRY) == STORAGE_STEP_RETRIES  # then no more
    assert len(failures) == 1
    msg = failures[0].message
    assert "job outage_2: stage 1" in msg and "step converted_video_side" in msg, msg
    assert f"storage unavailable after {STORAGE_STEP_RETRIES + 1} attempts" in msg, msg
    assert "jobs/outage_2/stage_1/.commit.side." in msg and "503" in msg, msg  # the key and the last error
    assert not [o.key for o in st.list("jobs/outage_2/stage_1/")]  # nothing half-written


@pytest.mark.slow
def test_a_rejected_video_is_not_retried(gcs_root, faulty_gcs, corrupt_video,
                                                                     quick_retries):
    st = storage_from_uri(gcs_root)
    put_job(st, "bad_3", corrupt_video, corrupt_video, GOOD_METADATA)
    result, kinds, failures = _convert(gcs_root, "bad_3")
    assert not result.success and DagsterEventType.STEP_UP_FOR_RETRY not in kinds
    assert "job bad_3: video conversion failed" in failures[0].message
    assert not faulty_gcs.failed and job_key("bad_3", 1, "side.mp4") not in {o.key for o in st.list("jobs/bad_3/")}
