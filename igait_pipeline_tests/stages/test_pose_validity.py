"""Stages 2–4 on real video with the real BlazePose model."""

from dataclasses import asdict

import numpy as np
import pytest

from igait_pipeline.schemas import LANDMARK_NAMES, Keypoints
from igait_pipeline.stages import pose, reframe, validity


@pytest.fixture(scope="module")
def walk_report(short_clip):
    return validity.validate({"side": short_clip}, "user1_1")


def test_validation_finds_the_walker_and_notices_the_second_person(walk_report):
    v = walk_report.views["side"]
    assert walk_report.valid, walk_report.reasons
    assert v.person_ratio > 0.9 and v.full_body_ratio > 0.5
    assert v.multiple_people_ratio > 0.2  # the jumper in the background
    assert any("more than one person" in w for w in v.warnings)
    # The walker is the person in the foreground (lower half), crossing right to left; not the jumper above.
    x0, y0, x1, y1 = v.walker_box
    assert y0 > 0.45 and y1 > 0.85
    assert v.walking and v.hip_travel > 0.25
    xs = [(r[1] + r[3]) / 2 for r in v.track]
    assert xs[0] - xs[-1] > 0.25


def test_nobody_in_frame_is_rejected_with_reason(empty_scene_video):
    report = validity.validate({"front": empty_scene_video}, "user1_2")
    assert not report.valid
    assert report.reasons == ["front view: no person found in the video"]
    assert report.views["front"].walker_box is None


def test_people_who_do_not_walk_are_rejected(standing_video):
    report = validity.validate({"side": standing_video}, "user1_3")
    assert not report.valid
    assert any("does not walk" in r for r in report.reasons), report.reasons


def test_views_are_analysed_at_once_and_a_broken_view_names_its_file(empty_scene_video, tmp_path):
    """The two views run in their own threads; progress reaches the caller's thread, and an unreadable view's
    error surfaces with its file's name instead of being lost in a worker thread."""
    import threading

    broken = tmp_path / "side.mp4"
    broken.write_bytes(b"not a video at all")
    calls = []
    with pytest.raises(validity.media.MediaError, match="side.mp4: not a readable video"):
        validity.validate({"front": empty_scene_video, "side": broken}, "user1_4",
                          progress=lambda v, d, t: calls.append((v, threading.current_thread().name)))
    assert calls and all(name == threading.current_thread().name for _, name in calls)


def test_crop_box_keeps_the_walker_and_drops_the_jumper(walk_report):
    x, y, w, h = reframe.crop_box(walk_report.views["side"], 1768, 994)
    assert w % 2 == 0 and h % 2 == 0
    assert y > 994 * 0.45  # the jumper's feet are near 47 % of the height
    assert y + h <= 994 and x + w <= 1768


def test_walker_gate_accepts_the_walker_and_rejects_others():
    gate = reframe.walker_gate([[1.0, 0.4, 0.2, 0.6, 0.9], [1.5, 0.3, 0.2, 0.5, 0.9]])
    lm = np.zeros((33, 4), np.float32)
    lm[23, :2] = lm[24, :2] = (0.5, 0.55)
    assert gate(1.1, lm)
    assert not gate(3.0, lm)  # long after the walker was last seen
    lm[23, :2] = lm[24, :2] = (0.95, 0.55)
    assert not gate(1.5, lm)  # someone else, beside the walker


def test_keypoints_stream_json_and_overlay(short_clip, walk_report, tmp_path):
    crop = reframe.reframe_view(short_clip, walk_report.views["side"], tmp_path / "s3" / "side.mp4")
    assert crop["params"] == asdict(reframe.ReframeParams())  # recorded, so the crop can be reproduced
    progress = []
    res = pose.extract_keypoints(tmp_path / "s3" / "side.mp4", tmp_path / "s4", "side", "user1_1",
                                 is_walker=reframe.gate_from_crop(crop),
                                 progress=lambda n, t: progress.append(n))
    kp = Keypoints.model_validate_json(res.keypoints_path.read_text())
    assert kp.job_id == "user1_1" and kp.model.name.startswith("mediapipe") and kp.landmark_names == LANDMARK_NAMES
    assert len(kp.frames) == res.frames == 75
    assert res.detection_ratio > 0.8
    seen = [f for f in kp.frames if f.landmarks]
    assert res.model == f"{kp.model.name} {kp.model.version}"
    assert res.middle_detected == seen[len(seen) // 2].index
    assert all(len(f.landmarks) == 33 and len(f.landmarks[0]) == 4 for f in seen)
    hips_x = [(f.landmarks[23][0] + f.landmarks[24][0]) / 2 for f in seen]
    assert hips_x[0] - hips_x[-1] > 0.3  # the walker crosses the cropped frame right to left
    assert progress[-1] == 75
    from igait_pipeline.stages.media import probe

    assert probe(res.overlay_path).frames == 75
    assert sorted(p.name for p in (tmp_path / "s4").iterdir()) == ["side_keypoints.json", "side_overlay.mp4"]


def test_gpu_device_fails_clearly_at_the_device_boundary(tmp_path, monkeypatch):
    monkeypatch.delenv("IGAIT_POSE_TASK_MODEL", raising=False)
    with pytest.raises(pose.PoseError, match="IGAIT_POSE_TASK_MODEL"):
        pose.make_estimator("gpu")
    bogus = tmp_path / "pose_landmarker_full.task"
    bogus.write_bytes(b"not a model")
    with pytest.raises(pose.PoseError, match="could not start PoseLandmarker on the GPU"):
        pose.make_estimator("gpu", task_model=bogus)
    with pytest.raises(pose.PoseError, match="unknown pose device"):
        pose.make_estimator("tpu")


def test_a_long_video_is_sampled_densely_enough_to_keep_the_track():
    """Issue 12: a 125 s walk at 60 fps was sampled 84 frames (1.4 s) apart and its track broke."""
    from igait_pipeline.stages.validity import MAX_SAMPLE_GAP_S, sampling_step

    assert sampling_step(60.0, 125 * 60) / 60.0 <= MAX_SAMPLE_GAP_S
    assert sampling_step(60.0, 6 * 60) == 10  # a short clip: 6 samples a second (legs seen alternating)
    assert sampling_step(30.0, 30 * 20) == 7  # 20 s: thinned towards MAX_SAMPLES, still under the gap
