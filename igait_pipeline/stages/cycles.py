"""Stage 5: gait events, strides and gait parameters from keypoints.

Method (Zeni et al. 2008, "Two simple methods for determining gait events during treadmill and overground
walking using kinematic data", adapted to 2-D video):

* Side view. With the walking direction as +x, the horizontal position of each heel relative to the pelvis
  (mid-hip) peaks at heel strike (the foot is furthest ahead) and the toe (`foot_index`) relative to the pelvis
  reaches its minimum at toe-off (the foot is furthest behind). Signals are in leg lengths (hip–knee–ankle, median
  over the frames used) so thresholds do not depend on the image size.
* Front view (support / fallback). A walker approaching the camera: the foot in front is nearer the camera and,
  with the camera above the ground, lower in the image; so the height difference between the two heels in the
  image, in current leg lengths (the walker grows as they approach), peaks around heel strike. On simulated walkers
  these front-view events come ~0.1-0.15 s late (the other foot lifting for its swing keeps the difference
  growing), by a near-constant share of the cycle, so stride times are right but event times are approximate.
  Toe-offs are not taken from the front view. The front view also gives the base of support (horizontal ankle
  separation relative to hip separation).

Only frames with a detected person and both ankles visible (visibility > 0.5) are used: the child may leave the
frame at the ends, and frames without landmarks are gaps. Gaps up to MAX_GAP_S are bridged by linear
interpolation; longer gaps split the recording into segments, and a stride never spans a gap. Signals are
smoothed with a Gaussian (sigma SMOOTH_S) and events are local extremes with a minimum prominence and distance
(from the signal's own period, by autocorrelation).

No Dagster import here.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from igait_pipeline.schemas import LM, Cycles, Keypoints, Stride

VISIBLE = 0.5  # a landmark counts as seen above this visibility
MIN_STRIDES = 2  # fewer strides than this (both feet together) and the job cannot be analysed
MAX_GAP_S = 0.12  # gaps up to this long are interpolated over; longer ones split segments
MIN_SEGMENT_S = 0.6  # shorter runs of usable frames are ignored
SMOOTH_S = 0.04  # Gaussian sigma of the smoothing, seconds
MIN_PEAK_DISTANCE_S = 0.3  # two heel strikes of one foot are at least this far apart (cadence < 400 spm)
PROMINENCE = 0.3  # a gait event stands out from its surroundings by this share of the signal's 5–95 % range
STRIDE_LIMITS_S = (0.4, 2.5)  # plausible stride times
MISSED_EVENT_RATIO = 1.6  # a stride this much longer than the median one hides a missed heel strike
FEET = ("left", "right")


class CyclesError(ValueError):
    """Gait cycles cannot be measured (too few strides, no usable frames, ...); the message says why."""


# ---------- keypoints as arrays ----------
@dataclass
class Arrays:
    """Landmarks of one view in pixels: t (n,), xy (n, 33, 2) with NaN where no person was detected, vis (n, 33)."""

    t: np.ndarray
    xy: np.ndarray
    vis: np.ndarray
    fps: float
    width: int
    height: int


def arrays(kp: Keypoints) -> Arrays:
    n = len(kp.frames)
    if n == 0:
        raise CyclesError(f"{kp.view} view: the keypoints file has no frames")
    if kp.fps <= 0:
        raise CyclesError(f"{kp.view} view: frame rate {kp.fps} is not usable")
    t = np.array([f.t for f in kp.frames], dtype=float)
    lm = np.full((n, 33, 4), np.nan)
    have = [i for i, f in enumerate(kp.frames) if f.landmarks is not None]
    if have:
        try:
            lm[have] = np.array([kp.frames[i].landmarks for i in have], dtype=float)
        except ValueError:
            bad = next(f for f in kp.frames if f.landmarks is not None and np.shape(f.landmarks) != (33, 4))
            raise CyclesError(f"{kp.view} view, frame {bad.index}: landmarks have shape "
                              f"{np.shape(bad.landmarks)}, not (33, 4)") from None
    if np.any(np.diff(t) <= 0):
        order = np.argsort(t, kind="stable")
        t, lm = t[order], lm[order]
    xy = lm[:, :, :2] * np.array([kp.width, kp.height], dtype=float)
    vis = np.nan_to_num(lm[:, :, 3], nan=0.0)
    return Arrays(t, xy, vis, float(kp.fps), kp.width, kp.height)


def _mid(xy: np.ndarray, a: str, b: str) -> np.ndarray:
    return (xy[:, LM[a]] + xy[:, LM[b]]) / 2


def leg_lengths(xy: np.ndarray) -> np.ndarray:
    """Per frame: mean over both legs of hip–knee plus knee–ankle distance, pixels."""
    out = []
    for s in FEET:
        hip, knee, ankle = xy[:, LM[f"{s}_hip"]], xy[:, LM[f"{s}_knee"]], xy[:, LM[f"{s}_ankle"]]
        out.append(np.linalg.norm(knee - hip, axis=1) + np.linalg.norm(ankle - knee, axis=1))
    return (out[0] + out[1]) / 2


# ---------- 1-D helpers ----------
def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where mask is true."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def fill_gaps(x: np.ndarray, ok: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate x (n, ...) across runs of not-ok frames of at most max_gap frames between ok frames.

    Returns the filled copy and the new ok mask.
    """
    x, ok = x.copy(), ok.copy()
    for a, b in runs(~ok):
        if a == 0 or b == len(ok) or b - a > max_gap:
            continue
        w = (np.arange(a, b) - (a - 1)) / (b - (a - 1))
        w = w.reshape((-1,) + (1,) * (x.ndim - 1))
        x[a:b] = x[a - 1] * (1 - w) + x[b] * w
        ok[a:b] = True
    return x, ok


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter of a finite 1-D array along axis 0, mirrored at the ends."""
    if sigma <= 0 or len(x) < 3:
        return x.copy()
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    r = min(r, len(x) - 1)
    k = k[len(k) // 2 - r: len(k) // 2 + r + 1]
    k /= k.sum()
    pad = np.concatenate([x[r:0:-1], x, x[-2:-r - 2:-1]]) if r > 0 else x
    return np.convolve(pad, k, mode="valid")


def find_peaks(x: np.ndarray, min_distance: int, min_prominence: float, edge: int = 2) -> list[int]:
    """Indices of local maxima of x with prominence >= min_prominence, at least min_distance apart (the higher
    peak wins), not within `edge` samples of either end (an extreme at the edge of the data is not an event)."""
    n = len(x)
    if n < 2 * edge + 3:
        return []
    cand = [i for i in range(max(1, edge), n - max(1, edge))
            if x[i] >= x[i - 1] and x[i] > x[i + 1]]
    good = []
    for i in cand:
        left = x[:i][::-1]
        higher = np.flatnonzero(left > x[i])
        lmin = left[: higher[0]].min() if len(higher) else left.min()
        right = x[i + 1:]
        higher = np.flatnonzero(right > x[i])
        rmin = right[: higher[0]].min() if len(higher) else right.min()
        if x[i] - max(lmin, rmin) >= min_prominence:
            good.append(i)
    keep: list[int] = []
    for i in sorted(good, key=lambda j: -x[j]):
        if all(abs(i - j) >= min_distance for j in keep):
            keep.append(i)
    return sorted(keep)


def refine(x: np.ndarray, i: int) -> float:
    """Sub-sample position of the extreme at i by a parabola through its neighbours."""
    if 0 < i < len(x) - 1:
        den = x[i - 1] - 2 * x[i] + x[i + 1]
        if den != 0:
            return i + float(np.clip(0.5 * (x[i - 1] - x[i + 1]) / den, -0.5, 0.5))
    return float(i)


def period(x: np.ndarray, fps: float, lo_s: float = 0.45, hi_s: float = 2.5) -> Optional[float]:
    """The signal's dominant period in seconds (first strong autocorrelation peak), or None."""
    x = x - x.mean()
    n = len(x)
    lo, hi = int(lo_s * fps), min(int(hi_s * fps), int(n * 0.7))
    if hi <= lo + 2 or not np.any(x):
        return None
    ac = np.array([np.dot(x[:n - k], x[k:]) / (n - k) for k in range(hi + 1)]) / (np.dot(x, x) / n)
    for k in range(lo + 1, hi):
        if ac[k] >= ac[k - 1] and ac[k] > ac[k + 1] and ac[k] > 0.3:
            return k / fps
    return None


