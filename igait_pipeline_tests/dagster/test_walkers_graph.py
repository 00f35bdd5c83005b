"""Stage 2's walker and view check through the real assets: validation.json, and the issue's job (a walker
approaching with a bystander in the front view) running to results.zip."""
import json
import zipfile

import pytest
from dagster import instance_for_test, materialize

from igait_pipeline import assets
from igait_pipeline.cli import DEMO_RUN_CONFIG
from igait_pipeline.definitions import defs
from igait_pipeline.layout import job_key
from igait_pipeline.resources import build_resources
from igait_pipeline.schemas import ValidationReport
from igait_pipeline.stages import validity
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, put_job


def test_validation_json_records_track_verdict_and_parameters(local_storage, short_clip):
    """The sample's clip in both slots, through the real asset: stopped at stage 2, validation.json says why."""
    put_job(local_storage, "user8_2", short_clip, short_clip, GOOD_METADATA)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("jobs", ["user8_2"])
        result = materialize([assets.upload, *assets.converted_video, assets.validation_report],
                             partition_key="user8_2", instance=instance,
                             resources=build_resources(str(local_storage.root)), raise_on_error=False)
    assert not result.success
    report = ValidationReport.model_validate_json(local_storage.read_bytes(job_key("user8_2", 2, "validation.json")))
    assert report.view_check["verdict"] == "same_view" and "job user8_2" in report.reasons[0]
    assert report.params["tracker"]["max_center_jump"] > 0 and report.params["walker"]["min_scale_change"] < 1.15
    assert report.params["pad_dark"] == validity.PARAMS.pad_dark and report.params["pad_min_bar"] > 0
    side = report.views["side"]
    assert side.walker_track_id is not None and side.track and side.walk["walks"]


@pytest.mark.slow
def test_front_view_approaching_walker_with_bystander_runs_to_results(local_storage, approaching_with_bystander,
                                                                      side_walk_3s):
    """The issue's job: front view with a walker approaching past a person standing still, a side view (3 s of the
    crossing: only the front view is examined here). The only licensed approaching walker is filmed from the side,
    so the view check is set to warn (as `igait demo`)."""
    put_job(local_storage, "user8_3", approaching_with_bystander, side_walk_3s, GOOD_METADATA)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("jobs", ["user8_3"])
        result = defs.resolve_job_def("igait_job").execute_in_process(
            instance=instance, partition_key="user8_3", resources=build_resources(str(local_storage.root)),
            run_config=DEMO_RUN_CONFIG, raise_on_error=False)
        assert result.success, [e.event_specific_data.error.message for e in result.all_events
                                if e.is_step_failure]
    report = ValidationReport.model_validate_json(local_storage.read_bytes(job_key("user8_3", 2, "validation.json")))
    front = report.views["front"]
    assert front.walking and front.walk["approaches"] and front.tracks >= 2
    crop = json.loads(local_storage.read_bytes(job_key("user8_3", 3, "front_crop.json")))
    x = crop["box_px"][0]
    assert x > 1920 * 0.15  # the bystander at the left edge is cropped out
    with zipfile.ZipFile(local_storage.local_path(job_key("user8_3", 7, "results.zip"))) as z:
        assert {"stage_2/validation.json", "stage_5/cycles.json", "stage_6/prediction.json"} <= set(z.namelist())
        summary = z.read("SUMMARY.txt").decode()
    assert "note: job user8_3: both videos show a side view" in summary  # the warned view check, for the reader
    assert "front: person in" in summary and "walker on 100% of sampled frames" in summary


@pytest.mark.slow
@pytest.mark.parametrize("front_clip", ["vtest_approaching_front", "vtest_receding_front"])
def test_a_real_front_view_walk_runs_to_results(local_storage, request, front_clip, side_walk_3s):
    """A real person walking toward (or away from) a camera in the front slot, a real side view in the side
    slot (issue 16; 3 s of the crossing: only the front view is examined here): accepted as a front view with the
    view check on, cropped around the walker who grows (or shrinks), and measured in stage 5 from the front: hip /
    knee ab/adduction curves, base of support, each number saying which view it comes from, to results.zip."""
    job = {"vtest_approaching_front": "user16_1", "vtest_receding_front": "user16_2"}[front_clip]
    put_job(local_storage, job, request.getfixturevalue(front_clip), side_walk_3s, GOOD_METADATA)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("jobs", [job])
        result = defs.resolve_job_def("igait_job").execute_in_process(
            instance=instance, partition_key=job, resources=build_resources(str(local_storage.root)),
            raise_on_error=False)
        assert result.success, [e.event_specific_data.error.message for e in result.all_events
                                if e.is_step_failure]
        meta = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()}["validation_report"]
    assert meta["walk_plot"].value.startswith("![the legs' stride rhythm per view](data:image/png;base64,")
    assert meta["front/walk"].value["walks"] and meta["front/walk"].value["stride_period_s"] > 0
    report = ValidationReport.model_validate_json(local_storage.read_bytes(job_key(job, 2, "validation.json")))
    front = report.views["front"]
    assert report.valid and report.view_check["verdict"] == "ok"
    assert front.walking and front.view_seen == "front" and front.walk["approaches"] and front.walk["periodic"]
    grows = front.walk["scale_change"]
    assert (grows > 1.15) if job == "user16_1" else (grows < 0.85)
    crop = json.loads(local_storage.read_bytes(job_key(job, 3, "front_crop.json")))
    x, y, w, h = crop["box_px"]
    assert all(x <= r[1] * 1920 + 1 and r[3] * 1920 - 1 <= x + w and y <= r[2] * 1080 + 1 and r[4] * 1080 - 1 <= y + h
               for r in front.track)  # the walker, growing or shrinking, stays inside the crop
    cycles = json.loads(local_storage.read_bytes(job_key(job, 5, "cycles.json")))
    curves = cycles["kinematics"]["curves"]
    front_curves = {k: c for k, c in curves.items() if k.startswith("front_") and "mean" in c}
    reasons = {k: c.get("reason") for k, c in curves.items() if k.startswith("front_")}
    if job == "user16_2":
        assert front_curves, reasons
    else:
        # vtest's approach is 4.5 s at 10 fps: with its heel strikes where the foot stops (issue 28, real labels)
        # one stride of the left leg is unsteady, and a curve from one cycle per leg is null with the reason
        # (ROM and symmetry need 2 per leg), never reported
        assert reasons and (front_curves or all("steady cycle" in (r or "") for r in reasons.values())), reasons
    with zipfile.ZipFile(local_storage.local_path(job_key(job, 7, "results.zip"))) as z:
        summary = z.read("SUMMARY.txt").decode()
    assert "front view" in summary and "side view" in summary
