"""Spatio-temporal gait parameters from the steady strides and steps of one view. No Dagster import here.

Every parameter comes with the number of steady strides (or steps) it was computed from, and is null with the
reason when there were too few (StrideSettings). Keys are stable: cycles.json readers and the feature vector use
them.
"""
from __future__ import annotations

import numpy as np

from igait_pipeline.schemas import LM
from igait_pipeline.stages.gait.events import ViewMeasurement
from igait_pipeline.stages.gait.settings import DEFAULT, GaitSettings
from igait_pipeline.stages.gait.signals import FEET

METHODS = {
    "cadence_spm": "120 / mean steady stride time (two steps per stride), steps per minute",
    "stride_time_mean_s": "mean duration of steady strides (heel strike to the next heel strike of that foot)",
    "stride_time_sd_s": "SD (ddof 1) of steady stride durations, both feet",
    "stride_time_cv": "stride_time_sd_s / stride_time_mean_s (a fraction); needs min_steady_steps_variability "
                      "steady steps and min_steady_strides_variability steady strides",
    "step_time_mean_s": "mean duration of steady steps (heel strike to the other foot's heel strike)",
    "step_time_asymmetry": "2|L − R| / (L + R) of the mean steady step times ending with each foot (a fraction); "
                           "needs min_steady_steps_variability steady steps with both feet",
    "stance_ratio": "mean share of a steady stride from heel strike to that foot's toe-off (ankle furthest behind "
                    "the pelvis)",
    "step_length_norm": "side view: heel-to-heel horizontal distance at heel strikes ending steady steps (the "
                        "largest from the heel strike to StrideSettings.step_length_window of a stride after it), "
                        "in leg lengths",
    "walking_speed_norm": "side view: pelvis (mid-hip) horizontal displacement over the steady strides divided by "
                          "their duration, in leg lengths per second; leg length = median over used frames of the "
                          "2-D hip–knee plus knee–ankle distance in pixels (mean of both legs); against the "
                          "background when the camera pans (Keypoints.background); null when the camera follows the "
                          "walker and its pan is not known (StrideSettings.follow_travel_leg_lengths), or when against "
                          "a moving camera's background the stride disagrees with two steady steps "
                          "(StrideSettings.moving_camera_stride_tolerance)",
    "stride_length_norm": "walking_speed_norm × stride_time_mean_s, in leg lengths",
    "base_width_ratio": "front view: per steady stride, the 90th percentile (FrontSettings.base_width_percentile) of "
                        "the frame-by-frame horizontal ankle separation over hip separation (both in the same "
                        "frame, so the walker's changing size cancels), median over the front view's steady "
                        "strides (steady approach, not cut by the frame edge)",
    "strides_left": "steady strides of the left foot",
    "strides_right": "steady strides of the right foot",
}


def _info(value: float | None, n: int, basis: str, reason: str | None = None, view: str | None = None) -> dict:
    """One parameter's record. n counts what a measured value was computed from; a value that is null was
    computed from nothing (n 0): its reason says what was found instead (e.g. "2 steady strides: at least 3")."""
    if value is not None and not np.isfinite(value):
        value = None
    if value is None:
        return {"value": None, "n": 0, "basis": basis, "reason": reason or "not measured", "view": view}
    return {"value": round(float(value), 5), "n": n, "basis": basis, "reason": None, "view": view}


