"""Issue 28 on simulated walkers: both videos of a job must show the same walker (cross-view consistency), a front
angle outside its plausibility bound is null and never a model input, the base of support is corrected for a
diagonal approach. The same rules on real clips: test_real_numbers.py."""
import numpy as np
import pytest

from igait_pipeline.reference_model import BUNDLED_DIR, synthetic
from igait_pipeline.schemas import LM, Keypoints
from igait_pipeline.stages import cycles, features, predict
from igait_pipeline.stages.gait.events import measure_view
from igait_pipeline.stages.gait.settings import DEFAULT
from igait_pipeline_tests.stages.test_cycles import params


@pytest.fixture(scope="module")
def reference():
    return predict.load_model_dir(BUNDLED_DIR)


def _prediction(c, metadata, model):
    fs = features.compute_features(c, metadata)
    return predict.predict(fs, model, c.job_id, flags=c.quality["flags"], stage5_settings=c.settings)


def _flag(c, name: str) -> dict:
    return next(f for f in c.quality["flags"] if f["name"] == name)


@pytest.mark.parametrize("seed", [20_001, 20_002, 20_003, 20_004])
def test_one_walker_in_both_cameras_is_consistent(seed, reference):
    w = synthetic.make_walker(seed)
    c = cycles.detect_cycles(w.side, w.front, f"cv{seed}")
    cv = c.quality["cross_view"]
    assert cv["ok"] and not cv["warnings"], cv
    assert cv["stride_time_s"]["difference"] < 0.1 and cv["leg_to_trunk"]["ok"]
    assert cv["cadence_spm"]["side"] == pytest.approx(120 / cv["stride_time_s"]["side"], abs=0.01)
    assert _flag(c, "views_consistent")["ok"]
    assert c.settings["consistency"]["stride_time_tolerance"] == DEFAULT.consistency.stride_time_tolerance
    pred = _prediction(c, w.metadata, reference)
    assert not any("views_consistent" in r for r in pred.reasons), pred.reasons


def test_two_different_walkers_are_flagged_and_indeterminate(reference):
    """A quick walker in the side video, a slow one in the front video: an upload mistake."""
    quick, slow = params(stride_time_s=0.8), params(stride_time_s=1.15, height_m=1.4)
    side, _ = synthetic.side_recording(quick, np.random.default_rng(1), "cv1", direction=1)
    front, _ = synthetic.front_recording(slow, np.random.default_rng(2), "cv1")
    c = cycles.detect_cycles(side, front, "cv1")
    cv = c.quality["cross_view"]
    assert not cv["ok"] and cv["stride_time_s"]["difference"] > 0.3
    warning = cv["warnings"][0]
    assert f"{cv['stride_time_s']['side']:.3f} s in the side view" in warning
    assert f"{cv['stride_time_s']['front']:.3f} s in the front view" in warning and "different people" in warning
    assert warning in c.quality["warnings"]
    flag = _flag(c, "views_consistent")
    assert not flag["ok"] and flag["detail"] == warning
    meta = synthetic.make_walker(1).metadata
    pred = _prediction(c, meta, reference)
    assert pred.classification == "INDETERMINATE"
    assert any(r.startswith("quality check views_consistent failed: cross-view: mean steady stride time")
               for r in pred.reasons), pred.reasons
    # Not compared when the front view has no steady walk: the check fails with that reason, not silently.
    blank = front.model_copy(deep=True)
    for f in blank.frames:
        f.landmarks = None
    c2 = cycles.detect_cycles(side, blank, "cv1")
    assert not c2.quality["cross_view"]["ok"] and "not compared" in _flag(c2, "views_consistent")["detail"]