# ---------- one view ----------
@dataclass
class ViewAnalysis:
    """Everything measured on one view. Times are seconds on the keypoints' clock."""

    view: str
    fps: float
    t: np.ndarray
    used: np.ndarray  # frames inside a usable segment (after bridging short gaps)
    segments: list[tuple[int, int]]
    direction: int  # +1: walking direction is +x (side) / towards the camera (front)
    direction_label: str
    leg_px: float
    heel: dict[str, np.ndarray]  # Zeni heel-strike signal per foot, smoothed, NaN outside segments
    toe: dict[str, np.ndarray]  # Zeni toe-off signal per foot (side view only)
    heel_strikes: dict[str, list[float]] = field(default_factory=dict)
    toe_offs: dict[str, list[float]] = field(default_factory=dict)
    strides: list[Stride] = field(default_factory=list)
    steps: list[tuple[str, float, float]] = field(default_factory=list)  # (foot that lands, start, end)
    frames_total: int = 0
    frames_detected: int = 0
    frames_visible: int = 0
    period_s: Optional[float] = None
    extras: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    raw: Optional[Arrays] = None  # the view's landmarks in pixels, as read (gaps not bridged)

    @property
    def frames_used(self) -> int:
        return int(self.used.sum())


def _direction_side(a: Arrays, ok: np.ndarray, leg: float) -> tuple[int, str, list[str]]:
    pel = _mid(a.xy, "left_hip", "right_hip")[ok, 0]
    t = a.t[ok]
    slope = np.polyfit(t, pel, 1)[0]
    travel = slope * (t[-1] - t[0])
    if abs(travel) >= leg:
        d = 1 if slope > 0 else -1
        return d, "left_to_right" if d > 0 else "right_to_left", []
    # Little travel (treadmill, or the walker hardly moves): the nose points the way the walker faces.
    face = a.xy[ok, LM["nose"], 0] - _mid(a.xy, "left_ear", "right_ear")[ok, 0]
    face = face[np.isfinite(face)]
    d = 1 if (np.median(face) if len(face) else slope) > 0 else -1
    return d, "left_to_right" if d > 0 else "right_to_left", [
        f"side view: the pelvis travels only {abs(travel) / leg:.1f} leg lengths; walking direction taken from "
        f"where the face points"]


