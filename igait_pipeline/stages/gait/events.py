"""Gait events, strides and steady strides of one view. No Dagster import here.

* Side view, found then located. Found (Zeni et al. 2008 in 2-D, as Stenum et al. 2021 and Pose2Sim do it): with
  the walking direction as +x, the horizontal position of the foot centre (heel, ankle, toe) relative to the pelvis
  (mid-hip), in leg lengths, low-passed at 3 stride harmonics, peaks at heel strike (the foot is furthest ahead);
  that of heel and ankle dips at toe-off (the foot is furthest behind). Located (`_refine`), within
  ±EventSettings.refine_window strides of each found event: heel strike at the forward-most point of the foot
  centre low-passed at only 4 harmonics (the stronger filter shifts the peak by a walker-dependent amount), applied
  as one shift per walk (the median over its heel strikes: step and stride times stay those of the found events,
  the lighter filter's jitter does not enter them); toe-off at the peak forward acceleration of the toe relative to
  the pelvis (Hreljac & Marshall 2000), low-passed at 8 harmonics, per event. The toe's *position* is not used (it
  stays back while the foot rolls off: toe-offs 60–116 ms late on real clips). Events are then moved by a
  calibrated share of the swing time (EventSettings.*_swing_offset; heel strikes by the walk's mean swing, toe-offs
  by the foot's own). Last, a toe-off moves to the foot-velocity toe-off (O'Connor et al. 2007: peak upward velocity
  of the foot centre) where that peak follows the found toe-off within a fifth of a stride (on real clips; never
  on the simulated walkers, whose foot centre rises fastest before toe-off). Foot-height contact detection was
  tried and does not fit the simulated walkers (docs/pipeline.md says why).
* Front view (support / fallback): the foot in front is nearer the camera when the walker approaches (lower in the
  image) and further when the walker walks away (higher). The image height difference between the two feet's
  heels (toward) or toes (away: a lifted heel also looks further), in the walker's *current* leg lengths (the
  walker grows ×1.5–3.5), peaks after heel strike, as the other foot leaves the ground (toward ~0.14 s late, away
  ~0.03 s on simulated walkers; 64–203 ms per clip on hand-labelled real clips, bench/labels/README.md). Located
  (`_front_locate`): every heel strike of the walk moves by the median shift from the peaks back to the knee of the
  signal's rise, where the landing foot has stopped (FrontSettings.heel_strike_knee_*; stride and step times stay
  those of the peaks). No toe-offs from the front view. Steady strides are those of a steady approach
  (`FrontSettings.approach_tolerance`).

Events are local extremes of the zero-phase low-passed signals (scipy.signal.find_peaks with a prominence and a
minimum distance from the signal's own period). Per foot, heel strikes and toe-offs must alternate; an event that
repeats the previous kind is dropped (the weaker of the two) and counted. A stride is heel strike to the next heel
strike of the same foot inside one segment. A stride is *steady* unless it is cut by the frame edge (a lower-body
landmark near the image border during it) or, in the side view, its pelvis speed differs from the median stride's
by more than `speed_tolerance` (gait initiation or termination), or, in the front view, its approach speed (rate of
change of 1 / leg length in pixels) differs from the median stride's by more than `approach_tolerance`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy  # its submodules load on first use: importing the stages stays light

from igait_pipeline.schemas import LM, Keypoints, Stride
from igait_pipeline.stages.gait.settings import DEFAULT, GaitSettings
from igait_pipeline.stages.gait.signals import (
    FEET,
    Arrays,
    arrays,
    fill_gaps,
    leg_lengths,
    lowpass,
    mid,
    period,
    refine,
    runs,
)

LOWER_BODY = [f"{s}_{p}" for s in FEET for p in ("hip", "knee", "ankle", "heel", "foot_index")]


@dataclass
class Step:
    foot: str  # the foot that lands at `end`
    start: float
    end: float
    steady: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class ViewMeasurement:
    """Everything measured on one view. Times are seconds on the keypoints' clock."""

    view: str
    fps: float
    raw: Arrays  # the landmarks as read (gaps not bridged)
    used: np.ndarray  # frames inside a usable segment (after bridging short gaps)
    segments: list[tuple[int, int]] = field(default_factory=list)
    xy: np.ndarray | None = None  # landmarks with short gaps bridged, NaN outside segments
    direction: int = 1  # +1: walking direction is +x (side) / towards the camera (front)
    direction_label: str = "unknown"
    leg_px: float = float("nan")
    heel: dict = field(default_factory=dict)  # heel-strike signal per foot, filtered, NaN outside segments
    toe: dict = field(default_factory=dict)  # toe-off signal per foot (side view only)
    heel_strikes: dict = field(default_factory=lambda: {f: [] for f in FEET})
    toe_offs: dict = field(default_factory=lambda: {f: [] for f in FEET})
    strides: list[Stride] = field(default_factory=list)  # every plausible stride, steady or not
    steps: list[Step] = field(default_factory=list)
    in_frame: np.ndarray | None = None
    frames_detected: int = 0
    frames_visible: int = 0
    period_s: float | None = None
    extras: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def t(self) -> np.ndarray:
        return self.raw.t

    @property
    def frames_total(self) -> int:
        return len(self.raw.t)

    @property
    def frames_used(self) -> int:
        return int(self.used.sum())

    @property
    def steady_strides(self) -> list[Stride]:
        return [s for s in self.strides if s.steady]

    @property
    def steady_steps(self) -> list[Step]:
        return [s for s in self.steps if s.steady]

    def segment_of(self, t: float) -> int:
        for k, (s, e) in enumerate(self.segments):
            if self.t[s] <= t <= self.t[e - 1]:
                return k
        return -1


