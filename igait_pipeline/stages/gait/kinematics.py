"""Joint angles per leg, cut into gait cycles and averaged: what stage 6 reads from cycles.json (it never sees
keypoints). No Dagster import here.

Angles (2-D, image pixels, degrees):

* side hip flexion (+) / extension (−): angle of the thigh (hip → knee) relative to the trunk's downward line
  (mid-shoulder → mid-hip), positive when the knee is ahead of that line in the walking direction.
* side knee flexion (+): angle between the thigh's and the shank's (knee → ankle) directions, positive when the
  shank points behind the thigh's line; 0 = straight leg.
* front hip abduction (+) / adduction (−): angle of the thigh from the pelvis' downward perpendicular (the
  perpendicular to the right-hip → left-hip line), positive when the knee lies lateral (away from the midline).
* front knee abduction (+, valgus-like) / adduction (−, varus-like): the shank's lateral angle minus the thigh's.

Front view: only the steady approach counts (FrontSettings: steady approach speed, not cut by the frame edge); with
fewer than StrideSettings.min_steady_strides steady strides the front curves are null with the reason. Each curve
records its `view` and the view's `steady_strides`.

Each series is low-passed (KinematicsSettings.lowpass_hz, zero phase), cut at that leg's own steady heel strikes
in its view (one cycle = heel strike to the next heel strike of the same foot), each cycle resampled to `points`
(101: 0, 1, ..., 100 %) and averaged. When a leg has no usable cycle of its own, the other leg's cycles shifted by
half a cycle are used, then windows of the stride period (the alignment is recorded). Range of motion (ROM) is
max − min of the mean curve; the symmetry index of a joint is 100 · (ROM_left − ROM_right) / mean(ROM_left,
ROM_right) (Robinson et al. 1987; signed: + = left moves more).
"""
from __future__ import annotations

import numpy as np

from igait_pipeline.schemas import LM, Stride
from igait_pipeline.stages.gait.events import ViewMeasurement
from igait_pipeline.stages.gait.settings import (
    DEFAULT,
    GaitSettings,
    KinematicsSettings,
)
from igait_pipeline.stages.gait.signals import lowpass

JOINTS = {"side": ["side_hip_flexion", "side_knee_flexion"], "front": ["front_hip_abduction", "front_knee_abduction"]}
SERIES = [f"{j}_{s}" for view in ("side", "front") for j in JOINTS[view] for s in ("left", "right")]
OWN = "own heel strikes"


def _incl(v: np.ndarray, direction: int) -> np.ndarray:
    """Angle of image vectors (…, 2) from straight down towards the walking direction, degrees."""
    return np.degrees(np.arctan2(direction * v[..., 0], v[..., 1]))


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + 180.0) % 360.0 - 180.0


def side_angles(xy: np.ndarray, direction: int) -> dict[str, np.ndarray]:
    """Hip and knee flexion per leg from side-view pixel coordinates (n, 33, 2); NaN where a landmark is missing."""
    trunk = (xy[:, LM["left_hip"]] + xy[:, LM["right_hip"]]) / 2 - (
        xy[:, LM["left_shoulder"]] + xy[:, LM["right_shoulder"]]) / 2
    out = {}
    for s in ("left", "right"):
        thigh = xy[:, LM[f"{s}_knee"]] - xy[:, LM[f"{s}_hip"]]
        shank = xy[:, LM[f"{s}_ankle"]] - xy[:, LM[f"{s}_knee"]]
        out[f"side_hip_flexion_{s}"] = _wrap(_incl(thigh, direction) - _incl(trunk, direction))
        out[f"side_knee_flexion_{s}"] = _wrap(_incl(thigh, direction) - _incl(shank, direction))
    return out