def analyse_view(kp: Keypoints) -> ViewAnalysis:
    """Gait events and strides of one view (side: Zeni heel/toe vs pelvis; front: heel height difference)."""
    a = arrays(kp)
    n = len(a.t)
    detected = np.isfinite(a.xy[:, LM["left_hip"], 0]) & np.isfinite(a.xy[:, LM["right_hip"], 0])
    visible = detected & (a.vis[:, LM["left_ankle"]] > VISIBLE) & (a.vis[:, LM["right_ankle"]] > VISIBLE)
    visible &= np.isfinite(a.xy).all(axis=(1, 2))
    empty = ViewAnalysis(kp.view, a.fps, a.t, np.zeros(n, bool), [], 1, "unknown", float("nan"),
                         {f: np.full(n, np.nan) for f in FEET}, {f: np.full(n, np.nan) for f in FEET},
                         {f: [] for f in FEET}, {f: [] for f in FEET},
                         frames_total=n, frames_detected=int(detected.sum()), frames_visible=int(visible.sum()),
                         raw=a)
    if visible.sum() < MIN_SEGMENT_S * a.fps:
        empty.reasons.append(f"{kp.view} view: both ankles are visible in only {int(visible.sum())} of {n} frames "
                             f"(person detected in {int(detected.sum())})")
        return empty
    xy, used = fill_gaps(np.where(visible[:, None, None], a.xy, 0.0), visible, int(round(MAX_GAP_S * a.fps)))
    segments = [(s, e) for s, e in runs(used) if e - s >= MIN_SEGMENT_S * a.fps]
    used = np.zeros(n, bool)
    for s, e in segments:
        used[s:e] = True
    xy = np.where(used[:, None, None], xy, np.nan)
    if not segments:
        empty.reasons.append(f"{kp.view} view: no stretch of at least {MIN_SEGMENT_S} s with both ankles visible")
        return empty
    legs = leg_lengths(xy)
    leg = float(np.nanmedian(legs[used]))
    if not leg > 0:
        empty.reasons.append(f"{kp.view} view: leg length could not be measured")
        return empty
    pelvis = _mid(xy, "left_hip", "right_hip")
    res = ViewAnalysis(kp.view, a.fps, a.t, used, segments, 1, "", leg,
                       {f: np.full(n, np.nan) for f in FEET}, {f: np.full(n, np.nan) for f in FEET},
                       {f: [] for f in FEET}, {f: [] for f in FEET},
                       frames_total=n, frames_detected=int(detected.sum()), frames_visible=int(visible.sum()),
                       raw=a)
    sigma = SMOOTH_S * a.fps
    if kp.view == "side":
        d, res.direction_label, warn = _direction_side(Arrays(a.t, xy, a.vis, a.fps, a.width, a.height), used, leg)
        res.warnings += warn
        res.direction = d
        raw_heel = {f: d * (xy[:, LM[f"{f}_heel"], 0] - pelvis[:, 0]) / leg for f in FEET}
        raw_toe = {f: d * (xy[:, LM[f"{f}_foot_index"], 0] - pelvis[:, 0]) / leg for f in FEET}
        speed = np.polyfit(a.t[used], pelvis[used, 0], 1)[0] * d / leg
        res.extras["walking_speed_norm"] = float(speed) if speed > 0 else None
    else:
        # Walker size over time: growing means approaching the camera.
        ll = np.where(used, legs, np.nan)
        slope = np.polyfit(a.t[used], np.log(ll[used]), 1)[0]
        change = float(np.exp(slope * (a.t[used][-1] - a.t[used][0])))
        d = 1 if slope >= 0 else -1
        res.direction, res.direction_label = d, "towards_camera" if d > 0 else "away_from_camera"
        res.extras["scale_change"] = change
        if 1 / 1.15 < change < 1.15:
            res.warnings.append(f"front view: the walker's size changes only ×{change:.2f} over the recording; "
                                f"a front view of a walk towards the camera should grow")
        travel = abs(np.polyfit(a.t[used], pelvis[used, 0], 1)[0]) * (a.t[used][-1] - a.t[used][0])
        sideways = travel > 2 * leg
        if sideways:
            res.warnings.append(f"front view: the pelvis travels {travel / leg:.1f} leg lengths sideways; this "
                                f"looks like a side view, so no base of support is measured")
        ll_s = np.full(n, np.nan)
        for s, e in segments:
            ll_s[s:e] = gaussian_smooth(ll[s:e], 0.5 * a.fps)
        other = {"left": "right", "right": "left"}
        raw_heel = {f: d * (xy[:, LM[f"{f}_heel"], 1] - xy[:, LM[f"{other[f]}_heel"], 1]) / ll_s for f in FEET}
        raw_toe = {f: np.full(n, np.nan) for f in FEET}
        hip_w = np.abs(xy[:, LM["left_hip"], 0] - xy[:, LM["right_hip"], 0])
        ank_w = np.abs(xy[:, LM["left_ankle"], 0] - xy[:, LM["right_ankle"], 0])
        ok = used & (hip_w > 0.05 * ll)
        res.extras["base_width_ratio"] = (float(np.median(ank_w[ok] / hip_w[ok])) if ok.sum() >= 5 and not sideways
                                          else None)
    for f in FEET:
        for sig_raw, sig in ((raw_heel[f], res.heel[f]), (raw_toe[f], res.toe[f])):
            for s, e in segments:
                if np.isfinite(sig_raw[s:e]).all():
                    sig[s:e] = gaussian_smooth(sig_raw[s:e], sigma)
    # Stride period from the longest segment, for the minimum distance between events of one foot.
    s, e = max(segments, key=lambda se: se[1] - se[0])
    periods = [p for p in (period(res.heel[f][s:e], a.fps) for f in FEET) if p]
    res.period_s = float(np.median(periods)) if periods else None
    min_dist = max(MIN_PEAK_DISTANCE_S, 0.6 * res.period_s) if res.period_s else MIN_PEAK_DISTANCE_S
    _events(res, min_dist)
    _strides(res)
    return res