def _direction_side(t: np.ndarray, xy: np.ndarray, ok: np.ndarray, leg: float,
                    follow_travel: float) -> tuple[int, str, float, list[str]]:
    """Side view: the walking direction (+1: left to right), its label, how far the pelvis travels across the
    picture over the recording (leg lengths, straight-line fit) and warnings. Below `follow_travel` leg lengths
    (StrideSettings.follow_travel_leg_lengths) the camera follows the walker (or a treadmill): the nose points the
    way the walker faces."""
    pel = mid(xy, "left_hip", "right_hip")[ok, 0]
    tt = t[ok]
    slope = np.polyfit(tt, pel, 1)[0]
    travel = slope * (tt[-1] - tt[0])
    legs = abs(travel) / leg
    if legs >= follow_travel:
        d = 1 if slope > 0 else -1
        return d, "left_to_right" if d > 0 else "right_to_left", legs, []
    face = xy[ok, LM["nose"], 0] - mid(xy, "left_ear", "right_ear")[ok, 0]
    face = face[np.isfinite(face)]
    d = 1 if (np.median(face) if len(face) else slope) > 0 else -1
    return d, "left_to_right" if d > 0 else "right_to_left", legs, [
        f"side view: the pelvis travels only {legs:.1f} leg lengths across the picture: the camera follows the "
        f"walker (or a treadmill); walking direction taken from where the face points, strides judged steady by "
        f"their speed over the ground, no walking speed or stride length"]