def parameters(res: ViewMeasurement, front: ViewMeasurement | None,
               settings: GaitSettings = DEFAULT) -> dict[str, dict]:
    """{name: {"value", "n", "basis", "reason"}} for every name in METHODS."""
    st = settings.strides
    strides = res.steady_strides
    steps = res.steady_steps
    ns, nk = len(strides), len(steps)
    durs = np.array([s.duration for s in strides])
    out: dict[str, dict] = {}
    few = (f"{ns} steady stride(s) in the {res.view} view (at least {st.min_steady_strides} needed)"
           if ns < st.min_steady_strides else None)
    mean = float(durs.mean()) if not few else None
    out["stride_time_mean_s"] = _info(mean, ns, "steady strides", few)
    out["cadence_spm"] = _info(120.0 / mean if mean else None, ns, "steady strides", few)
    sd = float(durs.std(ddof=1)) if not few else None
    out["stride_time_sd_s"] = _info(sd, ns, "steady strides", few)
    var_reason = None
    if nk < st.min_steady_steps_variability or ns < st.min_steady_strides_variability:
        var_reason = (f"{nk} steady step(s) and {ns} steady stride(s) in the {res.view} view: variability needs "
                      f"at least {st.min_steady_steps_variability} steady steps and "
                      f"{st.min_steady_strides_variability} steady strides")
    out["stride_time_cv"] = _info(sd / mean if not var_reason and mean else None, ns, "steady strides", var_reason)
    by_foot = {f: [s.duration for s in steps if s.foot == f] for f in FEET}
    out["step_time_mean_s"] = _info(float(np.mean([s.duration for s in steps])) if nk else None, nk,
                                    "steady steps", None if nk else f"no steady step in the {res.view} view")
    asym, reason = None, var_reason
    if not reason and not (by_foot["left"] and by_foot["right"]):
        reason = "steady steps ending with only one foot"
    if not reason:
        ml, mr = np.mean(by_foot["left"]), np.mean(by_foot["right"])
        asym = float(2 * abs(ml - mr) / (ml + mr))
    out["step_time_asymmetry"] = _info(asym, nk, "steady steps", reason)
    ratios = [(s.toe_off - s.start) / s.duration for s in strides if s.toe_off is not None]
    out["stance_ratio"] = _info(float(np.mean(ratios)) if ratios else None, len(ratios), "steady strides",
                                None if ratios else f"no steady stride with one toe-off in the {res.view} view")
    lengths = _step_lengths(res, steps, st.step_length_window * (res.period_s or 0.0))
    out["step_length_norm"] = _info(float(np.mean(lengths)) if lengths else None, len(lengths), "steady steps",
                                    None if lengths else "side view only, from steady steps")
    follows = res.extras.get("camera_follows_walker")
    speed = _speed(res, strides) if not few and not follows else None
    no_speed = (f"the camera follows the walker (the pelvis travels only {res.extras['pelvis_travel_leg_lengths']}"
                f" leg lengths across the picture): no walking speed from the pelvis's travel" if follows
                else "side view only (pelvis travel)")
    if speed and mean and lengths and "camera_pan_leg_lengths" in res.extras:
        # Measured against a moving camera's background: right for a camera that turns, short for one carried
        # along beside the walker (the far background slides less than the walker's plane). Two steps, measured
        # heel to heel in the walker's own plane, must make about one stride.
        stride, steps = speed * mean, 2 * float(np.mean(lengths))
        tol = st.moving_camera_stride_tolerance
        if not 1 / (1 + tol) <= steps / stride <= 1 + tol:
            speed, no_speed = None, (
                f"the camera moved with the walker: the stride against the background ({stride:.2f} leg lengths) "
                f"disagrees with two steps ({steps:.2f}) by more than {tol:.0%} (a camera carried along beside the "
                f"walker: the far background slides less than the walker does), so no walking speed or stride "
                f"length")
    out["walking_speed_norm"] = _info(speed, ns, "steady strides", few or (None if speed else no_speed))
    out["stride_length_norm"] = _info(speed * mean if speed and mean else None, ns, "steady strides",
                                      out["walking_speed_norm"]["reason"] or few)
    for v in out.values():
        v["view"] = res.view
    out["base_width_ratio"] = _base_width(front)
    for f in FEET:
        k = sum(s.foot == f for s in strides)
        out[f"strides_{f}"] = {"value": float(k), "n": k, "basis": "steady strides", "reason": None,
                               "view": res.view}
    return out


def _base_width(front: ViewMeasurement | None) -> dict:
    """base_width_ratio from the front view's steady strides: n = their frames (basis says how many strides);
    null with the reason otherwise."""
    if front is None:
        return _info(None, 0, "front-view frames", "no front view", "front")
    bw = front.extras.get("base_width_ratio")
    if bw is None:
        why = front.extras.get("base_width_reason") or "; ".join(front.reasons) or "front view unusable"
        return _info(None, front.frames_used, "front-view frames", f"front view: {why}", "front")
    k = front.extras.get("base_width_strides", 0)
    return _info(bw, front.extras.get("base_width_frames", 0), f"front-view frames of {k} steady strides", None,
                 "front")


def _step_lengths(res: ViewMeasurement, steps, window_s: float = 0.0) -> list[float]:
    """Heel-to-heel distance (leg lengths) of each step: the largest from its heel strike to `window_s` after it
    (StrideSettings.step_length_window)."""
    if res.view != "side" or res.xy is None:
        return []
    vals = []
    for s in steps:
        other = "right" if s.foot == "left" else "left"
        i = int(np.argmin(np.abs(res.t - s.end)))
        j = max(i + 1, int(np.searchsorted(res.t, s.end + window_s, side="right")))
        dx = res.direction * (res.xy[i:j, LM[f"{s.foot}_heel"], 0] - res.xy[i:j, LM[f"{other}_heel"], 0])
        if np.isfinite(dx).any():
            vals.append(float(np.nanmax(dx)) / res.leg_px)
    return vals


def _speed(res: ViewMeasurement, strides) -> float | None:
    x = res.extras.get("pelvis_forward_norm")
    if x is None or not strides:
        return None
    dist = dur = 0.0
    for s in strides:
        i, j = int(np.argmin(np.abs(res.t - s.start))), int(np.argmin(np.abs(res.t - s.end)))
        dist += x[j] - x[i]
        dur += res.t[j] - res.t[i]
    v = dist / dur if dur > 0 else None
    return v if v and v > 0 else None