def _events(res: ViewAnalysis, min_dist_s: float) -> None:
    md = max(1, int(round(min_dist_s * res.fps)))
    dt = np.median(np.diff(res.t)) if len(res.t) > 1 else 1 / res.fps
    for f in FEET:
        for sig, out, sign in ((res.heel[f], res.heel_strikes[f], 1), (res.toe[f], res.toe_offs[f], -1)):
            vals = sig[res.used]
            if not np.isfinite(vals).all() or len(vals) == 0:
                continue
            lo, hi = np.percentile(vals, [5, 95])
            prom = PROMINENCE * (hi - lo)
            mid = np.median(vals)
            if not prom > 0:
                continue
            for s, e in res.segments:
                x = sign * sig[s:e]
                for i in find_peaks(x, md, prom):
                    if (x[i] - sign * mid) <= 0:  # heel strike with the heel ahead of its usual place, toe-off behind
                        continue
                    out.append(round(float(res.t[s] + refine(x, i) * dt), 4))
            out.sort()


def _segment_of(res: ViewAnalysis, t: float) -> int:
    for k, (s, e) in enumerate(res.segments):
        if res.t[s] <= t <= res.t[e - 1]:
            return k
    return -1


def _strides(res: ViewAnalysis) -> None:
    lo, hi = STRIDE_LIMITS_S
    cand = []
    for f in FEET:
        hs = res.heel_strikes[f]
        for a, b in zip(hs, hs[1:]):
            if _segment_of(res, a) == _segment_of(res, b) >= 0:
                cand.append((f, a, b))
    durs = np.array([b - a for _, a, b in cand])
    med = float(np.median(durs[(durs >= lo) & (durs <= hi)])) if np.any((durs >= lo) & (durs <= hi)) else None
    dropped = 0
    for f, a, b in sorted(cand, key=lambda s: s[1]):
        d = b - a
        if not lo <= d <= hi or (med and d > MISSED_EVENT_RATIO * med):
            dropped += 1
            continue
        res.strides.append(Stride(foot=f, start=a, end=b, duration=round(d, 4)))
    if dropped:
        res.warnings.append(f"{res.view} view: {dropped} stride(s) dropped as implausible (outside {lo}–{hi} s or "
                            f"over {MISSED_EVENT_RATIO}× the median stride: a missed heel strike)")
    # Steps: consecutive heel strikes of alternating feet in one segment.
    events = sorted((t, f) for f in FEET for t in res.heel_strikes[f])
    breaks = 0
    stride_med = med or (np.median([s.duration for s in res.strides]) if res.strides else None)
    for (ta, fa), (tb, fb) in zip(events, events[1:]):
        if _segment_of(res, ta) != _segment_of(res, tb) or _segment_of(res, ta) < 0:
            continue
        if fa == fb:
            breaks += 1
            continue
        if stride_med and (tb - ta) > 0.8 * stride_med:
            continue
        res.steps.append((fb, ta, tb))
    res.extras["alternation_breaks"] = breaks
    if breaks:
        res.warnings.append(f"{res.view} view: {breaks} time(s) the same foot struck twice without the other "
                            f"foot between (a missed event or a left/right mix-up by the pose model)")


