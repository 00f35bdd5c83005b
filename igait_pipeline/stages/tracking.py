"""People tracks across sampled frames, which of them walks, and which view the walker is seen from.

Stage 2 finds everyone on frames sampled a few times a second (`pose.detect_people`). This module links those
detections into tracks the way SORT / ByteTrack do: each open track predicts its box at the new sample from its
last box and velocity, the cost of giving a detection to a track combines box overlap (IoU), centre distance
(in body heights) and change of size, implausible pairs are gated out, and the Hungarian method
(`scipy.optimize.linear_sum_assignment`) assigns the rest. A detection no track can take starts a new track; a
track unseen for more than `max_missed` samples is closed. A track therefore never jumps from one person to
another: a break makes a new track.

The walker is the track that *walks* (`walk_evidence`): legs alternate (the left–right ankle offset changes sign
again and again) and the body travels steadily, across the frame (side view) or toward / away from the camera
(its size changes steadily; front view). Among tracks that walk, the one seen longest is the walker; "moves most"
is never the criterion, since a track that jumps between people would win it.

The view (`view_evidence`) is read from the walker's pose: seen from the side, shoulders and hips are narrow
next to the torso's length; seen from the front they are wide. Travel direction backs this up.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import pairwise

import numpy as np
from scipy.optimize import linear_sum_assignment

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
    """When a track walks, and how the view is told. Thresholds measured on real clips with stage 2's detector at
    6 Hz (bench/walkers.py; docs/pipeline.md):

    - Sports2D demo, side view, walker crossing in 1.3–6.5 s: legs alternate 8× (4× in 2.5 s); hips travel 4.0
      body heights (1.9 in 2.5 s), 100 % of sample-to-sample moves in one direction; shoulder / hip width 0.07–0.11
      of torso length. The person jumping behind him: legs "alternate" 7× (left / right swaps in the air) but
      he travels 0.4 body heights and his size changes ×0.91 unsteadily (ρ = −0.35): not a walker.
    - The same walker followed by a camera zooming in ×1.15 over 3.2 s (as someone approaching over a few metres;
      the issue's real walker grew ×1.15): torso ×1.16, ρ = 0.95, legs alternate 5×.
    - Pose2Sim demo (a man balancing on a force plate, a woman standing by; four cameras, 1.7 s): legs alternate
      at most 3×, hips travel ≤ 0.45 body heights, size changes up to ×1.14 with ρ up to 0.88 in 1.5 s — ruled out
      by travel and by `min_seconds`. Facing the camera: width 0.45–0.54 (the jumper in Sports2D: 0.47); the
      oblique cameras (about 45°): 0.29–0.43.
    - A still person (a frozen frame): no alternation, no travel.
    """

    min_samples: int = 4  # a track shorter than this is never the walker
    min_seconds: float = 2.0  # a walk is judged over at least this long (two strides of a child)
    min_alternations: int = 2  # sign changes of the left–right ankle offset (L-R-L at least)
    min_leg_offset: float = 0.04  # |offset| in body heights that counts as one leg ahead (hysteresis)
    min_travel_heights: float = 1.0  # side: hips travel at least this many body heights across the frame…
    min_travel_steadiness: float = 0.7  # …with this share of sample-to-sample moves in the main direction
    min_scale_change: float = 1.08  # front: size changes by this factor over the track (approach 3–5 m ≈ ×1.15+)…
    min_scale_steadiness: float = 0.7  # …and steadily: Spearman correlation of log height with time, |ρ| ≥ this
    front_min_width: float = 0.42  # shoulder/hip width over torso length: ≥ this is a front (or back) view
    side_max_width: float = 0.2  # ≤ this is a side view; in between the view is oblique (not judged)

    def as_dict(self) -> dict:
        return asdict(self)


TRACKER = TrackerParams()
WALKER = WalkerParams()


@dataclass
class Track:
    id: int
    samples: list[tuple[float, Person]] = field(default_factory=list)  # (t, person)
    missed: int = 0

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
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
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


def _alternations(values: list[float], amp: float) -> int:
    """Sign changes of a signal, counting only values beyond ±amp (hysteresis against jitter)."""
    signs = [1 if v > amp else -1 for v in values if abs(v) > amp]
    return sum(a != b for a, b in pairwise(signs))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(y) == 0:
        return 0.0
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass
class WalkEvidence:
    samples: int
    alternations: int  # sign changes of the left–right ankle offset
    alternation_axis: str  # "x" (legs pass each other sideways in the image: side view) or "y"
    travel_heights: float  # horizontal travel of the hips, in body heights
    travel_steadiness: float  # share of sample-to-sample hip moves in the main direction
    hip_travel: float  # horizontal travel of the hips, share of the frame width
    scale_change: float  # torso length, last quarter of samples over first quarter (medians)
    scale_steadiness: float  # Spearman correlation of torso length with time
    crosses: bool
    approaches: bool
    alternates: bool

    @property
    def walks(self) -> bool:
        return self.alternates and (self.crosses or self.approaches)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["walks"] = self.walks
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def walk_evidence(track: Track, p: WalkerParams = WALKER, aspect: float = 1.0) -> WalkEvidence:
    """How this track walks. aspect: the frame's width / height (hip x is a share of the width)."""
    lms = [pe.landmarks for _, pe in track.samples]
    heights = np.array([_body_height(pe.landmarks, pe.box) for _, pe in track.samples])
    t = track.times()
    offsets = {"x": [], "y": []}
    for lm, h in zip(lms, heights):
        if _seen(lm, "left_ankle", "right_ankle"):
            d = (lm[LM["left_ankle"], :2] - lm[LM["right_ankle"], :2]) * (aspect, 1.0) / h
            offsets["x"].append(float(d[0]))
            offsets["y"].append(float(d[1]))
    alts = {k: _alternations(v, p.min_leg_offset) for k, v in offsets.items()}
    axis = max(alts, key=alts.get)
    hips = np.array([pe.hip[0] for _, pe in track.samples])
    med_h = float(np.median(heights))
    travel = float(np.ptp(hips)) if len(hips) else 0.0
    moves = np.diff(hips)
    moves = moves[np.abs(moves) > 1e-4]
    steady = float(max((moves > 0).mean(), (moves < 0).mean())) if len(moves) else 0.0
    # Size for the approach test: torso length (shoulders to hips), which raised arms and lunges leave alone;
    # the box height where the torso is not seen.
    size = np.array([_torso(pe.landmarks, aspect) or h for (_, pe), h in zip(track.samples, heights)])
    k = max(1, len(size) // 4)
    scale = float(np.median(size[-k:]) / np.median(size[:k])) if len(size) >= 2 else 1.0
    rho = _spearman(t, size)
    duration = float(t[-1] - t[0]) if len(t) else 0.0
    long_enough = duration >= p.min_seconds
    travel_heights = travel * aspect / med_h
    crosses = long_enough and travel_heights >= p.min_travel_heights and steady >= p.min_travel_steadiness
    approaches = long_enough and max(scale, 1 / scale) >= p.min_scale_change and abs(rho) >= p.min_scale_steadiness \
        and np.sign(rho) == np.sign(np.log(scale))
    return WalkEvidence(len(track.samples), alts[axis], axis, travel_heights, steady, travel, scale, rho,
                        bool(crosses), bool(approaches), alts[axis] >= p.min_alternations)


def choose_walker(tracks: list[Track], p: WalkerParams = WALKER,
                  aspect: float = 1.0) -> tuple[Track | None, WalkEvidence | None]:
    """The walker: among tracks that walk, the one seen on most samples; if none walks, the longest track
    (so the report can say what it saw), with its evidence."""
    scored = [(tr, walk_evidence(tr, p, aspect)) for tr in tracks if len(tr.samples) >= p.min_samples]
    if not scored:
        scored = [(tr, walk_evidence(tr, p, aspect)) for tr in tracks]
    if not scored:
        return None, None
    return max(scored, key=lambda s: (s[1].walks, s[1].samples, s[1].alternations))


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
