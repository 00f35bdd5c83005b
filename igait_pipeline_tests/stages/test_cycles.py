"""Stage 5 on simulated walkers whose heel strikes and stride times are known
(igait_pipeline.reference_model.synthetic)."""
import numpy as np
import pytest

from igait_pipeline.reference_model import synthetic
from igait_pipeline.schemas import LM, Cycles, Keypoints
from igait_pipeline.stages import cycles
from igait_pipeline.stages.cycles import CyclesError, detect_cycles
from igait_pipeline.stages.gait.events import enforce_alternation, measure_view


def params(**kw) -> synthetic.WalkerParams:
    base = dict(age=7.0, sex="F", height_m=1.22, weight_kg=23.0, stride_time_s=0.9, stride_cv=0.02, asymmetry=0.0,
                stance_ratio=0.6, hip_rom=1.0, knee_rom=1.0, amp_cv=0.02, ankle_offset_deg=0.0, base_ratio=1.0,
                trunk_lean_deg=4.0, hip_offset_deg=0.0, knee_offset_deg=0.0, arm_swing_deg=20.0, noise=0.01)
    base.update(kw)
    return synthetic.WalkerParams(**base)


def side(p, seed=1, **kw) -> tuple[Keypoints, dict]:
    return synthetic.side_recording(p, np.random.default_rng(seed), job_id="t1", **kw)


def front(p, seed=2) -> tuple[Keypoints, dict]:
    return synthetic.front_recording(p, np.random.default_rng(seed), job_id="t1")


def assert_matches_truth(c: Cycles, truth: dict, tol_event=0.05, tol_duration=0.04, lag=0.0):
    """Every detected stride is a true stride of that foot: start near a true heel strike (at most `lag` s late
    besides the tolerance), same duration."""
    assert c.strides
    for s in c.strides:
        hs = np.array(truth["heel_strikes"][s.foot])
        k = int(np.argmin(np.abs(hs + lag / 2 - s.start)))
        assert -tol_event < s.start - hs[k] < tol_event + lag, (s, hs)
        assert k + 1 < len(hs)
        assert abs((hs[k + 1] - hs[k]) - s.duration) < tol_duration, (s, hs[k + 1] - hs[k])


@pytest.mark.parametrize("direction", [1, -1])
def test_recovers_stride_time_and_cadence_both_directions(direction):
    p = params(stride_time_s=0.85, stride_cv=0.03)
    kp, truth = side(p, seed=11, direction=direction)
    c = detect_cycles(kp, None, "t1")
    assert c.view_used == "side"
    assert c.quality["direction"] == ("left_to_right" if direction > 0 else "right_to_left")
    true_strides = truth["stride_times"]["left"] + truth["stride_times"]["right"]
    true_mean = float(np.mean(true_strides))
    pm = c.parameters
    assert pm["stride_time_mean_s"] == pytest.approx(true_mean, rel=0.03)
    assert pm["cadence_spm"] == pytest.approx(120 / true_mean, rel=0.03)
    assert pm["strides_left"] >= 2 and pm["strides_right"] >= 2
    assert pm["step_time_mean_s"] == pytest.approx(true_mean / 2, rel=0.05)
    assert pm["step_time_asymmetry"] < 0.06
    # Toe-off from the ankle (furthest behind the pelvis): the simulated stance share is 0.6.
    assert pm["stance_ratio"] == pytest.approx(0.6, abs=0.03)
    assert 0.6 < pm["step_length_norm"] < 1.2 and pm["walking_speed_norm"] > 0.5
    assert_matches_truth(c, truth)
    Cycles.model_validate_json(c.model_dump_json())


def test_other_cadence_and_frame_rate_and_asymmetry():
    p = params(stride_time_s=1.15, stride_cv=0.015, asymmetry=0.05)
    kp, truth = side(p, seed=5, direction=-1, fps=30.0)
    c = detect_cycles(kp, None, "t1")
    true_mean = float(np.mean(truth["stride_times"]["left"] + truth["stride_times"]["right"]))
    assert c.fps == 30.0
    assert c.parameters["cadence_spm"] == pytest.approx(120 / true_mean, rel=0.03)
    # Right heel strike at 0.55 of the left cycle: steps of 0.45 T and 0.55 T, asymmetry 2|L-R|/(L+R) = 0.2.
    assert c.parameters["step_time_asymmetry"] == pytest.approx(0.2, abs=0.05)
    assert_matches_truth(c, truth, tol_event=0.07, tol_duration=0.06)