# ---------- parameters ----------
def _stance(res: ViewAnalysis) -> Optional[float]:
    ratios = []
    for s in res.strides:
        tos = [t for t in res.toe_offs.get(s.foot, []) if s.start < t < s.end]
        if len(tos) == 1:
            ratios.append((tos[0] - s.start) / s.duration)
    return float(np.mean(ratios)) if ratios else None


def _step_lengths(res: ViewAnalysis) -> Optional[float]:
    if res.view != "side" or res.raw is None:
        return None
    a = res.raw
    vals = []
    for f, other in (("left", "right"), ("right", "left")):
        for t in res.heel_strikes[f]:
            i = int(np.argmin(np.abs(res.t - t)))
            if not res.used[i]:
                continue
            dx = a.xy[i, LM[f"{f}_heel"], 0] - a.xy[i, LM[f"{other}_heel"], 0]
            if np.isfinite(dx):
                vals.append(res.direction * dx / res.leg_px)
    return float(np.mean(vals)) if vals else None


def parameters(res: ViewAnalysis, front: Optional[ViewAnalysis]) -> dict[str, Optional[float]]:
    """Gait parameters (keys are stable: cycles.json readers and the feature vector use them).

    cadence_spm: 120 / mean stride time (two steps per stride); stride_time_cv: SD / mean of stride times;
    step_time_asymmetry: 2|L − R| / (L + R) of the mean step times ending with each foot; stance_ratio: mean share
    of a stride from heel strike to the same foot's toe-off; step_length_norm: heel-to-heel distance at heel strike
    in leg lengths (side view); walking_speed_norm: pelvis speed in leg lengths per second (side view);
    base_width_ratio: median ankle separation over hip separation (front view).
    """
    durs = np.array([s.duration for s in res.strides])
    st_mean = float(durs.mean()) if len(durs) else None
    st_sd = float(durs.std(ddof=1)) if len(durs) >= 2 else None
    steps = {f: [b - a for g, a, b in res.steps if g == f] for f in FEET}
    all_steps = steps["left"] + steps["right"]
    asym = None
    if steps["left"] and steps["right"]:
        ml, mr = np.mean(steps["left"]), np.mean(steps["right"])
        asym = float(2 * abs(ml - mr) / (ml + mr))
    speed = res.extras.get("walking_speed_norm")
    out: dict[str, Optional[float]] = {
        "cadence_spm": 120.0 / st_mean if st_mean else None,
        "stride_time_mean_s": st_mean,
        "stride_time_sd_s": st_sd,
        "stride_time_cv": st_sd / st_mean if st_sd is not None and st_mean else None,
        "step_time_mean_s": float(np.mean(all_steps)) if all_steps else None,
        "step_time_asymmetry": asym,
        "stance_ratio": _stance(res),
        "step_length_norm": _step_lengths(res),
        "walking_speed_norm": speed,
        "stride_length_norm": speed * st_mean if speed and st_mean else None,
        "base_width_ratio": front.extras.get("base_width_ratio") if front is not None else None,
        "strides_left": float(sum(s.foot == "left" for s in res.strides)),
        "strides_right": float(sum(s.foot == "right" for s in res.strides)),
    }
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in out.items()}