def measure_view(kp: Keypoints, settings: GaitSettings = DEFAULT) -> ViewMeasurement:
    """Gait events, strides (steady or not) and steps of one view."""
    ss = settings.signal
    a = arrays(kp)
    n = len(a.t)
    detected = np.isfinite(a.xy[:, LM["left_hip"], 0]) & np.isfinite(a.xy[:, LM["right_hip"], 0])
    visible = detected & (a.vis[:, LM["left_ankle"]] > ss.visibility) & (a.vis[:, LM["right_ankle"]] > ss.visibility)
    visible &= np.isfinite(a.xy).all(axis=(1, 2))
    res = ViewMeasurement(kp.view, a.fps, a, np.zeros(n, bool), frames_detected=int(detected.sum()),
                          frames_visible=int(visible.sum()))
    res.heel = {f: np.full(n, np.nan) for f in FEET}
    res.toe = {f: np.full(n, np.nan) for f in FEET}
    if visible.sum() < ss.min_segment_s * a.fps:
        res.reasons.append(f"{kp.view} view: both ankles are visible in only {int(visible.sum())} of {n} frames "
                           f"(person detected in {int(detected.sum())})")
        return res
    xy, used = fill_gaps(np.where(visible[:, None, None], a.xy, 0.0), visible, int(round(ss.max_gap_s * a.fps)))
    res.segments = [(s, e) for s, e in runs(used) if e - s >= ss.min_segment_s * a.fps]
    if not res.segments:
        res.reasons.append(f"{kp.view} view: no stretch of at least {ss.min_segment_s} s with both ankles visible")
        return res
    for s, e in res.segments:
        res.used[s:e] = True
    xy = np.where(res.used[:, None, None], xy, np.nan)
    res.xy = xy
    legs = leg_lengths(xy)
    res.leg_px = float(np.nanmedian(legs[res.used]))
    if not res.leg_px > 0:
        res.reasons.append(f"{kp.view} view: leg length could not be measured")
        return res
    lower = xy[:, [LM[name] for name in LOWER_BODY]]
    mx, my = ss.edge_margin * a.width, ss.edge_margin * a.height
    res.in_frame = res.used & np.all((lower[..., 0] > mx) & (lower[..., 0] < a.width - mx) & (lower[..., 1] > my)
                                     & (lower[..., 1] < a.height - my), axis=1)
    leg = res.leg_px
    if kp.view == "side" and kp.background:
        # The camera's pan (stage 2): every landmark measured against the background, so the pelvis travels as
        # the walker does over the ground. The frame-edge test above stays in the picture; signals relative to
        # the pelvis, angles and heel-to-heel distances do not change.
        bg = np.asarray(kp.background, float)
        shift = np.interp(a.t, bg[:, 0], bg[:, 1]) * a.width
        xy = xy.copy()
        xy[..., 0] -= shift[:, None]
        res.extras["camera_pan_leg_lengths"] = round(float(np.ptp(shift[res.used])) / leg, 3)
    pelvis = mid(xy, "left_hip", "right_hip")
    if kp.view == "side":
        res.direction, res.direction_label, travel, warn = _direction_side(
            a.t, xy, res.used, leg, settings.strides.follow_travel_leg_lengths)
        res.warnings += warn
        res.extras["pelvis_travel_leg_lengths"] = round(travel, 3)
        res.extras["camera_follows_walker"] = bool(travel < settings.strides.follow_travel_leg_lengths)
        d = res.direction
        ev = settings.events
        raw_heel = {f: d * (_foot_x(xy, f, ev.heel_strike_landmark) - pelvis[:, 0]) / leg for f in FEET}
        raw_toe = {f: d * (_foot_x(xy, f, ev.toe_off_landmark) - pelvis[:, 0]) / leg for f in FEET}
        raw_refine = {"hs": raw_heel,
                      "to": {f: d * (_foot_x(xy, f, ev.toe_off_refine_landmark) - pelvis[:, 0]) / leg for f in FEET}}
        res.extras["pelvis_forward_norm"] = d * pelvis[:, 0] / leg
    else:
        raw_heel, raw_toe = _front_signals(res, xy, legs, pelvis, settings)
    # Stride period from the longest segment (autocorrelation of the unfiltered heel signals): it sets the
    # filter's cut-off (a number of stride harmonics) and the minimum distance between events of one foot.
    s, e = max(res.segments, key=lambda se: se[1] - se[0])
    periods = [p for p in (period(raw_heel[f][s:e], a.fps) for f in FEET
                           if np.isfinite(raw_heel[f][s:e]).all()) if p]
    res.period_s = float(np.median(periods)) if periods else None
    cutoff = ss.lowpass_harmonics / res.period_s if res.period_s and ss.lowpass_harmonics else ss.lowpass_hz
    res.extras["lowpass_hz"] = round(cutoff, 3)
    to_cutoff = (ss.toe_off_lowpass_harmonics / res.period_s if res.period_s and ss.toe_off_lowpass_harmonics
                 else cutoff)
    res.extras["toe_off_lowpass_hz"] = round(to_cutoff, 3)
    for f in FEET:
        for sig_raw, sig, hz in ((raw_heel[f], res.heel[f], cutoff), (raw_toe[f], res.toe[f], to_cutoff)):
            for s, e in res.segments:
                if np.isfinite(sig_raw[s:e]).all():
                    sig[s:e] = lowpass(sig_raw[s:e], a.fps, hz, ss.filter_order)
    ev = settings.events
    min_dist = max(ev.min_peak_distance_s, ev.period_share * res.period_s) if res.period_s else ev.min_peak_distance_s
    _events(res, min_dist, settings)
    enforce_alternation(res)
    found_toe_offs = {f: list(res.toe_offs[f]) for f in FEET}
    if kp.view == "side":
        _refine(res, raw_refine, settings)
    else:
        _front_locate(res, settings)
    _swing_offsets(res, settings)
    if kp.view == "side":
        _foot_velocity_toe_offs(res, found_toe_offs, settings)
        _estimator_offset(res, kp.model.name, settings)
    _strides(res, settings)
    if kp.view == "front":
        _front_steadiness(res, settings)
        _front_base(res, settings)
    _steps(res)
    return res


def _foot_x(xy: np.ndarray, foot: str, landmarks: str) -> np.ndarray:
    """Horizontal position of a foot landmark, or the mean of several ("heel+ankle")."""
    return np.mean([xy[:, LM[f"{foot}_{name}"], 0] for name in landmarks.split("+")], axis=0)


def _foot_y(xy: np.ndarray, foot: str, landmarks: str) -> np.ndarray:
    """Image height (y, down) of a foot landmark, or the mean of several ("heel+foot_index")."""
    return np.mean([xy[:, LM[f"{foot}_{name}"], 1] for name in landmarks.split("+")], axis=0)


