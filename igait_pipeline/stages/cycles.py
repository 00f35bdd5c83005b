"""Stage 5: gait events, steady strides, gait parameters and per-leg joint-angle curves, from keypoints.

The work is split by concern in `igait_pipeline.stages.gait`:

* `gait.settings` — every tuning parameter as a documented dataclass (`GaitSettings`), recorded in cycles.json;
* `gait.signals` — keypoints as arrays, gap filling, zero-phase Butterworth low-pass, period (scipy.signal);
* `gait.events` — Zeni heel strikes (heel) and toe-offs (ankle), alternation, strides, steady strides, steps
  (`measure_view`);
* `gait.parameters` — cadence, stride time and CV, step-time asymmetry, stance, speed, ... each with the number of
  steady strides/steps used, null with the reason below the minimum;
* `gait.kinematics` — hip/knee flexion (side), hip/knee ab/adduction (front) per leg as 101-point cycle curves,
  ROM and left/right symmetry;
* `gait.plot` — the figures, from the measurements already made.

This module runs them once per job (`measure_gait`) and assembles cycles.json; stage 6 reads only cycles.json.
No Dagster import here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igait_pipeline.schemas import Cycles, Keypoints, ParameterInfo
from igait_pipeline.stages.gait import kinematics as kin
from igait_pipeline.stages.gait.events import ViewMeasurement, measure_view
from igait_pipeline.stages.gait.parameters import METHODS, parameters
from igait_pipeline.stages.gait.plot import plot_curves, plot_events
from igait_pipeline.stages.gait.settings import DEFAULT, GaitSettings
from igait_pipeline.stages.gait.signals import CyclesError, leg_lengths, mid

__all__ = [
    "CyclesError",
    "GaitResult",
    "detect_cycles",
    "measure_gait",
    "measure_views",
    "plot_curves",
    "plot_events",
]


@dataclass
class GaitResult:
    cycles: Cycles
    views: dict[str, ViewMeasurement]

    def plots(self) -> dict[str, bytes]:
        """{"cycles.png": events of the view used, "curves.png": per-leg joint-angle curves}."""
        return {"cycles.png": plot_events(self.views[self.cycles.view_used], self.cycles),
                "curves.png": plot_curves(self.cycles)}


def measure_views(side: Keypoints, front: Keypoints | None,
                  settings: GaitSettings = DEFAULT) -> dict[str, ViewMeasurement]:
    """measure_view of each view given, keyed by view; checks the views are labelled as passed."""
    if side.view != "side":
        raise CyclesError(f"the side keypoints are labelled view {side.view!r}")
    if front is not None and front.view != "front":
        raise CyclesError(f"the front keypoints are labelled view {front.view!r}")
    out = {"side": measure_view(side, settings)}
    if front is not None:
        out["front"] = measure_view(front, settings)
    return out


def _quality(res: ViewMeasurement) -> dict:
    total = res.frames_total
    return {"frames_total": total, "frames_detected": res.frames_detected,
            "frames_visible": res.frames_visible, "frames_used": res.frames_used,
            "visible_ratio": round(res.frames_visible / total, 4) if total else 0.0,
            "used_ratio": round(res.frames_used / total, 4) if total else 0.0,
            "segments": [[round(float(res.t[s]), 4), round(float(res.t[e - 1]), 4)] for s, e in res.segments],
            "direction": res.direction_label,
            "leg_length_px": round(res.leg_px, 2) if res.leg_px == res.leg_px else None,
            "period_s": round(res.period_s, 4) if res.period_s else None,
            "strides": len(res.strides), "steady_strides": len(res.steady_strides), "steps": len(res.steps),
            "steady_steps": len(res.steady_steps),
            "alternation_breaks": res.extras.get("alternation_breaks", 0),
            "events_dropped_for_order": res.extras.get("events_dropped_for_order", 0),
            **({"scale_change": round(res.extras["scale_change"], 4)} if "scale_change" in res.extras else {}),
            **({"median_stride_approach_speed": res.extras.get("median_stride_approach_speed"),
                "heel_strike_landmark": res.extras.get("front_heel_strike_landmark")}
               if res.view == "front" and "scale_change" in res.extras else {}),
            "reasons": list(res.reasons), "warnings": list(res.warnings)}


def _proportion(res: ViewMeasurement, settings: GaitSettings) -> float | None:
    """Leg over trunk length (2-D), ConsistencySettings.proportion_percentile over the steady strides' frames."""
    if res.xy is None or not res.steady_strides:
        return None
    span = np.zeros(len(res.t), bool)
    for st in res.steady_strides:
        span |= (res.t >= st.start) & (res.t <= st.end)
    trunk = np.linalg.norm(mid(res.xy, "left_shoulder", "right_shoulder") - mid(res.xy, "left_hip", "right_hip"),
                           axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = leg_lengths(res.xy) / trunk
    sel = res.used & span & np.isfinite(q)
    return float(np.percentile(q[sel], settings.consistency.proportion_percentile)) if sel.sum() >= 5 else None


def cross_view(views: dict[str, ViewMeasurement], settings: GaitSettings) -> dict:
    """cycles.json `quality.cross_view`: what both views measure of the walker (mean steady stride time, cadence,
    leg-to-trunk proportion), compared with ConsistencySettings' tolerances. `ok` is True when compared and
    consistent, False when they differ or could not be compared (`reason`); `warnings` name both values."""
    cs, need = settings.consistency, settings.strides.min_steady_strides
    side, front = views.get("side"), views.get("front")
    out: dict = {"ok": False, "warnings": [], "reason": None,
                 "tolerances": {"stride_time": cs.stride_time_tolerance, "proportion": cs.proportion_tolerance}}
    missing = [f"{v} view: {'not given' if m is None else f'{len(m.steady_strides)} steady stride(s)'}"
               for v, m in (("side", side), ("front", front))
               if m is None or len(m.steady_strides) < need or (v == "front" and m.extras.get("sideways"))]
    if missing:
        out["reason"] = (f"not compared (each view needs at least {need} steady strides of the walker): "
                         + "; ".join(missing))
        return out
    stride = {v: float(np.mean([s.duration for s in m.steady_strides])) for v, m in views.items()}
    diff = max(stride.values()) / min(stride.values()) - 1
    out["stride_time_s"] = {"side": round(stride["side"], 4), "front": round(stride["front"], 4),
                            "difference": round(diff, 4), "ok": diff <= cs.stride_time_tolerance}
    out["cadence_spm"] = {v: round(120 / x, 2) for v, x in stride.items()}
    if not out["stride_time_s"]["ok"]:
        out["warnings"].append(
            f"cross-view: mean steady stride time {stride['side']:.3f} s in the side view vs {stride['front']:.3f} s "
            f"in the front view (cadence {120 / stride['side']:.1f} vs {120 / stride['front']:.1f} steps/min), "
            f"{diff:.0%} apart (at most {cs.stride_time_tolerance:.0%}): the two videos may show different people")
    prop = {v: _proportion(m, settings) for v, m in views.items()}
    if None not in prop.values():
        pd = max(prop.values()) / min(prop.values()) - 1
        out["leg_to_trunk"] = {"side": round(prop["side"], 3), "front": round(prop["front"], 3),
                               "difference": round(pd, 4), "ok": pd <= cs.proportion_tolerance}
        if not out["leg_to_trunk"]["ok"]:
            out["warnings"].append(
                f"cross-view: leg-to-trunk length {prop['side']:.2f} in the side view vs {prop['front']:.2f} in the "
                f"front view, {pd:.0%} apart (at most {cs.proportion_tolerance:.0%}): the two videos may show "
                f"different people")
    else:
        out["leg_to_trunk"] = {"side": prop["side"], "front": prop["front"], "ok": None,
                               "reason": "not measured in both views (too few steady frames)"}
    out["ok"] = not out["warnings"]
    return out


def _flags(used: ViewMeasurement, views: dict[str, ViewMeasurement], settings: GaitSettings,
           cv: dict) -> list[dict]:
    """Quality flags a later stage can act on (stage 6 abstains when one it depends on fails)."""
    front = views.get("front")
    n = len(used.steady_strides)
    flags = [
        {"name": "side_view_used", "ok": used.view == "side",
         "detail": "event times from the side view" if used.view == "side" else
         "side view unusable; front-view heel strikes are approximate (later than the true strike)"},
        {"name": "steady_strides", "ok": n >= settings.strides.min_steady_strides,
         "detail": f"{n} steady strides (at least {settings.strides.min_steady_strides} needed)"},
    ]
    if front is None:
        flags.append({"name": "front_view_usable", "ok": False, "detail": "no front view given"})
    elif front.extras.get("sideways"):
        flags.append({"name": "front_view_usable", "ok": False,
                      "detail": "the walker crosses the front video sideways: a side view in the front slot?"})
    elif not front.used.any():
        flags.append({"name": "front_view_usable", "ok": False, "detail": "; ".join(front.reasons)})
    elif len(front.steady_strides) < settings.strides.min_steady_strides:
        flags.append({"name": "front_view_usable", "ok": False,
                      "detail": f"{len(front.steady_strides)} steady strides of the walker's approach in the front "
                                f"view (at least {settings.strides.min_steady_strides} needed; "
                                f"{len(front.strides) - len(front.steady_strides)} excluded)"})
    else:
        flags.append({"name": "front_view_usable", "ok": True,
                      "detail": f"{front.frames_used} frames used, {len(front.steady_strides)} steady strides "
                                f"({front.direction_label.replace('_', ' ')})"})
    flags.append({"name": "views_consistent", "ok": cv["ok"],
                  "detail": "; ".join(cv["warnings"]) or cv["reason"] or
                  f"the views agree: mean stride time {cv['stride_time_s']['side']:.3f} s (side) vs "
                  f"{cv['stride_time_s']['front']:.3f} s (front)"})
    return flags


def measure_gait(side: Keypoints, front: Keypoints | None, job_id: str,
                 settings: GaitSettings = DEFAULT) -> GaitResult:
    """Stage 5, once per job: both views measured, cycles.json assembled (the side view first, the front view as
    fallback for the events). Raises CyclesError (with the cause; the caller adds the job ID) when neither view
    yields `min_strides` strides."""
    views = measure_views(side, front, settings)
    s, f = views["side"], views.get("front")
    need = settings.strides.min_strides
    if len(s.strides) >= need:
        used, reasons = s, []
    elif f is not None and len(f.strides) >= need:
        used = f
        reasons = [f"side view gave {len(s.strides)} stride(s) (fewer than {need}): front view used; its heel-strike "
                   f"times are approximate (later than the true strike), stride times are not"]
    else:
        causes = [f"side view: {len(s.strides)} stride(s)" + (f" ({'; '.join(s.reasons)})" if s.reasons else "")]
        if f is not None:
            causes.append(f"front view: {len(f.strides)} stride(s)" +
                          (f" ({'; '.join(f.reasons)})" if f.reasons else ""))
        else:
            causes.append("no front view given")
        raise CyclesError(f"too few gait cycles: at least {need} strides are needed; " + "; ".join(causes))
    details = parameters(used, f, settings)
    qviews = {v: _quality(m) for v, m in views.items()}
    if f is not None:
        qviews["front"].update(heel_strikes=f.heel_strikes, stride_list=[x.model_dump() for x in f.strides])
    cv = cross_view(views, settings)
    quality = {"view_used": used.view, **_quality(used), "reasons": reasons + used.reasons,
               "warnings": s.warnings + (f.warnings if f is not None else []) + cv["warnings"], "views": qviews,
               "cross_view": cv, "flags": _flags(used, views, settings, cv)}
    cycles = Cycles(
        job_id=job_id, view_used=used.view, fps=used.fps, heel_strikes=used.heel_strikes, toe_offs=used.toe_offs,
        strides=used.steady_strides, excluded_strides=[x for x in used.strides if not x.steady],
        parameters={k: v["value"] for k, v in details.items()},
        parameter_details={k: ParameterInfo(**v) for k, v in details.items()}, methods=dict(METHODS),
        kinematics=kin.kinematics(views, settings), settings=settings.as_record(), quality=quality)
    return GaitResult(cycles, views)


def detect_cycles(side: Keypoints, front: Keypoints | None, job_id: str,
                  settings: GaitSettings = DEFAULT) -> Cycles:
    """cycles.json of a job (measure_gait without the measurements)."""
    return measure_gait(side, front, job_id, settings).cycles