def _quality(res: ViewAnalysis) -> dict:
    return {"frames_total": res.frames_total, "frames_detected": res.frames_detected,
            "frames_visible": res.frames_visible, "frames_used": res.frames_used,
            "visible_ratio": round(res.frames_visible / res.frames_total, 4) if res.frames_total else 0.0,
            "used_ratio": round(res.frames_used / res.frames_total, 4) if res.frames_total else 0.0,
            "segments": [[round(float(res.t[s]), 4), round(float(res.t[e - 1]), 4)] for s, e in res.segments],
            "direction": res.direction_label, "leg_length_px": round(res.leg_px, 2) if res.leg_px == res.leg_px
            else None, "period_s": round(res.period_s, 4) if res.period_s else None,
            "strides": len(res.strides), "steps": len(res.steps),
            "alternation_breaks": res.extras.get("alternation_breaks", 0),
            **({"scale_change": round(res.extras["scale_change"], 4)} if "scale_change" in res.extras else {}),
            "reasons": list(res.reasons), "warnings": list(res.warnings)}


def analyse_views(side: Keypoints, front: Optional[Keypoints]) -> dict[str, ViewAnalysis]:
    """analyse_view of each view given, keyed by view; checks the views are labelled as passed."""
    if side.view != "side":
        raise CyclesError(f"the side keypoints are labelled view {side.view!r}")
    if front is not None and front.view != "front":
        raise CyclesError(f"the front keypoints are labelled view {front.view!r}")
    out = {"side": analyse_view(side)}
    if front is not None:
        out["front"] = analyse_view(front)
    return out