def _front_signals(res: ViewMeasurement, xy: np.ndarray, legs: np.ndarray, pelvis: np.ndarray,
                   settings: GaitSettings = DEFAULT):
    """Front view: direction (toward / away, from the trend of the walker's size), the walker's current size per
    frame, and the heel-strike signal per foot: how far the foot's landmark (FrontSettings: the heel toward the
    camera, the toe away from it) is in front of the other foot's, read from the image height difference (nearer is
    lower), in the walker's *current* leg lengths, so thresholds hold while the walker grows ×3."""
    fs = settings.front
    a, n, leg = res.raw, len(res.raw.t), res.leg_px
    used = res.used
    ll = np.where(used, legs, np.nan)
    slope = np.polyfit(a.t[used], np.log(ll[used]), 1)[0]
    change = float(np.exp(slope * (a.t[used][-1] - a.t[used][0])))
    d = 1 if slope >= 0 else -1
    res.direction, res.direction_label = d, "towards_camera" if d > 0 else "away_from_camera"
    res.extras["scale_change"] = change
    if 1 / fs.min_scale_change < change < fs.min_scale_change:
        res.warnings.append(f"front view: the walker's size changes only ×{change:.2f} over the recording; "
                            f"a front view of a walk towards the camera should grow")
    travel = abs(np.polyfit(a.t[used], pelvis[used, 0], 1)[0]) * (a.t[used][-1] - a.t[used][0])
    sideways = travel > fs.sideways_leg_lengths * leg
    res.extras["sideways"] = bool(sideways)
    if sideways:
        res.warnings.append(f"front view: the pelvis travels {travel / leg:.1f} leg lengths sideways; this "
                            f"looks like a side view, so no base of support and no front-view joint angles are "
                            f"measured")
    ll_s = np.full(n, np.nan)
    for s, e in res.segments:
        ll_s[s:e] = lowpass(ll[s:e], a.fps, fs.size_lowpass_hz, 2)
    res.extras["size_px"] = ll_s
    landmark = fs.heel_strike_landmark_towards if d > 0 else fs.heel_strike_landmark_away
    res.extras["front_heel_strike_landmark"] = landmark
    other = {"left": "right", "right": "left"}

    def height(f: str) -> np.ndarray:
        return np.mean([xy[:, LM[f"{f}_{name}"], 1] for name in landmark.split("+")], axis=0)

    raw_heel = {f: d * (height(f) - height(other[f])) / ll_s for f in FEET}
    raw_toe = {f: np.full(n, np.nan) for f in FEET}
    res.extras["front_raw_heel"] = raw_heel
    return raw_heel, raw_toe


def _front_locate(res: ViewMeasurement, settings: GaitSettings) -> None:
    """Front view: move every heel strike of the walk from the peak of its heel-strike signal to where the foot
    is down (FrontSettings.heel_strike_knee_*): per found peak, the knee of the signal's rise before it (the first
    frame after the rise's fastest point with a velocity at or below `heel_strike_knee_share` of that fastest
    velocity), and the median of those shifts over the walk applied to all (one shift per walk, so stride and step
    times stay those of the peaks)."""
    fs = settings.front
    raw = res.extras.pop("front_raw_heel", None)
    if not fs.heel_strike_knee_share or not res.period_s or raw is None:
        return
    hz = fs.heel_strike_knee_harmonics / res.period_s
    win = max(3, int(round(fs.heel_strike_knee_window * res.period_s * res.fps)))
    dt = np.median(np.diff(res.t)) if len(res.t) > 1 else 1 / res.fps
    shifts = []
    for f in FEET:
        vel = np.full(len(res.t), np.nan)
        for s, e in res.segments:
            if np.isfinite(raw[f][s:e]).all() and e - s > 3 * settings.signal.filter_order:
                vel[s:e] = np.gradient(lowpass(raw[f][s:e], res.fps, hz, settings.signal.filter_order))
        for t0 in res.heel_strikes[f]:
            i0 = int(np.argmin(np.abs(res.t - t0)))
            a = i0 - win
            v = vel[a:i0 + 1] if a >= 0 else np.array([])
            if len(v) < 3 or not np.isfinite(v).all():
                continue
            j = int(np.argmax(v))
            if j == 0 or v[j] <= 0:  # the rise started before the window: no knee to place
                continue
            below = np.flatnonzero(v[j:] <= fs.heel_strike_knee_share * v[j])
            if not len(below):
                continue
            k = j + int(below[0])
            # linear interpolation between the last frame above the share and the first at or below it
            v0, v1, thr = v[k - 1], v[k], fs.heel_strike_knee_share * v[j]
            frac = (v0 - thr) / (v0 - v1) if v0 != v1 else 1.0
            shifts.append(float(res.t[a + k - 1] + frac * dt - t0))
    res.extras["front_heel_strike_shifts"] = len(shifts)
    if not shifts:
        return
    shift = float(np.median(shifts))
    res.extras["front_heel_strike_shift_s"] = round(shift, 4)
    _shift_heel_strikes(res, shift)


def _shift_heel_strikes(res: ViewMeasurement, shift: float) -> None:
    """Move every heel strike of the walk by `shift` seconds (stride and step times unchanged), keeping each
    event's strength under its new time."""
    strength = res.extras["event_strength"]
    for f in FEET:
        moved = [round(t + shift, 4) for t in res.heel_strikes[f]]
        for t0, t1 in zip(res.heel_strikes[f], moved):
            strength[(f, "hs", t1)] = strength.pop((f, "hs", t0))
        res.heel_strikes[f] = moved