def front_angles(xy: np.ndarray) -> dict[str, np.ndarray]:
    """Hip and knee abduction per leg from front-view pixel coordinates (n, 33, 2)."""
    u = xy[:, LM["left_hip"]] - xy[:, LM["right_hip"]]
    norm = np.linalg.norm(u, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(norm > 0, u / norm, np.nan)
    down = np.stack([-u[:, 1], u[:, 0]], axis=1)
    down = np.where(down[:, 1:2] < 0, -down, down)  # the perpendicular that points down the image
    out = {}
    for s, lat in (("left", u), ("right", -u)):
        thigh = xy[:, LM[f"{s}_knee"]] - xy[:, LM[f"{s}_hip"]]
        shank = xy[:, LM[f"{s}_ankle"]] - xy[:, LM[f"{s}_knee"]]

        def lateral(v):
            return np.degrees(np.arctan2((v * lat).sum(axis=1), (v * down).sum(axis=1)))

        out[f"front_hip_abduction_{s}"] = lateral(thigh)
        out[f"front_knee_abduction_{s}"] = _wrap(lateral(shank) - lateral(thigh))
    return out


def normalise_cycle(t: np.ndarray, y: np.ndarray, start: float, end: float,
                    ks: KinematicsSettings = DEFAULT.kinematics) -> np.ndarray | None:
    """y over [start, end] resampled to ks.points phases, or None when too little of it was measured."""
    sel = (t >= start) & (t <= end)
    n = int(sel.sum())
    ok = sel & np.isfinite(y)
    if n < 5 or ok.sum() < max(5, ks.min_coverage * n):
        return None
    tt, yy = t[ok], y[ok]
    slack = ks.end_slack * (end - start)  # the ends must be measured, or the curve would be extrapolated
    if tt[0] - start > slack or end - tt[-1] > slack:
        return None
    return np.interp(start + np.linspace(0.0, 1.0, ks.points) * (end - start), tt, yy)


def series_cycles(t: np.ndarray, y: np.ndarray, strides: list[Stride], foot: str, period_s: float | None,
                  used: np.ndarray, ks: KinematicsSettings = DEFAULT.kinematics) -> tuple[np.ndarray | None, str, str]:
    """(cycles array (k, points) or None, alignment, what was tried) for one series of one leg."""
    y = np.where(used, y, np.nan)
    other = "right" if foot == "left" else "left"
    attempts = [(OWN, [(s.start, s.end) for s in strides if s.foot == foot], 0),
                ("other foot's heel strikes, shifted half a cycle",
                 [(s.start, s.end) for s in strides if s.foot == other], (ks.points - 1) // 2)]
    if period_s:
        idx = np.flatnonzero(used)
        wins = []
        if len(idx):
            start = t[idx[0]]
            while start + period_s <= t[idx[-1]]:
                wins.append((start, start + period_s))
                start += period_s
        attempts.append(("stride period (not aligned to heel strikes)", wins, 0))
    tried = []
    for label, wins, shift in attempts:
        got = [c for c in (normalise_cycle(t, y, a, b, ks) for a, b in wins) if c is not None]
        tried.append(f"{label}: {len(got)}/{len(wins)} usable")
        if got:
            arr = np.array(got)
            if shift:  # half a cycle later the other foot strikes: roll so 0 % is this foot's heel strike
                arr = np.roll(arr[:, :-1], -shift, axis=1)
                arr = np.concatenate([arr, arr[:, :1]], axis=1)
            return arr, label, "; ".join(tried)
    return None, "", "; ".join(tried)


def _filtered(y: np.ndarray, res: ViewMeasurement, settings: GaitSettings) -> np.ndarray:
    out = np.full_like(y, np.nan)
    for s, e in res.segments:
        if np.isfinite(y[s:e]).all():
            out[s:e] = lowpass(y[s:e], res.fps, settings.kinematics.lowpass_hz, settings.signal.filter_order)
    return out


def _r(a) -> list:
    return np.round(np.asarray(a, dtype=float), 2).tolist()


def kinematics(views: dict[str, ViewMeasurement], settings: GaitSettings = DEFAULT) -> dict:
    """cycles.json `kinematics`: per series (SERIES) mean/SD curve, per-cycle curves, ROM, alignment, or null with
    the reason; per joint the left/right symmetry."""
    ks = settings.kinematics
    curves: dict[str, dict] = {}
    for view, joints in JOINTS.items():
        res = views.get(view)
        why = None
        if res is None:
            why = f"no {view} view given"
        elif not res.used.any() or res.xy is None:
            why = f"{view} view unusable: " + ("; ".join(res.reasons) or "no frames with both ankles visible")
        elif view == "front" and res.extras.get("sideways"):
            why = "front view unusable: the walker crosses the image sideways (a side view in the front slot?)"
        if why:
            for j in joints:
                for s in ("left", "right"):
                    curves[f"{j}_{s}"] = {"reason": why, "view": view}
            continue
        angles = side_angles(res.xy, res.direction) if view == "side" else front_angles(res.xy)
        strides = res.steady_strides or res.strides
        used = res.used
        if view == "front":
            # Only the steady approach: no cycles from standing, gait initiation, the turn or strides cut by the
            # frame edge, and none at all below the minimum of steady strides.
            strides = res.steady_strides
            need = settings.strides.min_steady_strides
            if len(strides) < need:
                for name in angles:
                    curves[name] = {"reason": f"front view: {len(strides)} steady stride(s) of the approach (at "
                                              f"least {need} needed; {len(res.strides) - len(strides)} excluded: "
                                              f"not steady or cut by the frame edge)", "view": view}
                continue
            span = np.zeros(len(res.t), bool)
            for st in strides:
                span |= (res.t >= st.start) & (res.t <= st.end)
            used = used & span
        for name, y in angles.items():
            y = _filtered(y, res, settings)
            foot = "left" if name.endswith("_left") else "right"
            arr, how, tried = series_cycles(res.t, y, strides, foot, res.period_s, used, ks)
            if arr is None:
                curves[name] = {"reason": f"{view} view: joint angle {name} has no usable gait cycle ({tried})",
                                "view": view}
                continue
            mean = arr.mean(axis=0)
            curves[name] = {"mean": _r(mean), "sd": _r(arr.std(axis=0)), "cycles": [_r(c) for c in arr],
                            "n_cycles": len(arr), "rom_deg": round(float(mean.max() - mean.min()), 2),
                            "alignment": how, "steady": bool(res.steady_strides), "tried": tried, "view": view,
                            "steady_strides": len(res.steady_strides)}
    symmetry = {}
    for view, joints in JOINTS.items():
        for j in joints:
            left, right = curves[f"{j}_left"], curves[f"{j}_right"]
            if "mean" not in left or "mean" not in right:
                symmetry[j] = {"rom_symmetry_index_pct": None, "curve_rms_difference_deg": None,
                               "reason": left.get("reason") or right.get("reason"), "view": view}
                continue
            rl, rr = left["rom_deg"], right["rom_deg"]
            si = 100 * (rl - rr) / (0.5 * (rl + rr)) if rl + rr > 0 else None
            rms = float(np.sqrt(np.mean((np.array(left["mean"]) - np.array(right["mean"])) ** 2)))
            symmetry[j] = {"rom_left_deg": rl, "rom_right_deg": rr,
                           "rom_symmetry_index_pct": None if si is None else round(si, 2),
                           "curve_rms_difference_deg": round(rms, 2), "reason": None, "view": view,
                           "n_cycles_left": left["n_cycles"], "n_cycles_right": right["n_cycles"]}
    return {"points": ks.points, "curves": curves, "symmetry": symmetry,
            "definition": "mean over steady gait cycles of each leg, 0 % = that foot's heel strike; ROM = max − min "
                          "of the mean curve; symmetry index = 100·(ROM_L − ROM_R)/mean(ROM_L, ROM_R)"}