def detect_cycles(side: Keypoints, front: Optional[Keypoints], job_id: str,
                  analyses: Optional[dict[str, ViewAnalysis]] = None) -> Cycles:
    """Heel strikes, toe-offs, strides and gait parameters; the side view first, the front view as fallback.

    Raises CyclesError (with the cause; the caller adds the job ID) when neither view yields MIN_STRIDES strides.
    `analyses` (from analyse_views on the same keypoints) saves recomputing them.
    """
    analyses = analyses or analyse_views(side, front)
    s = analyses["side"]
    f = analyses.get("front")
    if len(s.strides) >= MIN_STRIDES:
        used, reasons = s, []
    elif f is not None and len(f.strides) >= MIN_STRIDES:
        used = f
        reasons = [f"side view gave {len(s.strides)} stride(s) (fewer than {MIN_STRIDES}): front view used; "
                   f"its heel-strike times are approximate (later than the true strike), stride times are not"]
    else:
        causes = [f"side view: {len(s.strides)} stride(s)" + (f" ({'; '.join(s.reasons)})" if s.reasons else "")]
        if f is not None:
            causes.append(f"front view: {len(f.strides)} stride(s)" +
                          (f" ({'; '.join(f.reasons)})" if f.reasons else ""))
        else:
            causes.append("no front view given")
        raise CyclesError(f"too few gait cycles: at least {MIN_STRIDES} strides are needed; " + "; ".join(causes))
    params = parameters(used, f)
    views = {"side": _quality(s)}
    if f is not None:
        views["front"] = {**_quality(f), "heel_strikes": f.heel_strikes,
                          "stride_list": [x.model_dump() for x in f.strides]}
    quality = {"view_used": used.view, **_quality(used), "reasons": reasons + used.reasons,
               "warnings": s.warnings + (f.warnings if f is not None else []), "views": views}
    return Cycles(job_id=job_id, view_used=used.view, fps=used.fps, heel_strikes=used.heel_strikes,
                  toe_offs=used.toe_offs, strides=used.strides, parameters=params, quality=quality)


# ---------- figure ----------
def plot_cycles(keypoints: Keypoints, cycles: Cycles) -> bytes:
    """PNG: the view's heel (and toe) signals per foot with the detected heel strikes (▼) and toe-offs (▲),
    strides as bars underneath. Pass the keypoints of `cycles.view_used` (the side view, usually)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    res = analyse_view(keypoints)
    fig = Figure(figsize=(10.5, 4.2), dpi=90)
    ax, bx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    colors = {"left": "tab:blue", "right": "tab:red"}
    for foot in FEET:
        c = colors[foot]
        ax.plot(res.t, res.heel[foot], color=c, lw=1.3, label=f"{foot} heel − pelvis")
        if np.isfinite(res.toe[foot]).any():
            ax.plot(res.t, res.toe[foot], color=c, lw=0.8, ls="--", alpha=0.7, label=f"{foot} toe − pelvis")
        hs = [t for t in cycles.heel_strikes.get(foot, [])]
        if hs and keypoints.view == cycles.view_used:
            ax.plot(hs, np.interp(hs, res.t, np.nan_to_num(res.heel[foot])), "v", color=c, ms=7,
                    label=f"{foot} heel strike")
        to = cycles.toe_offs.get(foot, [])
        if to and keypoints.view == cycles.view_used:
            ax.plot(to, np.interp(to, res.t, np.nan_to_num(res.toe[foot])), "^", color=c, ms=6, mfc="none",
                    label=f"{foot} toe-off")
    for s, e in res.segments:
        ax.axvspan(res.t[s], res.t[e - 1], color="0.93", zorder=0)
    unit = "leg lengths" if keypoints.view == "side" else "current leg lengths"
    ax.set_ylabel(f"forward of pelvis ({unit})" if keypoints.view == "side" else f"below pelvis ({unit})")
    p = cycles.parameters
    title = f"job {cycles.job_id}: {keypoints.view} view, {len(cycles.strides)} strides"
    if p.get("cadence_spm"):
        title += f", cadence {p['cadence_spm']:.0f} steps/min, stride {p['stride_time_mean_s']:.2f} s"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    for s in cycles.strides:
        y = 1 if s.foot == "left" else 0
        bx.barh(y, s.duration, left=s.start, height=0.6, color=colors[s.foot], alpha=0.6, edgecolor="k")
    bx.set_yticks([0, 1], ["right", "left"])
    bx.set_xlabel("time (s)")
    bx.set_ylim(-0.6, 1.6)
    if len(res.t):
        bx.set_xlim(res.t[0], res.t[-1])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
