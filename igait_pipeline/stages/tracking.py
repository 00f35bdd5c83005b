"""People tracks across sampled frames, which of them walks, and which view the walker is seen from.

Stage 2 finds everyone on frames sampled a few times a second (`pose.detect_people`). This module links those
detections into tracks the way SORT / ByteTrack do: each open track predicts its box at the new sample from its
last box and velocity, the cost of giving a detection to a track combines box overlap (IoU), centre distance
(in body heights) and change of size, implausible pairs are gated out, and the Hungarian method
(`scipy.optimize.linear_sum_assignment`) assigns the rest. A detection no track can take starts a new track; a
track unseen for more than `max_missed` samples is closed. A track therefore never jumps from one person to
another: a break makes a new track.

The walker is the track that *walks* (`walk_evidence`), judged on each view's own geometry: within a segment of at
least two seconds the body travels steadily, across the frame (side view) or toward / away from the camera (its size
changes steadily, torso and legs alike, since a change of posture changes one and not the other; front view), and
the legs keep a stride rhythm — a left-minus-right ankle or knee offset swings at a stride period (0.5–2 s) clearly
above the track's own jitter (`stride_rhythm`). Seen from the side the ankles pass each other (a horizontal swing of
±0.3 body heights); seen from the front the foot ahead is lower in the image (a vertical swing of a few hundredths),
so no fixed share of body height serves both. Among tracks that walk, the one seen longest is the walker; "moves
most" is never the criterion, since a track that jumps between people would win it. Several people walking at once
make the choice ambiguous and stop the job, except a clearly taller person walking beside a shorter one
(`choose_walker`).

The view (`view_evidence`) is read from the walker's pose: seen from the side, shoulders and hips are narrow
next to the torso's length; seen from the front they are wide. Travel direction backs this up.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import scipy  # its submodules load on first use: importing the stages stays light

from igait_pipeline.schemas import LM
from igait_pipeline.stages.pose import VISIBLE, Person, _iou


@dataclass(frozen=True)
class TrackerParams:
    """How detections on successive samples (about 1/6 s apart) are linked into tracks.

    Measured on the Sports2D demo (walker crossing a 1768×994 frame, his box ~385 px tall): between samples 1/6 s
    apart his box centre moves 0.05–0.3 body heights and his box height changes by at most ×1.2 (a stride opens
    and closes the box); the person jumping behind him stays more than a body height away.
    """

    max_center_jump: float = 0.6  # centre distance to the predicted box, in the track's body heights
    max_size_ratio: float = 1.5  # larger / smaller box height between linked detections
    min_iou: float = 0.0  # IoU with the predicted box below which a pair also needs the centre test
    max_missed: int = 2  # samples a track may go unseen (occlusion, a missed detection) before it is closed
    w_iou: float = 1.0  # cost = w_iou·(1 − IoU) + w_center·distance + w_size·(size ratio − 1)
    w_center: float = 1.0
    w_size: float = 1.0


@dataclass(frozen=True)
class WalkerParams:
    """When a track walks, and how the view is told. Measured with stage 2's detector (bench/walkers.py on real
    clips, bench/front_scenes.py on the synthetic phone-camera grid; docs/pipeline.md has the table):

    - Sports2D demo, side view, walker crossing in 1.3–6.5 s: ankle x rhythm, stride 1.23 s, swing 4.5× his
      jitter; hips travel 3.9 body heights, 100 % of moves one way; shoulder / hip width 0.07–0.11 of torso
      length. The person jumping behind him travels 0.4 body heights: not a walker.
    - dlj0214/GAIT (ten side views of simulated gait disorders): strides 0.90–1.42 s, swing 1.2–5.6× the jitter,
      travel 1.7–2.7 body heights, width 0.08–0.25 (a phone's wide lens sees the walker at an angle near the
      frame's edges; synthetic children crossing at 2.5–5 m: 0.17–0.20).
    - vtest (10 fps, upscaled): a man walking toward the camera, swing 2.1× (dense pass), torso ×1.30, ρ 0.95; a
      woman walking away, swing 0.94× over 133 samples (false-alarm chance ≈ 0), torso ×0.59, ρ −0.97.
    - Synthetic front views (7 m → 2 m or back, camera 0.8–1.3 m, children 0.95–1.5 m, 100–170 steps/min): the
      vertical ankle offset carries the rhythm toward the camera (swing 3.5× the jitter, 5th percentile 1.9×),
      torso ×3.2; walking away the knee or ankle, swing 3.1×, torso ×0.30. Standing still: swing ≈ 1× at a
      false-alarm chance of 27 %.
    - Pose2Sim demo (a man balancing on a force plate, a woman standing by; four cameras, 1.7 s): a rhythm up to
      41× (swaying) but hips travel ≤ 0.41 body heights and the clip is under `min_seconds`: not walking.
      Facing the camera: width 0.45–0.54 (the jumper in Sports2D: 0.47); the oblique cameras (about 45°):
      0.29–0.43.
    """

    min_samples: int = 4  # a track shorter than this is never the walker
    min_seconds: float = 2.0  # a walk is judged over at least this long (two strides of a child)
    # The legs' rhythm: a sinusoid in a left-minus-right ankle or knee offset (body heights), at a stride period
    # within the band, judged against the track's own jitter rather than a fixed share of body height (a front
    # view's vertical ankle offset swings only ±0.05 body heights; a side view's horizontal one ±0.3).
    stride_band_s: tuple[float, float] = (0.5, 2.0)  # stride periods searched: a child at 170 steps/min 0.71 s
    max_false_alarm: float = 0.01  # chance that jitter alone gives so strong a stride-band peak (F test, corrected)
    min_rhythm_snr: float = 0.5  # the sinusoid's amplitude over the jitter left around it (a floor: with many
    # samples the F test alone would pass a sway far smaller than the jitter)
    min_cycles: float = 1.5  # strides within the walking segment at the period found
    smooth_s: float = 0.6  # running median of hip x and torso size before the walking segment is found
    dense_hz: float = 12.0  # a candidate walker sampled sparser than this whose rhythm is not yet clear is looked at
    # again on its own box at this rate (stage 2's second pass, one pose run per extra frame)
    min_travel_heights: float = 1.0  # side: hips travel at least this many body heights across the frame…
    min_travel_steadiness: float = 0.7  # …with this share of sample-to-sample moves in the main direction
    min_scale_change: float = 1.08  # front: size changes by this factor over the track (approach 3–5 m ≈ ×1.15+)…
    min_scale_steadiness: float = 0.7  # …and steadily: Spearman correlation of log height with time, |ρ| ≥ this…
    min_legs_agreement: float = 0.5  # …and the legs (hip to ankle) change the same way, by at least this share of
    # the torso's change (in log): a change of distance scales the whole body, a change of posture does not (arms
    # raised lift the shoulders, a lean or a turn shortens the torso in the image). The Sports2D demo's person doing
    # jumping jacks, then turning to step sideways: torso ×0.82 over 2.7 s (ρ −0.81) while his legs grow ×1.11
    front_min_width: float = 0.42  # shoulder/hip width over torso length: ≥ this is a front (or back) view
    side_max_width: float = 0.27  # ≤ this is a side view; in between the view is oblique (not judged)

    max_overlap_s: float = 1.0  # another track walking (or travelling steadily) while the walker walks, for longer
    # than this: several walkers…
    companion_max_height_ratio: float = 0.85  # …unless exactly two walk side by side (feet on one line, so at one
    companion_max_feet_gap: float = 0.15  # depth: box bottoms within this many body heights) and one is clearly
    # shorter (median height ratio ≤ the above): iGait films a child, the taller is the accompanying adult

    def as_dict(self) -> dict:
        return asdict(self)


TRACKER = TrackerParams()
WALKER = WalkerParams()


@dataclass
class Track:
    id: int
    samples: list[tuple[float, Person]] = field(default_factory=list)  # (t, person)
    missed: int = 0
    looked_again: int = 0  # samples added by stage 2's second, denser pass (`validity._densify`)

    @property
    def first_pass(self) -> int:
        """Samples on the first pass: the walker is the one seen longest, whoever was looked at again."""
        return len(self.samples) - self.looked_again

    @property
    def last(self) -> Person:
        return self.samples[-1][1]

    def predicted_box(self) -> np.ndarray:
        box = np.asarray(self.last.box, dtype=float)
        if len(self.samples) < 2:
            return box
        prev = np.asarray(self.samples[-2][1].box, dtype=float)
        v = (box - prev) * (1 + self.missed)  # constant velocity over the missed samples too
        centre = (box[:2] + box[2:]) / 2 + (v[:2] + v[2:]) / 2
        half = (box[2:] - box[:2]) / 2
        return np.concatenate([centre - half, centre + half])

    def boxes(self) -> np.ndarray:
        return np.array([p.box for _, p in self.samples], dtype=float)

    def times(self) -> np.ndarray:
        return np.array([t for t, _ in self.samples], dtype=float)


def _cost(track: Track, person: Person, p: TrackerParams, aspect: float = 1.0) -> float:
    pb = track.predicted_box()
    b = np.asarray(person.box, dtype=float)
    th, h = max(pb[3] - pb[1], 1e-6), max(b[3] - b[1], 1e-6)
    size = max(th / h, h / th)
    dx, dy = ((b[:2] + b[2:]) - (pb[:2] + pb[2:])) / 2
    dist = float(np.hypot(dx * aspect, dy)) / th  # in body heights (x is a share of the width)
    iou = _iou(tuple(pb), tuple(b))
    if size > p.max_size_ratio or (iou <= p.min_iou and dist > p.max_center_jump):
        return np.inf
    return p.w_iou * (1 - iou) + p.w_center * dist + p.w_size * (size - 1)


def track_people(samples: list[tuple[float, list[Person]]], params: TrackerParams = TRACKER,
                 aspect: float = 1.0) -> list[Track]:
    """Link the people found on each sample [(t, people)] into tracks (all tracks, closed ones included).

    Boxes are normalised to the frame; aspect (width / height) turns their x into the same units as y."""
    tracks: list[Track] = []
    open_: list[Track] = []
    for t, people in samples:
        taken: set[int] = set()
        seen: set[int] = set()
        if open_ and people:
            cost = np.array([[_cost(tr, pe, params, aspect) for pe in people] for tr in open_])
            rows, cols = scipy.optimize.linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
            for r, c in zip(rows, cols):
                if np.isfinite(cost[r, c]):
                    open_[r].samples.append((t, people[c]))
                    taken.add(c)
                    seen.add(open_[r].id)
        for tr in open_:
            tr.missed = 0 if tr.id in seen else tr.missed + 1
        open_ = [tr for tr in open_ if tr.missed <= params.max_missed]
        for c, pe in enumerate(people):
            if c not in taken:
                tr = Track(len(tracks), [(t, pe)])
                tracks.append(tr)
                open_.append(tr)
    return tracks


# ---------- does a track walk? ----------

def _body_height(lm: np.ndarray, box) -> float:
    return max(float(box[3] - box[1]), 1e-6)


def _seen(lm: np.ndarray, *names: str) -> bool:
    return bool(all(lm[LM[n], 3] >= VISIBLE for n in names))


def _torso(lm: np.ndarray, aspect: float = 1.0) -> float | None:
    """Shoulder-centre to hip-centre distance (in shares of the frame height), or None when not seen."""
    if not _seen(lm, "left_shoulder", "right_shoulder", "left_hip", "right_hip"):
        return None
    sh = (lm[LM["left_shoulder"], :2] + lm[LM["right_shoulder"], :2]) / 2
    hp = (lm[LM["left_hip"], :2] + lm[LM["right_hip"], :2]) / 2
    d = float(np.hypot((sh[0] - hp[0]) * aspect, sh[1] - hp[1]))
    return d if d > 1e-4 else None


def _legs(lm: np.ndarray, aspect: float = 1.0) -> float | None:
    """Hip-to-ankle distance (in shares of the frame height), the mean of the legs seen, or None."""
    lengths = [float(np.hypot((lm[LM[f"{s}_hip"], 0] - lm[LM[f"{s}_ankle"], 0]) * aspect,
                              lm[LM[f"{s}_hip"], 1] - lm[LM[f"{s}_ankle"], 1]))
               for s in ("left", "right") if _seen(lm, f"{s}_hip", f"{s}_knee", f"{s}_ankle")]
    d = float(np.mean(lengths)) if lengths else 0.0
    return d if d > 1e-4 else None


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(y) == 0:
        return 0.0
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def _running_median(values: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(values) < 3:
        return values
    h = k // 2
    return np.array([np.median(values[max(0, i - h):i + h + 1]) for i in range(len(values))])


# Leg signals tested for a stride rhythm: left minus right, in body heights (x made commensurate by the aspect).
LEG_SIGNALS = {"ankle_x": ("ankle", 0), "ankle_y": ("ankle", 1), "knee_x": ("knee", 0), "knee_y": ("knee", 1)}


@dataclass
class Rhythm:
    """The strongest stride-band sinusoid in one leg signal (least squares over irregular sample times, on top
    of a quadratic trend), and how sure it is not jitter."""

    signal: str  # which left-minus-right offset (LEG_SIGNALS)
    samples: int
    period_s: float | None
    amplitude: float  # of the fitted sinusoid, in body heights
    jitter: float  # SD of what the trend and the sinusoid leave (the track's own jitter), in body heights
    r2: float  # share of the detrended variance the sinusoid explains
    false_alarm: float  # chance that jitter alone gives so strong a stride-band peak (F test × frequencies tried)
    cycles: float  # strides in the window at that period
    series: dict = field(default_factory=dict)  # {t, offset, fit}: the samples and the fitted trend + sinusoid

    @property
    def snr(self) -> float:
        return self.amplitude / self.jitter if self.jitter > 0 else 0.0


def stride_rhythm(t: np.ndarray, y: np.ndarray, signal: str, p: WalkerParams, tests: int = 1) -> Rhythm:
    """Fit trend + sinusoid at every stride-band frequency (periods `p.stride_band_s`, 4× oversampled) and keep
    the best. The false-alarm chance is the F test's p-value for the sinusoid's two terms, times the number of
    independent frequencies in the band over this window and the number of signals tried (`tests`)."""
    n = len(t)
    none = Rhythm(signal, n, None, 0.0, 0.0, 0.0, 1.0, 0.0)
    if n < 8 or np.ptp(t) <= 0:
        return none
    span = float(t[-1] - t[0])
    tc = (t - t.mean()) / span
    trend = np.stack([np.ones(n), tc, tc ** 2], axis=1)
    coef0, *_ = np.linalg.lstsq(trend, y, rcond=None)
    rss0 = float(((y - trend @ coef0) ** 2).sum())
    if rss0 <= 1e-12:
        return none
    f_lo, f_hi = 1 / p.stride_band_s[1], 1 / p.stride_band_s[0]
    best = (np.inf, 0.0, 0.0, y)
    for f in np.arange(f_lo, f_hi + 1e-9, 1 / (4 * span)):
        w = 2 * np.pi * f * t
        design = np.column_stack([trend, np.cos(w), np.sin(w)])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        rss = float(((y - design @ coef) ** 2).sum())
        if rss < best[0]:
            best = (rss, float(f), float(np.hypot(coef[3], coef[4])), design @ coef)
    rss, f, amp, fit = best
    dof = n - 5
    fstat = ((rss0 - rss) / 2) / max(rss / dof, 1e-18)
    independent = max(1.0, span * (f_hi - f_lo))
    fa = float(min(1.0, scipy.stats.f.sf(fstat, 2, dof) * independent * tests))
    series = {"t": np.round(t, 3).tolist(), "offset": np.round(y, 4).tolist(), "fit": np.round(fit, 4).tolist()}
    return Rhythm(signal, n, 1 / f, amp, float(np.sqrt(rss / dof)), 1 - rss / rss0, fa, span * f, series)


def leg_rhythm(samples: list[tuple[float, Person]], p: WalkerParams, aspect: float = 1.0) -> Rhythm:
    """The clearest stride rhythm among the left-minus-right ankle and knee offsets (horizontal: the legs pass
    each other, side view; vertical: the foot ahead is lower in the image, front view)."""
    rhythms = []
    for name, (joint, axis) in LEG_SIGNALS.items():
        t, y = [], []
        for ts, pe in samples:
            lm = pe.landmarks
            if _seen(lm, f"left_{joint}", f"right_{joint}"):
                d = (lm[LM[f"left_{joint}"], axis] - lm[LM[f"right_{joint}"], axis]) * (aspect if axis == 0 else 1)
                t.append(ts)
                y.append(d / _body_height(lm, pe.box))
        rhythms.append(stride_rhythm(np.array(t), np.array(y), name, p, tests=len(LEG_SIGNALS)))
    return min(rhythms, key=lambda r: (r.false_alarm, -r.snr))


def _segment(t: np.ndarray, s: np.ndarray, p: WalkerParams) -> tuple[int, int]:
    """The walking segment of a progress signal: from its (smoothed) lowest to its highest point, in time order.
    Standing first, or turning back at the end, falls outside it."""
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    smooth = _running_median(s, max(1, int(round(p.smooth_s / max(dt, 1e-3))) | 1))
    i, j = int(np.argmin(smooth)), int(np.argmax(smooth))
    return (i, j) if i <= j else (j, i)


@dataclass
class Travel:
    kind: str  # "across" (hips, side view) or "scale" (torso length, front view)
    start: float
    end: float
    change: float  # across: body heights travelled; scale: size at the end over size at the start
    steadiness: float  # across: share of moves in the main direction; scale: Spearman ρ of size with time
    ok: bool
    legs: float | None = None  # scale: the legs' size change over the same segment (trend), None if too few seen

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class WalkEvidence:
    samples: int
    rhythm: Rhythm
    across: Travel
    scale: Travel
    hip_travel: float  # horizontal travel of the hips over the whole track, share of the frame width
    periodic: bool
    dense: bool = False  # the walker's segment was looked at again more densely
    camera_pan: float = 0.0  # how far the background slid across the picture while the track was seen (frame widths)
    crosses_picture: bool = False  # the hips' travel passes `across`'s test in the picture too (no pan taken off)

    @property
    def crosses(self) -> bool:
        return self.across.ok

    @property
    def approaches(self) -> bool:
        return self.scale.ok

    @property
    def walks(self) -> bool:
        return self.periodic and (self.crosses or self.approaches)

    @property
    def travel_heights(self) -> float:
        return self.across.change

    @property
    def scale_change(self) -> float:
        return self.scale.change

    @property
    def window(self) -> tuple[float, float]:
        """The walking segment: the travel that passed (the longer if both), else the whole track."""
        ok = [tr for tr in (self.across, self.scale) if tr.ok]
        if ok:
            best = max(ok, key=lambda tr: tr.seconds)
            return best.start, best.end
        return min(self.across.start, self.scale.start), max(self.across.end, self.scale.end)

    def as_dict(self) -> dict:
        r = self.rhythm
        d = {"samples": self.samples, "walks": self.walks, "periodic": self.periodic,
             "rhythm_signal": r.signal, "stride_period_s": r.period_s, "rhythm_amplitude": r.amplitude,
             "rhythm_jitter": r.jitter, "rhythm_snr": r.snr, "rhythm_r2": r.r2,
             "rhythm_false_alarm": r.false_alarm, "rhythm_cycles": r.cycles, "rhythm_samples": r.samples,
             "crosses": self.crosses, "travel_heights": self.across.change,
             "travel_steadiness": self.across.steadiness, "travel_seconds": self.across.seconds,
             "approaches": self.approaches, "scale_change": self.scale.change,
             "scale_steadiness": self.scale.steadiness, "scale_seconds": self.scale.seconds,
             "scale_legs": self.scale.legs,
             "hip_travel": self.hip_travel, "camera_pan": self.camera_pan, "window": list(self.window),
             "dense": self.dense}
        d = {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}
        d["rhythm_series"] = r.series
        return d


def _legs_change(track: Track, start: float, end: float, aspect: float, min_samples: int = 4) -> float | None:
    """The legs' size change from start to end: the Theil–Sen trend of log hip-to-ankle length over the samples
    between them where a leg is seen, when they are at least `min_samples` and span at least half of the time
    (feet cut by the frame's edge near the camera leave too few: None, nothing to say)."""
    rows = [(ts, _legs(pe.landmarks, aspect)) for ts, pe in track.samples if start - 1e-6 <= ts <= end + 1e-6]
    rows = [(ts, d) for ts, d in rows if d]
    if len(rows) < min_samples or rows[-1][0] - rows[0][0] < (end - start) / 2:
        return None
    t, d = np.array(rows).T
    return float(np.exp(scipy.stats.theilslopes(np.log(d), t)[0] * (end - start)))


def _across(t: np.ndarray, x: np.ndarray, p: WalkerParams) -> Travel:
    """Travel across (side view): hip x in body heights over the segment from its lowest to its highest point."""
    i, j = _segment(t, x, p)
    moves = np.diff(x[i:j + 1])
    moves = moves[np.abs(moves) > 1e-4]
    steady = float(max((moves > 0).mean(), (moves < 0).mean())) if len(moves) else 0.0
    change = float(np.ptp(_running_median(x[i:j + 1], 3))) if j > i else 0.0
    return Travel("across", float(t[i]), float(t[j]), change, steady,
                  bool(t[j] - t[i] >= p.min_seconds and change >= p.min_travel_heights
                       and steady >= p.min_travel_steadiness))


def walk_evidence(track: Track, p: WalkerParams = WALKER, aspect: float = 1.0, dense: bool = False,
                  pan: tuple[np.ndarray, np.ndarray] | None = None) -> WalkEvidence:
    """How this track walks: a stride rhythm in the legs within a segment over which the body travels steadily,
    across the scene (side) or toward / away from the camera (front). aspect: the frame's width / height. pan:
    (sample times, the background's position across the picture, frame widths: `camera.pan_track`): the hips'
    travel is measured against the background, so a walker whom a panning camera keeps in the middle of the
    picture still travels, and a person standing still in a panning shot does not."""
    t = track.times()
    heights = np.array([_body_height(pe.landmarks, pe.box) for _, pe in track.samples])
    med_h = float(np.median(heights)) if len(heights) else 1.0
    image_hips = np.array([pe.hip[0] for _, pe in track.samples])
    background = np.interp(t, *pan) if pan is not None and len(t) else np.zeros(len(t))
    hips = image_hips - background
    # Across (side view, `_across`) against the background, and in the picture.
    across = Travel("across", float(t[0]) if len(t) else 0.0, float(t[-1]) if len(t) else 0.0, 0.0, 0.0, False)
    scale = Travel("scale", across.start, across.end, 1.0, 0.0, False)
    in_picture = across
    if len(t) >= 3:
        across = _across(t, hips * aspect / med_h, p)
        in_picture = _across(t, image_hips * aspect / med_h, p) if pan is not None else across
        # Scale (front view): torso length (lunges leave it alone) on the samples where shoulders and hips are
        # seen — never the box height, which a person cut by the frame's edge changes — from its smallest to its
        # largest, whichever comes first: toward or away. The legs must change the same way over that segment:
        # shoulders lifted by raised arms, a lean or a turn shorten the torso alone.
        torso = np.array([_torso(pe.landmarks, aspect) or np.nan for _, pe in track.samples])
        ts, size = t[~np.isnan(torso)], np.log(torso[~np.isnan(torso)])
        i, j = _segment(ts, size, p) if len(ts) >= 3 else (0, 0)
        if j > i:
            seg = _running_median(size[i:j + 1], 3)
            ratio = float(np.exp(seg[-1] - seg[0]))
            rho = _spearman(ts[i:j + 1], size[i:j + 1])
            legs = _legs_change(track, float(ts[i]), float(ts[j]), aspect)
            whole_body = legs is None or (ratio != 1 and np.log(legs) / np.log(ratio) >= p.min_legs_agreement)
            scale = Travel("scale", float(ts[i]), float(ts[j]), ratio, rho,
                           bool(ts[j] - ts[i] >= p.min_seconds and max(ratio, 1 / ratio) >= p.min_scale_change
                                and abs(rho) >= p.min_scale_steadiness and np.sign(rho) == np.sign(np.log(ratio))
                                and whole_body), legs)
    ev = WalkEvidence(len(track.samples), Rhythm("-", 0, None, 0.0, 0.0, 0.0, 1.0, 0.0), across, scale,
                      float(np.ptp(image_hips)) if len(hips) else 0.0, False, dense,
                      float(np.ptp(background)) if len(t) else 0.0, in_picture.ok)
    a, b = ev.window
    ev.rhythm = leg_rhythm([(ts, pe) for ts, pe in track.samples if a - 1e-6 <= ts <= b + 1e-6], p, aspect)
    r = ev.rhythm
    ev.periodic = bool(r.false_alarm <= p.max_false_alarm and r.snr >= p.min_rhythm_snr
                       and r.cycles >= p.min_cycles)
    return ev


@dataclass
class WalkerChoice:
    """Who the walker is, and who else walks at the same time."""

    track: Track | None  # the walker; if nobody walks, the track seen longest (so the report can say what it saw)
    walk: WalkEvidence | None
    tracks_walking: int = 0
    several: list[int] = field(default_factory=list)  # ids of other tracks walking at the walker's time: refused
    companion: int | None = None  # id of a taller person walking beside the walker (a parent): ignored, warned
    overlap_s: float = 0.0  # longest time another track walked at the same time as the walker
    elsewhere: list[int] = field(default_factory=list)  # ids of tracks that walk at other times (warned)


def _overlap(walker: Track, other: WalkEvidence) -> float:
    """Seconds the other track walks (or travels) while the walker is in view."""
    (a0, a1), (b0, b1) = (walker.samples[0][0], walker.samples[-1][0]), other.window
    return max(0.0, min(a1, b1) - max(a0, b0))


def _side_by_side(a: Track, b: Track, p: WalkerParams) -> float | None:
    """Median height of a over b on the samples where both are seen, when their feet are on one line (the same
    depth on level ground); None when they are not side by side."""
    rows = {round(t, 3): pe.box for t, pe in b.samples}
    pairs = [(pe.box, rows[round(t, 3)]) for t, pe in a.samples if round(t, 3) in rows]
    if len(pairs) < 3:
        return None
    ha = np.array([x[3] - x[1] for x, _ in pairs])
    hb = np.array([y[3] - y[1] for _, y in pairs])
    gap = np.abs(np.array([x[3] - y[3] for x, y in pairs])) / np.maximum(ha, hb)
    return float(np.median(ha / hb)) if float(np.median(gap)) <= p.companion_max_feet_gap else None


def choose_walker(tracks: list[Track], p: WalkerParams = WALKER, aspect: float = 1.0,
                  evidence: dict[int, WalkEvidence] | None = None,
                  pan: tuple[np.ndarray, np.ndarray] | None = None) -> WalkerChoice:
    """The walker: among tracks that walk, the one seen on most samples of the first pass (a track looked at again more
    densely is not seen longer for it). Another track walking at the same time (longer than `p.max_overlap_s`)
    makes the choice ambiguous (`several`), except one clearly taller person walking side by side with a shorter
    one: then the shorter is the walker (the child) and the taller its `companion`. If nobody walks, the track
    seen longest, with its evidence. `evidence` may hold evidence already measured (by track id)."""
    evidence = dict(evidence or {})
    eligible = [tr for tr in tracks if len(tr.samples) >= p.min_samples] or tracks
    if not eligible:
        return WalkerChoice(None, None)
    scored = []
    for tr in eligible:
        if tr.id not in evidence:
            evidence[tr.id] = walk_evidence(tr, p, aspect, pan=pan)
        scored.append((tr, evidence[tr.id]))
    walking = [s for s in scored if s[1].walks]
    if not walking:
        tr, ev = max(scored, key=lambda s: (s[0].first_pass, -s[1].rhythm.false_alarm))
        return WalkerChoice(tr, ev)
    tr, ev = max(walking, key=lambda s: (s[0].first_pass, -s[1].rhythm.false_alarm))
    # Others moving through the scene: walking, or travelling steadily across / toward / away though their legs
    # are too small or too briefly seen for a rhythm (people crossing far behind the walker). Without a rhythm,
    # crossing must hold in the picture as well as against the background: a figure fixed in the picture of a
    # panning shot (pasted on, or carried with the camera) is not counted as a second walker on the pan alone.
    moving = [s for s in scored if s[1].walks or (s[1].crosses and s[1].crosses_picture) or s[1].approaches]
    others = [(o, oe, _overlap(tr, oe)) for o, oe in moving if o is not tr]
    others = [(o, oe, ov) for o, oe, ov in others if ov > p.max_overlap_s]
    longest = max((ov for *_, ov in others), default=0.0)
    elsewhere = [o.id for o, _ in walking if o is not tr and all(o is not x for x, *_ in others)]
    if len(others) == 1 and others[0][1].walks:
        o, oe, _ = others[0]
        ratio = _side_by_side(tr, o, p)
        if ratio is not None and min(ratio, 1 / ratio) <= p.companion_max_height_ratio:
            child, adult = ((tr, ev), o) if ratio < 1 else ((o, oe), tr)
            return WalkerChoice(child[0], child[1], len(walking), [], adult.id, longest, elsewhere)
    return WalkerChoice(tr, ev, len(walking), [o.id for o, *_ in others], None, longest, elsewhere)


# ---------- which view? ----------

@dataclass
class ViewEvidence:
    seen: str  # "front", "side" or "oblique" (not judged), or "unknown" (too few good samples)
    width_ratio: float | None  # median shoulder / hip width over torso length
    samples: int  # samples with shoulders and hips visible
    travel: str  # "across", "toward", "away", "both" or "none"

    def as_dict(self) -> dict:
        d = asdict(self)
        if d["width_ratio"] is not None:
            d["width_ratio"] = round(d["width_ratio"], 4)
        return d


def view_evidence(track: Track, walk: WalkEvidence, p: WalkerParams = WALKER, aspect: float = 1.0) -> ViewEvidence:
    ratios = []
    for _, pe in track.samples:
        lm, torso = pe.landmarks, _torso(pe.landmarks, aspect)
        if torso:
            shoulders = abs(lm[LM["left_shoulder"], 0] - lm[LM["right_shoulder"], 0])
            hips = abs(lm[LM["left_hip"], 0] - lm[LM["right_hip"], 0])
            ratios.append(float(shoulders + hips) * aspect / 2 / torso)
    travel = ("both" if walk.crosses and walk.approaches else "across" if walk.crosses else
              ("toward" if walk.scale_change > 1 else "away") if walk.approaches else "none")
    if len(ratios) < 3:
        return ViewEvidence("unknown", None, len(ratios), travel)
    r = float(np.median(ratios))
    seen = "front" if r >= p.front_min_width else "side" if r <= p.side_max_width else "oblique"
    return ViewEvidence(seen, r, len(ratios), travel)