def _front_steadiness(res: ViewMeasurement, settings: GaitSettings) -> None:
    """Front view: each stride's approach speed, d(leg_median / leg_px)/dt over its frames (a straight-line fit;
    constant for a walker at constant speed, whatever the distance), + toward the camera; strides off the median
    stride's by more than FrontSettings.approach_tolerance are not steady (the reason is recorded)."""
    size = res.extras.get("size_px")
    if size is None:
        return
    t = res.t
    inv = res.leg_px / size
    for s in res.strides:
        sel = (t >= s.start) & (t <= s.end) & np.isfinite(inv)
        if sel.sum() >= 5:
            s.approach_speed = round(float(-np.polyfit(t[sel], inv[sel], 1)[0]), 4)
    speeds = [s.approach_speed for s in res.strides if s.steady and s.approach_speed is not None]
    ref = float(np.median(speeds)) if speeds else None
    tol = settings.front.approach_tolerance
    for s in res.strides:
        if not s.steady:
            continue
        if s.approach_speed is None:
            s.steady, s.excluded = False, "approach speed not measurable (too few frames)"
        elif ref and abs(s.approach_speed / ref - 1) > tol:
            what = ("walking the other way (turning round, walking back)" if s.approach_speed * ref < 0 else
                    "slower than the steady approach (standing, gait initiation or termination, turning)"
                    if abs(s.approach_speed) < abs(ref) else "faster than the steady approach")
            s.steady, s.excluded = False, (f"not a steady approach: {what}; approach speed {s.approach_speed:+.3f} "
                                           f"vs {ref:+.3f} for the median stride (±{tol:.0%} allowed)")
    res.extras["median_stride_approach_speed"] = round(ref, 4) if ref else None


def _front_base(res: ViewMeasurement, settings: GaitSettings) -> None:
    """Front view, base of support from the steady strides only (FrontSettings.base_width_percentile), corrected
    for a diagonal approach. Walking at an angle θ to the camera's axis, the leading foot is shifted sideways in the
    image by its step's length times sin θ, one way when the left foot leads and the other way when the right one
    does (perspective off the image centre does the same: the leading foot is nearer). That shift is linear in how
    far the left foot is ahead of the right (the heel-strike signal: the nearer foot is lower in the image, in
    current leg lengths), while the base itself is alike for both leads: the signed ankle separation over hip
    separation (left minus right, in the hips' order) is regressed on that signal over the steady strides, the
    fitted shift removed frame by frame, and the base measured on what remains. The shift at the widest steps
    (`base_width_percentile` of |signal|), in hip widths, is recorded as the diagonal component; beyond
    FrontSettings.base_max_diagonal the base is null with the reason."""
    fs, st = settings.front, settings.strides
    res.extras["base_width_ratio"] = None
    res.extras["base_width_frames"] = 0
    res.extras["base_width_strides"] = 0
    if res.extras.get("sideways"):
        res.extras["base_width_reason"] = "the walker crosses the front video sideways (a side view?)"
        return
    xy, t = res.xy, res.t
    hip_dx = xy[:, LM["left_hip"], 0] - xy[:, LM["right_hip"], 0]
    hip_w = np.abs(hip_dx)
    # How far the left foot is in front of the right: the heel-strike signal is the image height difference in
    # current leg lengths, h·ΔZ / (leg·Z) for feet on the ground seen from height h at distance Z, and Z ∝ 1 / size:
    # divided by the current size it is proportional to the depth difference ΔZ itself, at any distance.
    ahead = res.heel["left"] * res.leg_px / res.extras["size_px"]
    ok = res.used & (hip_w > 0.05 * res.extras["size_px"]) & np.isfinite(ahead)
    ratio = np.full(len(t), np.nan)
    ratio[ok] = (xy[ok, LM["left_ankle"], 0] - xy[ok, LM["right_ankle"], 0]) * np.sign(hip_dx[ok]) / hip_w[ok]
    spans = [ok & (t >= s.start) & (t <= s.end) for s in res.steady_strides]
    spans = [sel for sel in spans if sel.sum() >= 5]
    frames = np.any(spans, axis=0) if spans else np.zeros(len(t), bool)
    res.extras["base_width_frames"] = int(frames.sum())
    res.extras["base_width_strides"] = len(spans)
    if len(spans) < st.min_steady_strides:
        res.extras["base_width_reason"] = (f"{len(spans)} steady front-view stride(s) (at least "
                                           f"{st.min_steady_strides} needed)")
        return
    a, r = ahead[frames], ratio[frames]
    slope = float(np.sum((a - a.mean()) * (r - r.mean())) / np.sum((a - a.mean()) ** 2))
    diagonal = abs(slope) * float(np.percentile(np.abs(a), fs.base_width_percentile))
    res.extras["base_diagonal_component"] = round(diagonal, 3)
    if diagonal > fs.base_max_diagonal:
        res.extras["base_width_reason"] = (
            f"the walker walks at an angle to the camera's axis: each step shifts the leading ankle "
            f"±{diagonal:.2f} hip widths sideways (at most ±{fs.base_max_diagonal:g} corrected, "
            f"FrontSettings.base_max_diagonal)")
        return
    corrected = ratio - slope * ahead
    res.extras["base_width_ratio"] = float(np.median([np.percentile(corrected[sel], fs.base_width_percentile)
                                                      for sel in spans]))


