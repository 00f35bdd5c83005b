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

Only steady walking counts, in both views (side: not gait initiation or termination; front: a steady approach;
neither cut by the frame edge); with fewer than StrideSettings.min_steady_strides steady strides a view's curves are
null with the reason. Each curve records its `view` and the view's `steady_strides`.

Each series is low-passed (KinematicsSettings.lowpass_hz, zero phase), cut at that leg's own steady heel strikes
in its view (one cycle = heel strike to the next heel strike of the same foot), each cycle resampled to `points`
(101: 0, 1, ..., 100 %) and averaged. When a leg has no usable cycle of its own, the other leg's steady cycles
shifted by half a cycle are used, then windows of the stride period inside the steady strides (the alignment is
recorded). A joint's curves, ROMs and symmetry index need KinematicsSettings.min_steady_cycles_per_leg cycles of
each leg; with fewer on either leg they are null with the reason naming both counts. Range of motion (ROM) is
max − min of the mean curve; the symmetry index of a joint is 100 · (ROM_left − ROM_right) / mean(ROM_left,
ROM_right) (Robinson et al. 1987; signed: + = left moves more).

Front view, where the 2-D projection measures ab/adduction (FrontAngleSettings): a frame counts for a leg when its
shank tilts at most ~30° out of the image plane and its thigh and shank tilts differ by at most ~20° (a knee-flexion
proxy), both from the segments' foreshortening; in swing, knee flexion about an axis not exactly perpendicular to
the camera shows up as apparent ab/adduction. The front ROM is taken over the phases valid in at least half of the
cycles (`valid`, per point; `valid_share`; `rom_full_cycle_deg` is the whole cycle's, cross-talk included) and must
lie within the joint's plausibility bound (`bound_deg`, sources in the settings' docstrings); otherwise the leg's
curve is null with the reason, so it is never a model input.
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


def _null_view(curves: dict, names, view: str, why: str) -> None:
    for name in names:
        curves[name] = {"reason": why, "view": view}


def front_validity(res: ViewMeasurement, used: np.ndarray, settings: GaitSettings) -> dict[str, np.ndarray]:
    """Per leg and frame, 1.0 where the front view measures that leg's ab/adduction, 0.0 where it does not, NaN where
    unknown. A segment tilted out of the image plane by θ appears cos θ of its full length (its
    FrontAngleSettings.reference_percentile over the steady approach, in the walker's current leg lengths); a frame
    is valid when the shank tilts at most `max_shank_tilt_deg` and thigh and shank tilts differ by at most
    `max_knee_flexion_deg` (a proxy of knee flexion)."""
    fa = settings.front_angles
    size = res.extras.get("size_px")
    out = {}
    for s in ("left", "right"):
        tilt = {}
        for seg, (a, b) in {"thigh": ("hip", "knee"), "shank": ("knee", "ankle")}.items():
            px = np.linalg.norm(res.xy[:, LM[f"{s}_{b}"]] - res.xy[:, LM[f"{s}_{a}"]], axis=1)
            ratio = _filtered(px / size if size is not None else px, res, settings)
            ok = used & np.isfinite(ratio)
            full = float(np.percentile(ratio[ok], fa.reference_percentile)) if ok.any() else np.nan
            tilt[seg] = np.degrees(np.arccos(np.clip(ratio / full, 0.0, 1.0)))
        valid = (tilt["shank"] <= fa.max_shank_tilt_deg) & (np.abs(tilt["thigh"] - tilt["shank"])
                                                              <= fa.max_knee_flexion_deg)
        out[s] = np.where(np.isfinite(tilt["shank"] + tilt["thigh"]), valid.astype(float), np.nan)
    return out


