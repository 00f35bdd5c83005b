"""Stage 5 against reference data: simulated walkers (igait_pipeline.reference_model.synthetic) whose heel strikes,
toe-offs and stride times are known exactly, over many seeds, speeds (stride times) and leg lengths (heights) — as
gaitmap tests its algorithms against reference data.

The issue's targets at 60 fps are >= 95 % of heel strikes and toe-offs within one frame, cadence within 2 %, CV
and asymmetry within one percentage point. What the method reaches on these walkers is asserted below (96
walkers, but the three heights share each seed's noise and give near-identical results, so ~32 independent
walks): heel strikes 96 % within 1 frame (90 % for the slowest, 1.3 s strides) and 100 % within 2, toe-offs 98.4 %
(96 % at 1.3 s) and 100 %, cadence 100 % within 2 %, CV 100 % within 1 pp, asymmetry 65 % within 1 pp and 94.5 %
within 2 (bench/gait_reference.py prints the breakdown); the gap to the asymmetry target is explained in
docs/pipeline.md. The event-share assertions fail on the previous method (Zeni's extremes on 3-harmonic signals
without re-location: heel strikes 94.4 %, toe-offs 82.9 %, at 1.3 s 86.7 % / 75.1 %). The re-location filters and
the offsets were chosen on seeds 100-115 (bench/gait_reference.py --choose-refinement, --calibrate), not on these.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from igait_pipeline.reference_model import synthetic
from igait_pipeline.stages import cycles
from igait_pipeline.stages.gait.events import swing_times
from igait_pipeline.stages.gait.settings import DEFAULT, GaitSettings

FPS = 60.0
STRIDE_TIMES = (0.7, 0.9, 1.1, 1.3)  # s: fast to slow walkers
HEIGHTS = (0.95, 1.2, 1.5)  # m: leg lengths ~0.47-0.74 m
SEEDS = range(8)


def walk(seed: int, stride_time: float, height: float, **overrides):
    """One reference walker's side recording and its truth (the recipe bench/gait_reference.py uses too)."""
    rng = np.random.default_rng(1000 + seed)
    p = synthetic.sample_params(rng, seed % 2)
    p.stride_time_s, p.height_m = stride_time, height
    for k, v in overrides.items():
        setattr(p, k, v)
    kp, truth = synthetic.side_recording(p, rng, f"ref_{seed}", fps=FPS)
    return kp, truth


def _nearest(true: list[float], t: float) -> tuple[int, float]:
    arr = np.asarray(true)
    k = int(np.argmin(np.abs(arr - t)))
    return k, float(t - arr[k])


def evaluate(kp, truth, settings: GaitSettings = DEFAULT) -> dict:
    """Event errors per foot (frames, detected minus true) and parameter errors against the truth of the same
    strides and steps (cadence relative; CV and asymmetry as differences of fractions)."""
    gait = cycles.measure_gait(kp, None, "ref", settings)
    c, side = gait.cycles, gait.views["side"]
    row = {"hs": {}, "to": {}, "swing": swing_times(side)}
    for f in ("left", "right"):
        row["hs"][f] = [_nearest(truth["heel_strikes"][f], t)[1] * FPS for t in c.heel_strikes[f]]
        row["to"][f] = [_nearest(truth["toe_offs"][f], t)[1] * FPS for t in c.toe_offs[f]]
    true_durs = []
    for s in c.strides:
        hs = truth["heel_strikes"][s.foot]
        k, _ = _nearest(hs, s.start)
        true_durs.append(hs[k + 1] - hs[k])
    true_durs = np.array(true_durs)
    events = sorted((t, f) for f in ("left", "right") for t in truth["heel_strikes"][f])
    steps = {"left": [], "right": []}
    for s in side.steady_steps:
        j = min((i for i, (t, f) in enumerate(events) if f == s.foot), key=lambda i: abs(events[i][0] - s.end))
        steps[s.foot].append(events[j][0] - events[j - 1][0])
    p = c.parameters
    row["cadence"] = p["cadence_spm"] / (120 / true_durs.mean()) - 1
    if p["stride_time_cv"] is not None:
        row["cv_true"] = true_durs.std(ddof=1) / true_durs.mean()
        row["cv"] = p["stride_time_cv"] - row["cv_true"]
    if p["step_time_asymmetry"] is not None:
        ml, mr = np.mean(steps["left"]), np.mean(steps["right"])
        row["asym_true"] = 2 * abs(ml - mr) / (ml + mr)
        row["asym"] = p["step_time_asymmetry"] - row["asym_true"]
    return row