def _events(res: ViewMeasurement, min_dist_s: float, settings: GaitSettings) -> None:
    ev = settings.events
    md = max(1, int(round(min_dist_s * res.fps)))
    dt = np.median(np.diff(res.t)) if len(res.t) > 1 else 1 / res.fps
    res.extras["event_strength"] = {}
    for f in FEET:
        for sig, out, sign, kind in ((res.heel[f], res.heel_strikes[f], 1, "hs"),
                                     (res.toe[f], res.toe_offs[f], -1, "to")):
            vals = sig[res.used]
            if len(vals) == 0 or not np.isfinite(vals).all():
                continue
            lo, hi = np.percentile(vals, [5, 95])
            prom = ev.prominence * (hi - lo)
            centre = np.median(vals)
            if not prom > 0:
                continue
            for s, e in res.segments:
                x = sign * sig[s:e]
                peaks, _ = scipy.signal.find_peaks(x, prominence=prom, distance=md)
                for i in peaks:
                    if i < ev.edge_frames or i >= len(x) - ev.edge_frames:
                        continue  # an extreme where the data stops is not an event
                    if x[i] - sign * centre <= 0:  # heel strike with the heel behind its usual place, etc.
                        continue
                    tt = round(float(res.t[s] + refine(x, i) * dt), 4)
                    out.append(tt)
                    res.extras["event_strength"][(f, kind, tt)] = float(x[i] - sign * centre)
            out.sort()


def enforce_alternation(res: ViewMeasurement) -> None:
    """Per foot and segment, heel strikes and toe-offs must alternate; of two consecutive events of one kind the
    weaker (smaller excursion from the signal's median, `extras["event_strength"]`) is dropped and counted.
    (find_peaks' minimum distance already keeps one event of a kind per ~0.6 stride; what remains are events
    around a missed one, or a pose model's left/right swap.)"""
    if not any(res.toe_offs[f] for f in FEET):
        res.extras["events_dropped_for_order"] = 0
        return
    strength = res.extras["event_strength"]
    dropped = 0
    for f in FEET:
        seq = sorted([(t, "hs") for t in res.heel_strikes[f]] + [(t, "to") for t in res.toe_offs[f]])
        kept: list[tuple[float, str]] = []
        for t, kind in seq:
            if kept and kept[-1][1] == kind and res.segment_of(kept[-1][0]) == res.segment_of(t):
                dropped += 1
                if strength[(f, kind, t)] > strength[(f, kind, kept[-1][0])]:
                    kept[-1] = (t, kind)
                continue
            kept.append((t, kind))
        res.heel_strikes[f] = [t for t, k in kept if k == "hs"]
        res.toe_offs[f] = [t for t, k in kept if k == "to"]
    res.extras["events_dropped_for_order"] = dropped
    if dropped:
        res.warnings.append(f"{res.view} view: {dropped} event(s) dropped because heel strike and toe-off of a "
                            f"foot did not alternate")


def _refine(res: ViewMeasurement, raw: dict, settings: GaitSettings) -> None:
    """Side view: each event found on the stride-harmonic-filtered Zeni signals is re-located inside a window of
    ±EventSettings.refine_window stride periods around it, on signals filtered less:
    heel strike at the forward-most point of the foot centre low-passed at `heel_strike_refine_harmonics` (by default
    all heel strikes of the walk move by the median of those shifts: `heel_strike_refine_pooling`); toe-off
    at the peak forward acceleration of the toe (relative to the pelvis) low-passed at `toe_off_refine_harmonics`
    (Hreljac & Marshall 2000: the toe is pulled forward hardest as it leaves the ground). An event whose window
    has no interior extreme (the signal ends, or the foot never accelerates there) keeps its Zeni time."""
    ev = settings.events
    if not res.period_s:
        return
    half = max(2, int(round(ev.refine_window * res.period_s * res.fps)))
    dt = np.median(np.diff(res.t)) if len(res.t) > 1 else 1 / res.fps
    strength = res.extras["event_strength"]
    kept = 0
    for kind, events, harmonics, deriv, pooling in (
            ("hs", res.heel_strikes, ev.heel_strike_refine_harmonics, 0, ev.heel_strike_refine_pooling),
            ("to", res.toe_offs, ev.toe_off_refine_harmonics, 2, "event")):
        if not harmonics:
            continue
        hz = harmonics / res.period_s
        located: dict[str, list[float | None]] = {}
        for f in FEET:
            filtered: dict[int, np.ndarray | None] = {}
            for s, e in res.segments:
                x = raw[kind][f][s:e]
                y = lowpass(x, res.fps, hz, settings.signal.filter_order) if np.isfinite(x).all() else None
                for _ in range(deriv if y is not None else 0):
                    y = np.gradient(y)
                filtered[s] = y
            located[f] = []
            for t0 in events[f]:
                s = res.segments[res.segment_of(t0)][0]
                y = filtered[s]
                i0 = int(round((t0 - res.t[s]) / dt))
                a, b = i0 - half, i0 + half + 1
                j = int(np.argmax(y[a:b])) if y is not None and a >= 1 and b <= len(y) - 1 else 0
                if j in (0, 2 * half):  # no window, or no interior extreme in it
                    located[f].append(None)
                    continue
                located[f].append(float(res.t[s] + (a + refine(y[a:b], j)) * dt))
        shifts = {f: [t1 - t0 for t0, t1 in zip(events[f], located[f]) if t1 is not None] for f in FEET}
        for f in FEET:
            pool = shifts[f] if pooling == "foot" else shifts["left"] + shifts["right"]
            moved = []
            for t0, t1 in zip(events[f], located[f]):
                if pooling != "event" and pool:
                    t1 = t0 + float(np.median(pool))
                if t1 is None:
                    kept += 1
                    moved.append(t0)
                    continue
                t1 = round(t1, 4)
                strength[(f, kind, t1)] = strength.pop((f, kind, t0))
                moved.append(t1)
            events[f] = moved
    res.extras["events_not_refined"] = kept