def _wobbling_knees(kp: Keypoints, period_s: float, amplitude: float = 0.35) -> Keypoints:
    """The ankle (and the foot with it) swung sideways about the knee by ±`amplitude` shank lengths once per
    stride: a knee ab/adduction of about ±19°, far beyond anything a knee does in walking."""
    kp = kp.model_copy(deep=True)
    for f in kp.frames:
        if f.landmarks is None:
            continue
        for s in ("left", "right"):
            knee, ankle = np.array(f.landmarks[LM[f"{s}_knee"]][:2]), np.array(f.landmarks[LM[f"{s}_ankle"]][:2])
            dx = amplitude * np.hypot(*(ankle - knee)) * np.sin(2 * np.pi * f.t / period_s)
            for part in ("ankle", "heel", "foot_index"):
                f.landmarks[LM[f"{s}_{part}"]][0] += dx
    return kp


def test_front_knee_outside_its_bound_is_null_and_never_a_model_input(reference):
    w = synthetic.make_walker(20_005, label=0)
    plain = cycles.detect_cycles(w.side, w.front, "fk1")
    knee = plain.kinematics["curves"]["front_knee_abduction_left"]
    assert "mean" in knee and knee["rom_deg"] <= knee["bound_deg"] == DEFAULT.front_angles.knee_rom_max_deg
    c = cycles.detect_cycles(w.side, _wobbling_knees(w.front, w.params.stride_time_s), "fk1")
    bad = c.kinematics["curves"]["front_knee_abduction_left"]
    assert "mean" not in bad and bad["rom_valid_phases_deg"] > bad["bound_deg"]
    assert "more than the plausible 16°" in bad["reason"] and "knee_rom_max_deg" in bad["reason"]
    assert c.kinematics["symmetry"]["front_knee_abduction"]["rom_symmetry_index_pct"] is None
    assert "mean" in c.kinematics["curves"]["side_knee_flexion_left"]  # the side view is untouched
    fs = features.compute_features(c, w.metadata)
    assert not np.isfinite(fs.as_dict()["front_knee_abduction_left_050"] or np.nan)
    assert "more than the plausible" in fs.missing_reasons["front_knee_abduction_left"]
    pred = predict.predict(fs, reference, "fk1", flags=c.quality["flags"], stage5_settings=c.settings)
    assert pred.classification == "INDETERMINATE"
    assert "front_knee_abduction_left_000" in pred.features["imputed_with_training_mean"]
    assert any("front_knee_abduction_left" in r and "more than the plausible 16°" in r for r in pred.reasons)
    assert "rom_deg" not in pred.features["series"]["front_knee_abduction_left"]


def test_base_of_support_on_a_diagonal_approach():
    """Walking 8° off the camera's axis the steps shift the leading ankle sideways (alternately): corrected; at 20°
    the base is null with the reason."""
    p = params(base_ratio=1.2)
    straight = measure_view(synthetic.front_walk(p, np.random.default_rng(2))[0])
    assert straight.extras["base_diagonal_component"] < 0.1
    assert straight.extras["base_width_ratio"] == pytest.approx(1.2, abs=0.1)
    diagonal = measure_view(synthetic.front_walk(p, np.random.default_rng(2), diagonal_deg=8)[0])
    assert 0.15 < diagonal.extras["base_diagonal_component"] < DEFAULT.front.base_max_diagonal
    assert diagonal.extras["base_width_ratio"] == pytest.approx(1.2, abs=0.15)
    # Uncorrected (the 90th percentile of the ankle separation over each steady stride) reads it wider.
    xy, t = diagonal.xy, diagonal.t
    hip = np.abs(xy[:, LM["left_hip"], 0] - xy[:, LM["right_hip"], 0])
    ank = np.abs(xy[:, LM["left_ankle"], 0] - xy[:, LM["right_ankle"], 0])
    raw = np.median([np.nanpercentile((ank / hip)[(t >= s.start) & (t <= s.end)], 90)
                     for s in diagonal.steady_strides])
    assert raw > diagonal.extras["base_width_ratio"] + 0.05
    steep = measure_view(synthetic.front_walk(p, np.random.default_rng(2), diagonal_deg=20)[0])
    assert steep.extras["base_width_ratio"] is None
    assert steep.extras["base_width_reason"].startswith("the walker walks at an angle to the camera's axis: each "
                                                        "step shifts the leading ankle")