def test_stride_variability_is_measured():
    steady = detect_cycles(side(params(stride_cv=0.01), seed=3, direction=1)[0], None, "t1")
    irregular = detect_cycles(side(params(stride_cv=0.08), seed=3, direction=1)[0], None, "t1")
    assert steady.parameters["stride_time_cv"] < 0.03
    assert irregular.parameters["stride_time_cv"] > 2 * steady.parameters["stride_time_cv"]


def _edit(kp: Keypoints, frames, fn) -> Keypoints:
    kp = kp.model_copy(deep=True)
    for i in frames:
        fn(kp.frames[i])
    return kp


def _present(kp: Keypoints) -> np.ndarray:
    return np.array([i for i, f in enumerate(kp.frames) if f.landmarks is not None])


def test_gaps_are_bridged_or_split_and_no_stride_spans_a_long_gap():
    kp, truth = side(params(), seed=4, direction=1, dropout=0.0)
    idx = _present(kp)
    mid = idx[len(idx) // 2]
    short = range(mid - 80, mid - 77)  # 0.05 s: bridged
    long = range(mid, mid + 36)  # 0.6 s: splits the walk

    def drop(f):
        f.landmarks = None

    gapped = _edit(kp, list(short) + list(long), drop)
    c = detect_cycles(gapped, None, "t1")
    t_gap0, t_gap1 = kp.frames[long[0]].t, kp.frames[long[-1]].t
    assert len(c.quality["segments"]) == 2
    for s in c.strides:
        assert s.end <= t_gap0 or s.start >= t_gap1, s
    q = c.quality
    assert q["frames_detected"] == len(idx) - len(short) - len(long)
    assert q["frames_visible"] + len(short) <= q["frames_used"] <= len(idx) - len(long)
    assert_matches_truth(c, truth)


def test_frames_with_invisible_ankles_at_the_ends_are_not_used():
    kp, truth = side(params(), seed=6, direction=-1, dropout=0.0)
    idx = _present(kp)
    ends = list(idx[:48]) + list(idx[-48:])  # 0.8 s at each end: the child's feet are out of view

    def hide_ankles(f):
        for name in ("left_ankle", "right_ankle"):
            f.landmarks[LM[name]][3] = 0.2

    c = detect_cycles(_edit(kp, ends, hide_ankles), None, "t1")
    q = c.quality
    assert q["frames_used"] <= len(idx) - 96
    assert q["visible_ratio"] < q["frames_detected"] / q["frames_total"]
    t_first, t_last = kp.frames[idx[48]].t, kp.frames[idx[-49]].t
    assert q["segments"][0][0] >= t_first - 1e-6 and q["segments"][-1][1] <= t_last + 1e-6
    assert all(t_first <= s.start and s.end <= t_last for s in c.strides)
    assert_matches_truth(c, truth)


def test_too_few_strides_raises_with_the_cause():
    kp, _ = side(params(), seed=7, direction=1, dropout=0.0)
    idx = _present(kp)
    keep = set(idx[len(idx) // 2: len(idx) // 2 + 66].tolist())  # 1.1 s of walking: at most one stride per foot

    def drop(f):
        f.landmarks = None

    short = _edit(kp, [i for i in range(len(kp.frames)) if i not in keep], drop)
    with pytest.raises(CyclesError, match="too few gait cycles"):
        detect_cycles(short, None, "t1")
    nobody = _edit(kp, range(len(kp.frames)), drop)
    with pytest.raises(CyclesError, match="both ankles are visible in only 0"):
        detect_cycles(nobody, None, "t1")
    with pytest.raises(CyclesError, match="labelled view"):
        detect_cycles(front(params())[0], None, "t1")


def test_front_view_is_the_fallback_and_gives_the_base_of_support():
    p = params(base_ratio=1.4)
    kp_side, _ = side(p, seed=8, direction=1, dropout=0.0)

    def drop(f):
        f.landmarks = None

    blank_side = _edit(kp_side, range(len(kp_side.frames)), drop)
    kp_front, truth = front(p, seed=9)
    c = detect_cycles(blank_side, kp_front, "t1")
    assert c.view_used == "front"
    assert "front view used" in c.quality["reasons"][0]
    assert c.quality["direction"] == "towards_camera"
    # Front-view heel strikes come late (the other foot lifting keeps the height difference growing after the
    # strike), by a roughly constant share of the cycle; stride durations are unaffected.
    assert_matches_truth(c, truth, tol_event=0.05, tol_duration=0.06, lag=0.15)
    assert c.parameters["stance_ratio"] is None and c.parameters["step_length_norm"] is None
    narrow = detect_cycles(kp_side, front(params(base_ratio=0.8), seed=9)[0], "t1")
    assert narrow.view_used == "side"
    assert c.parameters["base_width_ratio"] > narrow.parameters["base_width_ratio"] + 0.3


def test_a_side_view_given_as_front_is_flagged():
    kp, _ = side(params(), seed=10, direction=1)
    as_front = Keypoints.model_validate({**kp.model_dump(), "view": "front"})
    res = measure_view(as_front)
    assert any("looks like a side view" in w for w in res.warnings)
    assert res.extras["base_width_ratio"] is None


    c = detect_cycles(side(params(), seed=10, direction=1)[0], as_front, "t1")
    flag = next(f for f in c.quality["flags"] if f["name"] == "front_view_usable")
    assert not flag["ok"] and "sideways" in flag["detail"]
    assert "sideways" in c.kinematics["curves"]["front_hip_abduction_left"]["reason"]


def test_plots_are_pngs_drawn_from_the_measurement():
    kp, _ = side(params(), seed=12, direction=1)
    gait = cycles.measure_gait(kp, None, "t1")
    pngs = gait.plots()
    assert set(pngs) == {"cycles.png", "curves.png"}
    assert all(p[:8] == b"\x89PNG\r\n\x1a\n" and len(p) > 10_000 for p in pngs.values())


def test_plots_fit_their_fixed_margins(monkeypatch):
    """The figures have fixed margins (no tight_layout): every label, title and legend of both figures, for each
    view (the front view's longer axis label) and a walk with joints not measured, lies inside the figure."""
    from igait_pipeline.stages.gait import plot

    drawn = []
    png = plot._png
    monkeypatch.setattr(plot, "_png", lambda fig: drawn.append(fig) or png(fig))
    w = synthetic.make_walker(2, job_id="t1")
    gait = cycles.measure_gait(w.side, w.front, "t1")
    plot.plot_events(gait.views["side"], gait.cycles)
    plot.plot_events(gait.views["front"], gait.cycles)
    plot.plot_curves(gait.cycles)
    plot.plot_curves(cycles.measure_gait(side(params(), seed=12, direction=1)[0], None, "t1").cycles)
    assert len(drawn) == 4
    for fig in drawn:
        box = fig.get_tightbbox()  # inches, of everything drawn
        w_in, h_in = fig.get_size_inches()
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= w_in and box.y1 <= h_in, (box, w_in, h_in)


def _slow_start(kp: Keypoints, until: float, factor: float) -> Keypoints:
    """The same walk with its first `until` seconds played `factor` times slower (a walker speeding up: gait
    initiation), resampled at the original frame rate."""
    t = np.array([f.t for f in kp.frames])
    present = np.array([f.landmarks is not None for f in kp.frames])
    lm = np.array([f.landmarks if f.landmarks is not None else [[np.nan] * 4] * 33 for f in kp.frames])
    n_new = int(round((t[-1] + (factor - 1) * until) * kp.fps)) + 1
    tau = np.arange(n_new) / kp.fps
    src = np.where(tau < factor * until, tau / factor, tau - (factor - 1) * until)
    frames = []
    for i, s in enumerate(src):
        j = min(int(np.searchsorted(t, s)), len(t) - 1)
        k = max(j - 1, 0)
        if not (present[j] and present[k]):
            frames.append({"index": i, "t": round(float(tau[i]), 4), "landmarks": None})
            continue
        w = 0.0 if j == k else (s - t[k]) / (t[j] - t[k])
        frames.append({"index": i, "t": round(float(tau[i]), 4),
                       "landmarks": np.round(lm[k] * (1 - w) + lm[j] * w, 5).tolist()})
    return Keypoints.model_validate({**kp.model_dump(exclude={"frames"}), "frames": frames})


def test_gait_initiation_and_the_frame_edge_are_not_steady_strides():
    """Issue 9: variability came from strides of gait initiation and of the walker leaving the frame."""
    kp, truth = side(params(stride_cv=0.01), seed=21, direction=1, dropout=0.0, width=2560)  # a longer walk
    start = next(f.t for f in kp.frames if f.landmarks is not None)
    # The first ~1.5 strides in the frame at 2/3 speed (the walker speeding up), up to a true heel strike.
    until = sorted(t for f in ("left", "right") for t in truth["heel_strikes"][f] if t > start + 0.2)[2]
    slow = _slow_start(kp, until=until, factor=1.5)
    c = cycles.measure_gait(slow, None, "t1").cycles
    reasons = [s.excluded for s in c.excluded_strides]
    assert any(r.startswith("gait initiation") for r in reasons), reasons
    assert "cut by the frame edge" in reasons
    assert all(s.steady and s.excluded is None for s in c.strides)
    assert all(s.start >= 1.5 * until - 0.05 for s in c.strides)  # after the slow part (shifted by the slow-down)
    assert c.parameters["stride_time_mean_s"] == pytest.approx(0.9, rel=0.03)
    assert c.parameter_details["stride_time_mean_s"].n == len(c.strides) >= 3
    # The steady CV is the walker's (~1 %); with the slow strides in, it would be several times larger.
    all_durs = np.array([s.duration for s in c.strides + c.excluded_strides])
    assert c.parameters["stride_time_cv"] < 0.025 < all_durs.std(ddof=1) / all_durs.mean()
    q = c.quality
    assert q["steady_strides"] == len(c.strides) and q["strides"] == len(c.strides) + len(c.excluded_strides)


def test_variability_needs_six_steady_steps_or_is_null_with_the_reason():
    kp, _ = side(params(), seed=7, direction=1, dropout=0.0)
    idx = _present(kp)
    keep = set(idx[len(idx) // 2 - 75: len(idx) // 2 + 75].tolist())  # 2.5 s: ~2 strides per foot, < 6 steps

    def drop(f):
        f.landmarks = None

    c = detect_cycles(_edit(kp, [i for i in range(len(kp.frames)) if i not in keep], drop), None, "t1")
    d = c.parameter_details
    assert c.parameters["cadence_spm"] is not None and d["cadence_spm"].n == len(c.strides) >= 2
    for name in ("stride_time_cv", "step_time_asymmetry"):
        assert c.parameters[name] is None and d[name].value is None
        assert "variability needs at least 6 steady steps" in d[name].reason, d[name]
    full = detect_cycles(kp, None, "t1")
    assert full.parameters["stride_time_cv"] is not None and full.parameter_details["stride_time_cv"].n >= 3


def test_events_alternate_per_foot_and_an_extra_toe_off_is_dropped():
    res = measure_view(side(params(), seed=13, direction=1, dropout=0.0)[0])
    for foot in ("left", "right"):
        seq = sorted([(t, "hs") for t in res.heel_strikes[foot]] + [(t, "to") for t in res.toe_offs[foot]])
        assert all(a[1] != b[1] for a, b in zip(seq, seq[1:])), seq
    # A second, weaker toe-off of the left foot in its stance (as after a left/right swap by the pose model).
    hs = res.heel_strikes["left"][1]
    extra = round(hs + 0.1, 4)
    true_to = min(t for t in res.toe_offs["left"] if t > hs)
    res.toe_offs["left"] = sorted(res.toe_offs["left"] + [extra])
    res.extras["event_strength"][("left", "to", extra)] = 0.01
    enforce_alternation(res)
    assert extra not in res.toe_offs["left"] and true_to in res.toe_offs["left"]
    assert res.extras["events_dropped_for_order"] == 1
    assert any("did not alternate" in w for w in res.warnings)


def test_speed_is_in_leg_lengths_per_second_and_says_how():
    p = params(stride_time_s=0.9)
    kp, _ = side(p, seed=14, direction=-1)
    c = detect_cycles(kp, None, "t1")
    true_speed = synthetic.stride_length(p) / p.stride_time_s / (0.49 * p.height_m)  # thigh + shank = 0.491 H
    assert c.parameters["walking_speed_norm"] == pytest.approx(true_speed, rel=0.08)
    assert "leg length" in c.methods["walking_speed_norm"] and "steady strides" in c.methods["walking_speed_norm"]
    assert c.parameter_details["walking_speed_norm"].n == len(c.strides)
    assert c.settings["events"]["toe_off_landmark"] == "heel+ankle"