def swing_times(res: ViewMeasurement) -> dict[str, float | None]:
    """Per foot, the median swing time (toe-off to that foot's next heel strike in one segment), seconds."""
    out = {}
    for f in FEET:
        hs = np.asarray(res.heel_strikes[f])
        sw = [float(hs[hs > t][0] - t) for t in res.toe_offs[f]
              if np.any(hs > t) and res.segment_of(t) == res.segment_of(float(hs[hs > t][0])) >= 0]
        out[f] = float(np.median(sw)) if sw else None
    return out


def _swing_offsets(res: ViewMeasurement, settings: GaitSettings) -> None:
    """Side view: move events by their calibrated share of the median swing time (EventSettings.
    heel_strike_swing_offset, toe_off_swing_offset; heel strikes by the walk's mean swing when
    heel_strike_offset_swing is "walk", toe-offs by their foot's): the foot's forward-most point comes a share of
    the swing before contact, the toe's acceleration peak a share after the foot leaves the ground."""
    ev = settings.events
    if res.view != "side" or not (ev.heel_strike_swing_offset or ev.toe_off_swing_offset):
        return
    swing = swing_times(res)
    known = [v for v in swing.values() if v]
    if not known:
        return
    res.extras["swing_s"] = {f: round(v, 4) if v else None for f, v in swing.items()}
    strength = res.extras["event_strength"]
    walk = float(np.mean(known))
    for f in FEET:
        sw = swing[f] or walk
        for kind, events, share in (("hs", res.heel_strikes, ev.heel_strike_swing_offset),
                                    ("to", res.toe_offs, ev.toe_off_swing_offset)):
            base = walk if kind == "hs" and ev.heel_strike_offset_swing == "walk" else sw
            moved = [round(t + share * base, 4) for t in events[f]]
            for a, b in zip(events[f], moved):
                strength[(f, kind, b)] = strength.pop((f, kind, a))
            events[f] = moved


def _estimator_offset(res: ViewMeasurement, estimator: str, settings: GaitSettings) -> None:
    """Side view: move every heel strike by the offset calibrated on hand-labelled real clips for the pose estimator
    that made the keypoints (EventSettings.heel_strike_estimator_offsets_s); recorded in `extras`."""
    shift = dict(settings.events.heel_strike_estimator_offsets_s).get(estimator, 0.0)
    res.extras["heel_strike_estimator_offset_s"] = {"estimator": estimator, "offset_s": shift}
    if shift:
        _shift_heel_strikes(res, shift)


def _foot_velocity_toe_offs(res: ViewMeasurement, found: dict[str, list[float]], settings: GaitSettings) -> None:
    """Side view: move each toe-off to (a blend with) the foot-velocity toe-off (O'Connor et al. 2007: the peak
    upward velocity of the foot centre, EventSettings.toe_off_velocity_*), looked for within a window after the
    toe-off found on Zeni's signal; a toe-off whose window has no interior peak keeps its (acceleration) time."""
    ev = settings.events
    w = ev.toe_off_velocity_weight
    if not w or not res.period_s:
        return
    dt = np.median(np.diff(res.t)) if len(res.t) > 1 else 1 / res.fps
    lo, hi = (res.period_s * v for v in ev.toe_off_velocity_window)
    strength = res.extras["event_strength"]
    for f in FEET:
        up = np.full(len(res.t), np.nan)  # upward velocity of the foot centre, leg lengths per second
        height = -_foot_y(res.xy, f, ev.toe_off_velocity_landmark) / res.leg_px
        for s, e in res.segments:
            if np.isfinite(height[s:e]).all() and e - s > 3:
                up[s:e] = np.gradient(lowpass(height[s:e], res.fps, ev.toe_off_velocity_lowpass_hz,
                                              settings.signal.filter_order)) / dt
        moved = []
        for t0, t1 in zip(found[f], res.toe_offs[f]):
            sel = np.flatnonzero((res.t >= t0 + lo) & (res.t <= t0 + hi) & np.isfinite(up))
            j = int(np.argmax(up[sel])) if len(sel) >= 3 else 0
            if j in (0, len(sel) - 1) or np.any(np.diff(sel) != 1):
                moved.append(t1)
                continue
            tv = float(res.t[sel[0]] + refine(up[sel], j) * dt)
            t2 = round(w * tv + (1 - w) * t1, 4)
            strength[(f, "to", t2)] = strength.pop((f, "to", t1))
            moved.append(t2)
        res.toe_offs[f] = moved