def _front_checked(name: str, rec: dict, valid: np.ndarray | None, settings: GaitSettings) -> dict:
    """A front curve's ROM over its valid phases and the plausibility bound: the record with `rom_deg` from the
    valid phases, or a null record with the reason."""
    fa = settings.front_angles
    joint = "knee" if "_knee_" in name else "hip"
    bound = fa.knee_rom_max_deg if joint == "knee" else fa.hip_rom_max_deg
    what = f"front view: the {name.rsplit('_', 1)[1]} {joint}'s ab/adduction"
    if valid is None:
        return {"reason": f"{what}: validity of the 2-D projection unknown", "view": "front"}
    share = valid.mean(axis=0)
    ok = share >= 0.5
    mean = np.array(rec["mean"])
    full = rec["rom_deg"]
    base = {"view": "front", "n_cycles": rec["n_cycles"], "rom_full_cycle_deg": full, "bound_deg": bound,
            "valid_share": round(float(ok.mean()), 3)}
    if ok.mean() < fa.min_valid_share:
        return {**base, "reason": f"{what}: the 2-D projection is valid (knee nearly straight, shank near the "
                                  f"image plane) in only {ok.mean():.0%} of the cycle (at least "
                                  f"{fa.min_valid_share:.0%} needed)"}
    rom = round(float(mean[ok].max() - mean[ok].min()), 2)
    if rom > bound:
        return {**base, "rom_valid_phases_deg": rom,
                "reason": f"{what} moves {rom:.1f}° over the phases where the 2-D projection is valid "
                          f"({ok.mean():.0%} of the cycle), more than the plausible {bound:g}° "
                          f"(FrontAngleSettings.{joint}_rom_max_deg): the video does not measure the joint here"}
    return {**rec, "rom_deg": rom, "rom_full_cycle_deg": full, "bound_deg": bound,
            "valid_share": round(float(ok.mean()), 3), "valid": _r(share),
            "rom_basis": "phases valid in at least half of the cycles (knee nearly straight, shank near the image "
                         "plane: stance); rom_full_cycle_deg is the 2-D projection over the whole cycle, swing "
                         "included (knee-flexion cross-talk)"}


