"""A side view filmed by a phone that pans with the walker: the pelvis hardly moves across the picture, so its image
speed says nothing of the walker's. Strides are judged steady by their speed over the ground (the pelvis relative to
the foot on the ground), and walking speed and stride length are null with the reason, never ~0 leg lengths/s.
The real clip this was measured on (a man filmed by a panning phone, BlackDuomu/Posture-Recognition) is unlicensed
and measured locally by bench/pairs.py; here the simulated walkers are filmed again by a camera that follows them."""
import numpy as np
import pytest

from igait_pipeline.reference_model import synthetic
from igait_pipeline.schemas import LM, Keypoints
from igait_pipeline.stages import cycles
from igait_pipeline.stages.gait.events import measure_view
from igait_pipeline.stages.gait.parameters import parameters
from igait_pipeline.stages.gait.settings import DEFAULT


def panning(kp: Keypoints) -> Keypoints:
    """The same walk seen by a camera that pans with the walker at the walker's mean speed: every landmark moves
    by the pelvis's straight-line trend, so the walker stays in the middle of the picture (the pelvis's sway within
    a stride stays)."""
    kp = kp.model_copy(deep=True)
    frames = [f for f in kp.frames if f.landmarks is not None]
    t = np.array([f.t for f in frames])
    x = np.array([(f.landmarks[LM["left_hip"]][0] + f.landmarks[LM["right_hip"]][0]) / 2 for f in frames])
    slope, icpt = np.polyfit(t, x, 1)
    for f in frames:
        for lm in f.landmarks:
            lm[0] -= slope * f.t + icpt - 0.5
    return kp


@pytest.mark.parametrize("seed", [20_021, 20_022, 20_023])
def test_a_camera_panning_with_the_walker_keeps_the_steady_strides(seed):
    side = synthetic.make_walker(seed).side
    still, panned = measure_view(side, DEFAULT), measure_view(panning(side), DEFAULT)
    assert still.extras["pelvis_travel_leg_lengths"] > 5 and not still.extras["camera_follows_walker"]
    assert panned.extras["pelvis_travel_leg_lengths"] < 0.1 and panned.extras["camera_follows_walker"]
    assert [(s.foot, s.start) for s in panned.strides] == [(s.foot, s.start) for s in still.strides]
    # Every stride the still camera kept is kept; those it cut at the frame's edge are whole in the panning view.
    assert {s.start for s in still.steady_strides} <= {s.start for s in panned.steady_strides}
    assert all(s.excluded is None for s in panned.strides)
    assert all(0.5 * still.extras["median_stride_speed_norm"] < s.speed_norm for s in panned.strides)
    assert any("the camera follows the walker" in w for w in panned.warnings)
    p_still, p_panned = parameters(still, None, DEFAULT), parameters(panned, None, DEFAULT)
    assert p_still["walking_speed_norm"]["value"] > 1
    for name in ("walking_speed_norm", "stride_length_norm"):
        assert p_panned[name]["value"] is None and "the camera follows the walker" in p_panned[name]["reason"]
    assert p_panned["step_length_norm"]["value"] == pytest.approx(p_still["step_length_norm"]["value"], rel=0.03)
    assert p_panned["stride_time_mean_s"]["value"] == pytest.approx(p_still["stride_time_mean_s"]["value"], abs=0.01)


def test_a_panning_side_view_reaches_cycles_json_with_its_reason():
    w = synthetic.make_walker(20_024)
    c = cycles.detect_cycles(panning(w.side), w.front, "pan1")
    assert any("the camera follows the walker" in x for x in c.quality["warnings"])
    assert c.parameters["walking_speed_norm"] is None and c.parameters["stride_length_norm"] is None
    assert c.settings["strides"]["follow_travel_leg_lengths"] == DEFAULT.strides.follow_travel_leg_lengths
    assert c.quality["cross_view"]["ok"], c.quality["cross_view"]  # the same walker in both views still agrees