def _strides(res: ViewMeasurement, settings: GaitSettings) -> None:
    st = settings.strides
    lo, hi = st.stride_limits_s
    cand = []
    for f in FEET:
        hs = res.heel_strikes[f]
        for a, b in zip(hs, hs[1:]):
            if res.segment_of(a) == res.segment_of(b) >= 0:
                cand.append((f, a, b))
    durs = np.array([b - a for _, a, b in cand])
    ok = (durs >= lo) & (durs <= hi)
    med = float(np.median(durs[ok])) if ok.any() else None
    implausible = 0
    for f, a, b in sorted(cand, key=lambda s: s[1]):
        d = b - a
        if not lo <= d <= hi or (med and d > st.missed_event_ratio * med):
            implausible += 1
            continue
        tos = [t for t in res.toe_offs[f] if a < t < b]
        res.strides.append(Stride(foot=f, start=a, end=b, duration=round(d, 4),
                                  toe_off=tos[0] if len(tos) == 1 else None))
    if implausible:
        res.warnings.append(f"{res.view} view: {implausible} stride(s) dropped as implausible (outside {lo}–{hi} s "
                            f"or over {st.missed_event_ratio}× the median stride: a missed heel strike)")
    t = res.t
    follows = res.extras.get("camera_follows_walker")
    ground = _ground_speed(res) if follows else None
    for s in res.strides:
        sel = (t >= s.start) & (t <= s.end)
        if res.in_frame is not None and not res.in_frame[sel].all():
            s.steady, s.excluded = False, "cut by the frame edge"
        if follows:
            s.speed_norm = round(float(np.nanmean(ground[sel])), 4) if np.isfinite(ground[sel]).any() else None
        elif "pelvis_forward_norm" in res.extras:
            x = res.extras["pelvis_forward_norm"]
            i, j = int(np.argmin(np.abs(t - s.start))), int(np.argmin(np.abs(t - s.end)))
            s.speed_norm = round(float((x[j] - x[i]) / (t[j] - t[i])), 4)
    # Gait initiation / termination: strides much slower (or faster) than the median stride of the walk.
    speeds = [s.speed_norm for s in res.strides if s.steady and s.speed_norm is not None]
    ref = float(np.median(speeds)) if speeds else None
    what = "speed over the ground" if follows else "pelvis speed"
    for s in res.strides:
        if ref and s.steady and s.speed_norm is not None and abs(s.speed_norm / ref - 1) > st.speed_tolerance:
            s.steady = False
            s.excluded = (f"gait initiation or termination: {what} {s.speed_norm:.2f} leg lengths/s vs "
                          f"{ref:.2f} for the median stride")
    res.extras["median_stride_speed_norm"] = round(ref, 4) if ref else None


def _ground_speed(res: ViewMeasurement) -> np.ndarray:
    """Side view, per frame: the pelvis's forward speed relative to the foot on the ground (leg lengths/s), which
    a camera panning with the walker does not change. The heel-strike signals are each foot's forward position
    relative to the pelvis (low-passed); the foot on the ground moves backward relative to the pelvis at the
    walker's speed, the swinging foot forward, so the speed is minus the lower of the two feet's rates."""
    rates = np.array([np.gradient(res.heel[f]) * res.fps for f in FEET])
    both = np.isfinite(rates).all(axis=0)
    out = np.full(len(res.t), np.nan)
    out[both] = -rates[:, both].min(axis=0)
    return out


def _steps(res: ViewMeasurement) -> None:
    """Steps: consecutive heel strikes of alternating feet in one segment; steady when inside a steady stride."""
    events = sorted((t, f) for f in FEET for t in res.heel_strikes[f])
    breaks = 0
    med = float(np.median([s.duration for s in res.strides])) if res.strides else None
    steady = res.steady_strides
    for (ta, fa), (tb, fb) in zip(events, events[1:]):
        if res.segment_of(ta) != res.segment_of(tb) or res.segment_of(ta) < 0:
            continue
        if fa == fb:
            breaks += 1
            continue
        if med and (tb - ta) > 0.8 * med:
            continue
        res.steps.append(Step(fb, ta, tb, any(s.start <= ta and tb <= s.end for s in steady)))
    res.extras["alternation_breaks"] = breaks
    if breaks:
        res.warnings.append(f"{res.view} view: {breaks} time(s) the same foot struck twice without the other "
                            f"foot between (a missed event or a left/right mix-up by the pose model)")