def kinematics(views: dict[str, ViewMeasurement], settings: GaitSettings = DEFAULT) -> dict:
    """cycles.json `kinematics`: per series (SERIES) mean/SD curve, per-cycle curves, ROM, alignment, or null with
    the reason; per joint the left/right symmetry. Only steady strides give cycles; a joint needs
    KinematicsSettings.min_steady_cycles_per_leg cycles of each leg; front ROMs come from the valid phases and
    must lie within FrontAngleSettings' bounds."""
    ks = settings.kinematics
    curves: dict[str, dict] = {}
    for view, joints in JOINTS.items():
        names = [f"{j}_{s}" for j in joints for s in ("left", "right")]
        res = views.get(view)
        why = None
        if res is None:
            why = f"no {view} view given"
        elif not res.used.any() or res.xy is None:
            why = f"{view} view unusable: " + ("; ".join(res.reasons) or "no frames with both ankles visible")
        elif view == "front" and res.extras.get("sideways"):
            why = "front view unusable: the walker crosses the image sideways (a side view in the front slot?)"
        if why:
            _null_view(curves, names, view, why)
            continue
        angles = side_angles(res.xy, res.direction) if view == "side" else front_angles(res.xy)
        # Only steady walking: no cycles from standing, gait initiation or termination, the turn or strides cut
        # by the frame edge, and none at all below the minimum of steady strides.
        strides = res.steady_strides
        need = settings.strides.min_steady_strides
        if len(strides) < need:
            what = "of the approach " if view == "front" else ""
            _null_view(curves, names, view, f"{view} view: {len(strides)} steady stride(s) {what}(at least {need} "
                                            f"needed; {len(res.strides) - len(strides)} excluded: not steady or "
                                            f"cut by the frame edge)")
            continue
        span = np.zeros(len(res.t), bool)
        for st in strides:
            span |= (res.t >= st.start) & (res.t <= st.end)
        used = res.used & span
        validity = front_validity(res, used, settings) if view == "front" else {}
        got: dict[str, tuple] = {}
        for name, y in angles.items():
            y = _filtered(y, res, settings)
            foot = "left" if name.endswith("_left") else "right"
            arr, how, tried = series_cycles(res.t, y, strides, foot, res.period_s, used, ks)
            valid = None
            if arr is not None and foot in validity:
                mask = np.where(np.isfinite(y), validity[foot], np.nan)
                valid, _, _ = series_cycles(res.t, mask, strides, foot, res.period_s, used, ks)
            got[name] = (arr, how, tried, valid)
        for j in joints:
            counts = {s: (0 if got[f"{j}_{s}"][0] is None else len(got[f"{j}_{s}"][0])) for s in ("left", "right")}
            for s in ("left", "right"):
                name = f"{j}_{s}"
                arr, how, tried, valid = got[name]
                if arr is None:
                    curves[name] = {"reason": f"{view} view: joint angle {name} has no usable steady gait cycle "
                                              f"({tried})", "view": view, "n_cycles": 0}
                    continue
                if min(counts.values()) < ks.min_steady_cycles_per_leg:
                    curves[name] = {"reason": f"{view} view: {counts['left']} left / {counts['right']} right steady "
                                              f"cycle(s) of {j} (at least {ks.min_steady_cycles_per_leg} per leg "
                                              f"needed for curves, ROM and symmetry)",
                                    "view": view, "n_cycles": len(arr)}
                    continue
                mean = arr.mean(axis=0)
                rec = {"mean": _r(mean), "sd": _r(arr.std(axis=0)), "cycles": [_r(c) for c in arr],
                       "n_cycles": len(arr), "rom_deg": round(float(mean.max() - mean.min()), 2),
                       "alignment": how, "steady": True, "tried": tried, "view": view,
                       "steady_strides": len(res.steady_strides)}
                curves[name] = _front_checked(name, rec, valid, settings) if view == "front" else rec
    symmetry = {}
    for view, joints in JOINTS.items():
        for j in joints:
            left, right = curves[f"{j}_left"], curves[f"{j}_right"]
            if "mean" not in left or "mean" not in right:
                symmetry[j] = {"rom_symmetry_index_pct": None, "curve_rms_difference_deg": None,
                               "reason": left.get("reason") or right.get("reason"), "view": view}
                continue
            rl, rr = left["rom_deg"], right["rom_deg"]
            small = (rl + rr) / 2 < ks.min_rom_for_symmetry_deg
            si = 100 * (rl - rr) / (0.5 * (rl + rr)) if not small else None
            rms = float(np.sqrt(np.mean((np.array(left["mean"]) - np.array(right["mean"])) ** 2)))
            symmetry[j] = {"rom_left_deg": rl, "rom_right_deg": rr,
                           "rom_symmetry_index_pct": None if si is None else round(si, 2),
                           "curve_rms_difference_deg": round(rms, 2), "view": view,
                           "reason": (f"{view} view: ranges of motion {rl:.1f}° / {rr:.1f}° (mean under "
                                      f"{ks.min_rom_for_symmetry_deg:g}°): a symmetry index of ranges this small "
                                      f"measures the noise") if small else None,
                           "n_cycles_left": left["n_cycles"], "n_cycles_right": right["n_cycles"]}
    return {"points": ks.points, "curves": curves, "symmetry": symmetry,
            "min_steady_cycles_per_leg": ks.min_steady_cycles_per_leg,
            "definition": "mean over steady gait cycles of each leg, 0 % = that foot's heel strike; ROM = max − min "
                          "of the mean curve (front view: over the phases where the 2-D projection is valid); "
                          "symmetry index = 100·(ROM_L − ROM_R)/mean(ROM_L, ROM_R); curves, ROM and symmetry need "
                          f"at least {ks.min_steady_cycles_per_leg} steady cycles of each leg"}