def reference_set(settings: GaitSettings = DEFAULT, seeds=SEEDS, heights=HEIGHTS, **overrides) -> list[dict]:
    """evaluate() over seeds x STRIDE_TIMES x heights; each row also names its condition."""
    out = []
    for seed, st, h in itertools.product(seeds, STRIDE_TIMES, heights):
        row = evaluate(*walk(seed, st, h, **overrides), settings)
        out.append({"seed": seed, "stride_time": st, "height": h, **row})
    return out


@pytest.fixture(scope="module")
def reference_runs():
    return reference_set()


def _events(runs, kind: str) -> np.ndarray:
    return np.concatenate([r[kind][f] for r in runs for f in ("left", "right")])


def _share(values, limit) -> float:
    return float(np.mean(np.abs(values) <= limit))


def test_heel_strikes_against_reference(reference_runs):
    err = _events(reference_runs, "hs")
    assert len(err) > 800
    assert abs(err.mean()) < 0.15  # frames
    assert _share(err, 2.0) >= 0.99
    assert _share(err, 1.0) >= 0.955  # achieved 96.1 %; Zeni on the 3-harmonic signal alone: 94.4 %
    slow = _events([r for r in reference_runs if r["stride_time"] == 1.3], "hs")
    assert _share(slow, 1.0) >= 0.88  # 1.3 s strides: achieved 89.8 %; before: 86.7 %


def test_toe_offs_against_reference(reference_runs):
    err = _events(reference_runs, "to")
    assert len(err) > 800
    assert abs(err.mean()) < 0.15  # the toe's rear-most point (not its acceleration) made them 2 frames late
    assert _share(err, 2.0) >= 0.99  # before: 98.5 %
    assert _share(err, 1.0) >= 0.97  # achieved 98.4 %; Zeni's heel/ankle extreme alone: 82.9 %
    slow = _events([r for r in reference_runs if r["stride_time"] == 1.3], "to")
    assert _share(slow, 1.0) >= 0.95  # 1.3 s strides: achieved 96.4 %; before: 75.1 %


def test_cadence_within_two_percent_of_reference(reference_runs):
    assert all(abs(r["cadence"]) <= 0.02 for r in reference_runs)


def test_variability_and_asymmetry_against_reference(reference_runs):
    cv = [r["cv"] for r in reference_runs if "cv" in r]
    asym = [r["asym"] for r in reference_runs if "asym" in r]
    assert len(cv) >= 0.9 * len(reference_runs) and len(asym) >= 0.9 * len(reference_runs)
    assert _share(cv, 0.01) >= 0.95
    # Achieved 65 % within 1 pp and 94.5 % within 2 (target 95 % within 1 pp; docs/pipeline.md says why: per-event
    # jitter, ~5 ms within a walker, and per-stride joint-range changes; noise-free 93.5 %). Heel strikes are
    # re-located by one shift per walk, so step times stay those of the found events (before: 68 % / 91 %).
    assert _share(asym, 0.01) >= 0.62 and _share(asym, 0.02) >= 0.9


def test_the_real_clip_heel_strike_offset_applies_to_its_pose_estimator_only():
    """EventSettings.heel_strike_estimator_offsets_s was measured on real clips through MediaPipe: the same walker's
    keypoints named as MediaPipe's get every side heel strike moved by it (strides and steps unchanged, the offset
    recorded), the simulator's own keypoints get none, and an estimator not listed gets none."""
    from igait_pipeline.stages.gait.events import measure_view

    kp, _ = walk(3, 1.1, 1.2)
    assert kp.model.name == "synthetic-walker"
    offsets = dict(DEFAULT.events.heel_strike_estimator_offsets_s)
    assert offsets["mediapipe-blazepose-full"] == offsets["mediapipe-pose-landmarker-full"] < 0
    own = measure_view(kp)
    assert own.extras["heel_strike_estimator_offset_s"] == {"estimator": "synthetic-walker", "offset_s": 0.0}
    as_mediapipe = measure_view(kp.model_copy(update={"model": kp.model.model_copy(
        update={"name": "mediapipe-blazepose-full"})}))
    assert as_mediapipe.extras["heel_strike_estimator_offset_s"]["offset_s"] == offsets["mediapipe-blazepose-full"]
    for f in ("left", "right"):
        assert len(own.heel_strikes[f]) >= 3
        assert np.allclose(np.subtract(as_mediapipe.heel_strikes[f], own.heel_strikes[f]),
                           offsets["mediapipe-blazepose-full"], atol=1e-4)
        assert as_mediapipe.toe_offs[f] == own.toe_offs[f]
    assert [round(s.duration, 4) for s in as_mediapipe.strides] == [round(s.duration, 4) for s in own.strides]
    other = measure_view(kp.model_copy(update={"model": kp.model.model_copy(update={"name": "another-model"})}))
    assert other.heel_strikes == own.heel_strikes
