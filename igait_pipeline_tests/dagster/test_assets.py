"""Real Dagster materializations of the asset graph on real video, and bad inputs that must fail clearly."""
import json
import zipfile

import pytest
from dagster import AssetKey, instance_for_test, materialize

from igait_pipeline import assets
from igait_pipeline.cli import DEMO_RUN_CONFIG
from igait_pipeline.definitions import defs
from igait_pipeline.layout import CONVERTED, KEYPOINTS, PIPELINE_STAGES, job_key
from igait_pipeline.resources import build_resources
from igait_pipeline.schemas import Cycles, Prediction, ValidationReport
from igait_pipeline.stages.gait import events as gait_events
from igait_pipeline.stages.gait import signals as gait_signals
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, put_job
from igait_pipeline_tests.stages import cycles_snapshot

# The walker in the sample clip is an adult.
ADULT_METADATA = {**GOOD_METADATA, "age": 34, "height": "176 cm", "weight": "72 kg"}

FIRST_STAGES = [assets.upload, *assets.converted_video, assets.validation_report]


def _run(selection, storage, job_id):
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("jobs", [job_id])
        result = materialize(selection, partition_key=job_id, instance=instance,
                             resources=build_resources(str(storage.root)), raise_on_error=False)
        return result, [_flatten(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]


def _flatten(err) -> str:
    """An error's message with its causes', as the run log shows them."""
    parts = []
    while err is not None:
        parts.append(err.message.strip())
        err = err.cause
    return " <- ".join(parts)


def _stage_keys(storage, job_id, stage):
    return [o.key for o in storage.list(f"jobs/{job_id}/stage_{stage}/")]


@pytest.mark.slow
def test_whole_graph_on_the_sample_video(local_storage, sample_video, monkeypatch):
    """The main job: one partition, every stage materialized, results.zip with everything and a summary. As
    `igait demo`: the one licensed walking clip (a side view) in both slots, the view check set to warn. The
    walker in the sample is an adult: the prediction abstains. Keypoints are analysed once per view in the whole
    job (a spy counts the calls that turn a keypoints file into arrays for gait analysis)."""
    calls = []
    original = gait_signals.arrays

    def counting_arrays(kp):
        calls.append(kp.view)
        return original(kp)

    monkeypatch.setattr(gait_signals, "arrays", counting_arrays)
    monkeypatch.setattr(gait_events, "arrays", counting_arrays)
    put_job(local_storage, "user123_5", sample_video, sample_video, ADULT_METADATA)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("jobs", ["user123_5"])
        job = defs.resolve_job_def("igait_job")
        result = job.execute_in_process(instance=instance, partition_key="user123_5",
                                        resources=build_resources(str(local_storage.root)),
                                        run_config=DEMO_RUN_CONFIG)
        assert result.success
        for name in [k for s in PIPELINE_STAGES for k in s.asset_keys]:
            rec = instance.get_latest_materialization_event(AssetKey.from_user_string(name))
            assert rec is not None and rec.asset_materialization.partition == "user123_5", name
        kp_meta = instance.get_latest_materialization_event(
            AssetKey(KEYPOINTS.asset_key("side"))).asset_materialization.metadata
        assert kp_meta["detection_ratio"].value > 0.5
        assert kp_meta["rejected_not_walker"].value >= 0
        # each stage step ends with its CPU line (what bench/job.py accounts; in one process: no "before")
        cpu = {c["asset"]: c for r in instance.all_logs(result.run_id) if (c := assets.step_cpu_of(r.user_message))}
        assert set(cpu) == {k for s in PIPELINE_STAGES for k in s.asset_keys}, cpu
        assert cpu["converted_video_side"]["tools"] > 0.5 and cpu["keypoints_side"]["body"] > 1.0, cpu
        assert all(c["before"] is None for c in cpu.values()), cpu
    report = ValidationReport.model_validate_json(local_storage.read_bytes(job_key("user123_5", 2, "validation.json")))
    assert report.valid and report.views["side"].multiple_people_ratio > 0
    assert report.view_check["verdict"] == "same_view" and report.warnings
    assert sorted(calls) == ["front", "side"], calls  # stage 5 once; no re-analysis in its plot or in stage 6
    cycles = Cycles.model_validate_json(local_storage.read_bytes(job_key("user123_5", 5, "cycles.json")))
    assert len(cycles.strides) >= 2 and all(s.steady for s in cycles.strides)
    assert 60 <= cycles.parameters["cadence_spm"] <= 180
    assert cycles_snapshot.differences(cycles, json.loads(cycles_snapshot.SNAPSHOT.read_text())) == []
    assert cycles.kinematics["curves"]["side_knee_flexion_left"]["rom_deg"] > 20
    pred = Prediction.model_validate_json(local_storage.read_bytes(job_key("user123_5", 6, "prediction.json")))
    assert 0 <= pred.score <= 1 and pred.model.clinically_validated is False is pred.clinically_validated
    assert pred.classification == "INDETERMINATE" and not pred.in_domain
    assert "the age is outside the model's domain (3–12 years)" in pred.reasons, pred.reasons
    assert any(r.startswith("quality check front_view_usable failed") for r in pred.reasons), pred.reasons
    with zipfile.ZipFile(local_storage.local_path(job_key("user123_5", 7, "results.zip"))) as z:
        names = set(z.namelist())
        assert {"SUMMARY.txt", "stage_0/metadata.json", "stage_1/side.mp4", "stage_2/validation.json",
                "stage_4/side_keypoints.json", "stage_4/side_overlay.mp4", "stage_5/cycles.json",
                "stage_6/prediction.json"} <= names
        summary = z.read("SUMMARY.txt").decode()
        assert "user123_5" in summary and "not clinically validated" in summary.lower()
        assert summary.splitlines()[2].startswith("RESULT: INDETERMINATE")
        assert summary.index("NOT CLINICALLY VALIDATED") < summary.index("Video check: passed")
        assert "ASD" not in summary


def test_corrupt_video_fails_conversion_naming_job_and_cause(local_storage, short_clip, corrupt_video):
    put_job(local_storage, "user1_7", corrupt_video, short_clip, GOOD_METADATA)
    result, failures = _run([assets.upload, *assets.converted_video], local_storage, "user1_7")
    assert not result.success
    assert "job user1_7: video conversion failed: front video: front.mp4: not a readable video" in failures[0]
    # nothing half-written: the front view's step failed; the side view is its own step and finished
    assert _stage_keys(local_storage, "user1_7", 1) == ["jobs/user1_7/stage_1/side.mp4"]


def test_missing_side_video_fails_naming_job_and_file(local_storage, short_clip):
    put_job(local_storage, "user1_8", short_clip, None, GOOD_METADATA)
    result, failures = _run([assets.upload, *assets.converted_video], local_storage, "user1_8")
    assert not result.success
    assert failures == [f for f in failures if "job user1_8: stage 0 has no side.mp4 in storage" in f] != []
    assert "jobs/user1_8/stage_1/side.mp4" not in _stage_keys(local_storage, "user1_8", 1)


def test_malformed_metadata_fails_before_any_video_work(local_storage, short_clip):
    put_job(local_storage, "user1_9", short_clip, short_clip, {**GOOD_METADATA, "email": "not-an-address"})
    result, failures = _run([assets.upload, *assets.converted_video], local_storage, "user1_9")
    assert not result.success
    assert "job user1_9: video conversion failed: metadata.json is invalid: email" in failures[0]
    assert _stage_keys(local_storage, "user1_9", 1) == []


def test_malformed_job_id_is_refused_before_storage(local_storage, short_clip):
    result, failures = _run([assets.upload, *assets.converted_video], local_storage, "user 1/x_2")
    assert not result.success
    assert "job ID 'user 1/x_2' is malformed" in failures[0]
    assert list(local_storage.list("jobs/")) == []


def test_no_person_fails_validation_and_stops_the_job_with_report_written(local_storage, empty_scene_video,
                                                                          short_clip):
    put_job(local_storage, "user1_10", empty_scene_video, short_clip, GOOD_METADATA)
    result, failures = _run([*FIRST_STAGES, *assets.reframed_video], local_storage, "user1_10")
    assert not result.success
    assert [f.split(": ", 1)[1] for f in failures] == [  # the message after the error's class name
        "job user1_10: validation rejected the videos: front view: no person found in the video"]
    report = json.loads(local_storage.read_bytes(job_key("user1_10", 2, "validation.json")))
    assert report["valid"] is False and report["views"]["side"]["walking"] is True
    assert _stage_keys(local_storage, "user1_10", 3) == []  # stage 3 never started


def test_rematerializing_replaces_stage_outputs(local_storage, short_clip):
    put_job(local_storage, "user1_11", short_clip, short_clip, GOOD_METADATA)
    stale = local_storage.root / "jobs/user1_11/stage_1/leftover.mp4"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an older code version")
    result, failures = _run([assets.upload, *assets.converted_video], local_storage, "user1_11")
    assert result.success, failures
    assert _stage_keys(local_storage, "user1_11", 1) == ["jobs/user1_11/stage_1/front.mp4",
                                                        "jobs/user1_11/stage_1/side.mp4"]
    meta = result.asset_materializations_for_node("converted_video_side")[0].metadata
    assert meta["fps"].value == 60.0 and meta["width"].value == 1920


def test_rematerializing_one_view_touches_only_that_views_files(local_storage, short_clip):
    """`converted_video_front` alone: front.mp4 replaced, a stale front file dropped, every side file untouched."""
    put_job(local_storage, "user1_12", short_clip, short_clip, GOOD_METADATA)
    result, failures = _run([assets.upload, *assets.converted_video], local_storage, "user1_12")
    assert result.success, failures
    stage1 = local_storage.root / "jobs/user1_12/stage_1"
    (stage1 / "front_leftover.mp4").write_bytes(b"an older front output")
    (stage1 / "side_extra.json").write_bytes(b"the side view's")
    side_before = (stage1 / "side.mp4").stat()
    front_before = (stage1 / "front.mp4").stat()
    front_asset = next(a for a in assets.converted_video if a.key == AssetKey(CONVERTED.asset_key("front")))
    result, failures = _run([assets.upload, front_asset], local_storage, "user1_12")
    assert result.success, failures
    assert [e.step_key for e in result.all_events if e.is_step_success] == ["converted_video_front"]
    assert _stage_keys(local_storage, "user1_12", 1) == ["jobs/user1_12/stage_1/front.mp4",
                                                        "jobs/user1_12/stage_1/side.mp4",
                                                        "jobs/user1_12/stage_1/side_extra.json"]
    side_after, front_after = (stage1 / "side.mp4").stat(), (stage1 / "front.mp4").stat()
    assert (side_after.st_ino, side_after.st_mtime_ns) == (side_before.st_ino, side_before.st_mtime_ns)
    assert front_after.st_ino != front_before.st_ino  # the front view was written again
