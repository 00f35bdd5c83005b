"""Stage 2: is one whole person visible enough, and walking, in each view?

On frames sampled at about `SAMPLE_HZ`, every person is found (`pose.detect_people`), people are linked into
tracks across samples by their hip position, and the walker is the track that moves most: across the frame in
the side view, toward (or away from) the camera in the front view. The report keeps the walker's box per sample
(stage 3 crops around it; stage 4 uses it to stay on the walker when someone else is in view).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from igait_pipeline.schemas import ValidationReport, ViewValidation
from igait_pipeline.stages import media
from igait_pipeline.stages.pose import MediaPipePose, Person, PoseEstimator, detect_people, full_body

SAMPLE_HZ = 4.0
MAX_SAMPLES = 90  # long videos are sampled more sparsely to stay near this many samples ...
MAX_SAMPLE_GAP_S = 0.5  # ... but never further apart than this: tracks link people by hip position between samples


def sampling_step(fps: float, frames: int) -> int:
    """Frames between samples: about SAMPLE_HZ, thinned towards MAX_SAMPLES on long videos, but never more than
    MAX_SAMPLE_GAP_S apart (a 125 s walk sampled 1.4 s apart broke the walker's track into pieces)."""
    per_hz = int(round(fps / SAMPLE_HZ))
    thinned = int(np.ceil(frames / MAX_SAMPLES))
    return max(1, per_hz, min(thinned, int(fps * MAX_SAMPLE_GAP_S)))

THRESHOLDS = {
    "min_person_ratio": 0.4,  # share of samples with anyone in view
    "min_full_body_ratio": 0.3,  # share of samples with the walker seen head to ankles
    "min_hip_travel": 0.2,  # side view: hips cross at least this share of the frame width
    "min_scale_change": 1.25,  # front view: body height grows (or shrinks) by at least this factor
}


@dataclass
class Track:
    samples: list[tuple[float, Person]] = field(default_factory=list)  # (t, person)

    @property
    def last(self) -> Person:
        return self.samples[-1][1]

    def hip_travel(self) -> float:
        xs = [p.hip[0] for _, p in self.samples]
        return float(max(xs) - min(xs)) if xs else 0.0

    def scale_change(self) -> float:
        hs = [p.height for _, p in self.samples if p.height > 0]
        if len(hs) < 2:
            return 1.0
        k = max(1, len(hs) // 4)
        first, last = float(np.median(hs[:k])), float(np.median(hs[-k:]))
        return last / first if first > 0 else 1.0

    def motion(self) -> float:
        """How much this track walks: horizontal travel, or the log of its change in size."""
        return max(self.hip_travel(), abs(np.log(max(self.scale_change(), 1e-6))))


def _link(tracks: list[Track], t: float, people: list[Person], max_jump: float = 0.25) -> None:
    """Greedy nearest-hip association of this sample's people to the open tracks."""
    free = list(range(len(tracks)))
    for person in sorted(people, key=lambda p: -p.height):
        best, best_d = None, max_jump
        for k in free:
            d = float(np.hypot(person.hip[0] - tracks[k].last.hip[0], person.hip[1] - tracks[k].last.hip[1]))
            if d < best_d:
                best, best_d = k, d
        if best is None:
            tracks.append(Track([(t, person)]))
        else:
            tracks[best].samples.append((t, person))
            free.remove(best)


def analyse_view(video: str | os.PathLike, view: str, estimator: PoseEstimator | None = None,
                 thresholds: dict = THRESHOLDS, progress: Callable[[int, int], None] | None = None
                 ) -> ViewValidation:
    info = media.probe(video)
    step = sampling_step(info.fps, info.frames)
    own = estimator is None
    est = estimator or MediaPipePose(video=False)
    tracks: list[Track] = []
    sampled = with_person = with_many = 0
    try:
        for i, t, frame in media.iter_frames(video, step=step):
            people = detect_people(est, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            sampled += 1
            with_person += bool(people)
            with_many += len(people) > 1
            _link(tracks, t, people)
            if progress and sampled % 10 == 0:
                progress(sampled, info.frames // step)
    finally:
        if own:
            est.close()
    if sampled == 0:
        raise media.MediaError(f"{view} video: no frame could be decoded")
    long_tracks = [tr for tr in tracks if len(tr.samples) >= 3] or tracks
    walker = max(long_tracks, key=Track.motion) if long_tracks else None

    reasons, warnings = [], []
    person_ratio = with_person / sampled
    full_ratio = sum(full_body(p.landmarks) for _, p in walker.samples) / sampled if walker else 0.0
    travel = walker.hip_travel() if walker else 0.0
    scale = walker.scale_change() if walker else 1.0
    crosses = travel >= thresholds["min_hip_travel"]
    approaches = max(scale, 1 / scale) >= thresholds["min_scale_change"]
    walking = crosses or approaches
    if person_ratio < thresholds["min_person_ratio"]:
        reasons.append(f"{view} view: a person is visible in only {person_ratio:.0%} of sampled frames "
                       f"(need {thresholds['min_person_ratio']:.0%})" if with_person else
                       f"{view} view: no person found in the video")
    elif full_ratio < thresholds["min_full_body_ratio"]:
        reasons.append(f"{view} view: the whole body (head to ankles) is visible in only {full_ratio:.0%} of "
                       f"sampled frames (need {thresholds['min_full_body_ratio']:.0%})")
    if walker and not walking:
        reasons.append(f"{view} view: the person does not walk (hips travel {travel:.0%} of the frame width, "
                       f"body size changes ×{scale:.2f})")
    many_ratio = with_many / sampled
    if many_ratio > 0:
        warnings.append(f"{view} view: more than one person in {many_ratio:.0%} of sampled frames; the walker is "
                        f"the one whose hips move most, others are ignored")
    if walking and view == "side" and not crosses:
        warnings.append("side view: the walker approaches the camera instead of crossing the frame")
    if walking and view == "front" and not approaches:
        warnings.append("front view: the walker crosses the frame instead of approaching the camera")

    box = None
    track_rows: list[list[float]] = []
    if walker:
        boxes = np.array([p.box for _, p in walker.samples])
        box = [float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max())]
        track_rows = [[round(t, 3), *[round(v, 4) for v in p.box]] for t, p in walker.samples]
    return ViewValidation(frames_total=info.frames, frames_sampled=sampled, fps=info.fps,
                          person_ratio=round(person_ratio, 4), full_body_ratio=round(full_ratio, 4),
                          multiple_people_ratio=round(many_ratio, 4), walking=walking,
                          hip_travel=round(travel, 4), scale_change=round(scale, 4), walker_box=box,
                          track=track_rows, reasons=reasons, warnings=warnings)


def validate(videos: dict[str, str | os.PathLike], job_id: str, thresholds: dict = THRESHOLDS,
             progress: Callable[[str, int, int], None] | None = None) -> ValidationReport:
    """Analyse each view ({'front': path, 'side': path}) with one still-image estimator."""
    views = {}
    with MediaPipePose(video=False) as est:
        for view, path in videos.items():
            cb = (lambda done, total, v=view: progress(v, done, total)) if progress else None
            views[view] = analyse_view(path, view, est, thresholds, cb)
    reasons = [r for v in views.values() for r in v.reasons]
    return ValidationReport(job_id=job_id, valid=not reasons, views=views, thresholds=dict(thresholds),
                            reasons=reasons)
