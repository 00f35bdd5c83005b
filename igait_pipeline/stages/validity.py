"""Stage 2: is one whole person visible enough, and walking, in each view, and is each view the one its slot
says?

On frames sampled at about `sample_hz`, every person is found (`pose.detect_people`) and people are linked into
tracks (`tracking.track_people`: SORT-style, a track never jumps between people). The walker is the track that
walks: alternating legs plus steady travel across the frame or toward / away from the camera
(`tracking.choose_walker`). The view is read from the walker's pose (`tracking.view_evidence`); a side view in the
front slot, a front view in the side slot, or the same view twice stops the job here with what was seen.

The report keeps the walker's track (box per sample): stage 3 crops around it, stage 4 keeps only detections on it.
"""
from __future__ import annotations

import os
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Literal

import cv2
import numpy as np

from igait_pipeline.schemas import ValidationReport, ViewValidation
from igait_pipeline.stages import media
from igait_pipeline.stages.pose import MediaPipePose, PoseEstimator, detect_people, full_body
from igait_pipeline.stages.tracking import TrackerParams, WalkerParams, choose_walker, track_people, view_evidence


@dataclass(frozen=True)
class ValidityParams:
    """Stage 2's parameters; recorded in validation.json (`params`).

    view_check: "refuse" stops a job whose views are in the wrong slots or show the same view twice; "warn" only
    records it (for the public demo, whose one licensed walking clip is a side view used for both slots).
    Swapped slots are refused rather than swapped back: the slot is the only record of which video is which, a
    swap often means the whole recording was mixed up, and a silent fix would score a job the family did not
    submit. Re-uploading is cheap; a wrong score is not.
    """

    sample_hz: float = 6.0  # legs must be seen alternating: ≥ 5 samples per stride of a child (~1.2 Hz)
    max_samples: int = 90  # long videos are sampled more sparsely to stay near this many samples…
    max_sample_gap_s: float = 0.25  # …but never further apart: ≥ 4 samples per stride, and tracks stay linked
    min_person_ratio: float = 0.4  # share of samples with anyone in view
    min_full_body_ratio: float = 0.3  # share of samples with the walker seen head to ankles
    view_check: Literal["refuse", "warn"] = "refuse"
    tracker: TrackerParams = field(default_factory=TrackerParams)
    walker: WalkerParams = field(default_factory=WalkerParams)

    def thresholds(self) -> dict[str, float]:
        return {"min_person_ratio": self.min_person_ratio, "min_full_body_ratio": self.min_full_body_ratio,
                "min_travel_heights": self.walker.min_travel_heights,
                "min_scale_change": self.walker.min_scale_change,
                "min_alternations": float(self.walker.min_alternations)}


PARAMS = ValidityParams()
MAX_SAMPLE_GAP_S = PARAMS.max_sample_gap_s


def sampling_step(fps: float, frames: int, params: ValidityParams = PARAMS) -> int:
    """Frames between samples: about `sample_hz`, thinned towards `max_samples` on long videos, but never more
    than `max_sample_gap_s` apart (a 125 s walk sampled 1.4 s apart broke the walker's track into pieces, and
    legs cannot be seen alternating with fewer than about 4 samples per stride)."""
    per_hz = round(fps / params.sample_hz)
    thinned = int(np.ceil(frames / params.max_samples))
    return max(1, per_hz, min(thinned, int(fps * params.max_sample_gap_s)))


def analyse_view(video: str | os.PathLike, view: str, estimator: PoseEstimator | None = None,
                 params: ValidityParams = PARAMS, progress: Callable[[int, int], None] | None = None
                 ) -> ViewValidation:
    info = media.probe(video)
    step = sampling_step(info.fps, info.frames, params)
    own = estimator is None
    est = estimator or MediaPipePose(video=False)
    samples = []
    try:
        for i, t, frame in media.iter_frames(video, step=step):
            samples.append((t, detect_people(est, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))))
            if progress and len(samples) % 10 == 0:
                progress(len(samples), info.frames // step)
    finally:
        if own:
            est.close()
    sampled = len(samples)
    if sampled == 0:
        raise media.MediaError(f"{view} video: no frame could be decoded")
    with_person = sum(bool(p) for _, p in samples)
    with_many = sum(len(p) > 1 for _, p in samples)
    aspect = info.width / info.height if info.height else 1.0
    tracks = track_people(samples, params.tracker, aspect)
    walker, walk = choose_walker(tracks, params.walker, aspect)
    seen = view_evidence(walker, walk, params.walker, aspect) if walker else None

    reasons, warnings = [], []
    person_ratio = with_person / sampled
    full_ratio = sum(full_body(p.landmarks) for _, p in walker.samples) / sampled if walker else 0.0
    if person_ratio < params.min_person_ratio:
        reasons.append(f"{view} view: a person is visible in only {person_ratio:.0%} of sampled frames "
                       f"(need {params.min_person_ratio:.0%})" if with_person else
                       f"{view} view: no person found in the video")
    elif full_ratio < params.min_full_body_ratio:
        reasons.append(f"{view} view: the whole body (head to ankles) is visible in only {full_ratio:.0%} of "
                       f"sampled frames (need {params.min_full_body_ratio:.0%})")
    if walker and not walk.walks:
        reasons.append(f"{view} view: the person does not walk (the one seen longest: legs alternate "
                       f"{walk.alternations}× "
                       f"(need {params.walker.min_alternations}), hips travel {walk.travel_heights:.1f} body "
                       f"heights across the frame, size changes ×{walk.scale_change:.2f} "
                       f"(need {params.walker.min_travel_heights:g} body heights or "
                       f"×{params.walker.min_scale_change:g}, steadily) over "
                       f"{walker.samples[-1][0] - walker.samples[0][0]:.1f} s)")
    many_ratio = with_many / sampled
    if many_ratio > 0:
        warnings.append(f"{view} view: more than one person in {many_ratio:.0%} of sampled frames; the walker is "
                        f"track {walker.id if walker else '-'} of {len(tracks)}, the others are ignored")
    if walk and walk.walks and view == "side" and not walk.crosses:
        warnings.append("side view: the walker approaches the camera instead of crossing the frame")
    if walk and walk.walks and view == "front" and not walk.approaches:
        warnings.append("front view: the walker crosses the frame instead of approaching the camera")

    box, track_rows = None, []
    if walker:
        boxes = walker.boxes()
        box = [float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max())]
        track_rows = [[round(t, 3), *[round(v, 4) for v in p.box]] for t, p in walker.samples]
    return ViewValidation(frames_total=info.frames, frames_sampled=sampled, fps=info.fps,
                          person_ratio=round(person_ratio, 4), full_body_ratio=round(full_ratio, 4),
                          multiple_people_ratio=round(many_ratio, 4), walking=bool(walk and walk.walks),
                          hip_travel=round(walk.hip_travel, 4) if walk else 0.0,
                          scale_change=round(walk.scale_change, 4) if walk else 1.0, walker_box=box,
                          track=track_rows, tracks=len(tracks), walker_track_id=walker.id if walker else None,
                          walker_coverage=round(len(walker.samples) / sampled, 4) if walker else 0.0,
                          walk=walk.as_dict() if walk else {}, view_seen=seen.seen if seen else "unknown",
                          view_evidence=seen.as_dict() if seen else {}, reasons=reasons, warnings=warnings)


def _seen_text(view: str, v: ViewValidation) -> str:
    ev = v.view_evidence
    width = f"shoulders and hips {ev['width_ratio']:.2f} of the torso's length wide" \
        if ev.get("width_ratio") is not None else "shoulders and hips not seen"
    travel = {"across": "walking across the frame", "toward": "walking toward the camera",
              "away": "walking away from the camera", "both": "walking across and toward the camera",
              "none": "not travelling"}[ev.get("travel", "none")]
    return f"the {view} slot's video shows a {v.view_seen} view ({width}, {travel})"


def check_views(job_id: str, views: dict[str, ViewValidation]) -> tuple[str, str | None]:
    """(verdict, message): ok, unclear (a view could not be judged), wrong_slot, same_view or swapped."""
    seen = {slot: v.view_seen for slot, v in views.items()}
    if set(seen) != {"front", "side"}:
        wrong = [s for s, v in seen.items() if v in ("front", "side") and v != s]
        if wrong:
            return "wrong_slot", f"job {job_id}: " + _seen_text(wrong[0], views[wrong[0]])
        return "ok", None
    f, s = seen["front"], seen["side"]
    if f == "side" and s == "front":
        return "swapped", (f"job {job_id}: the front and side videos look swapped: "
                           f"{_seen_text('front', views['front'])}; {_seen_text('side', views['side'])}; "
                           f"upload each video in its own slot")
    if f == s and f in ("front", "side"):
        return "same_view", (f"job {job_id}: both videos show a {f} view: {_seen_text('front', views['front'])}; "
                             f"{_seen_text('side', views['side'])}; a job needs one video walking toward the "
                             f"camera (front) and one walking across it (side)")
    for slot, other in (("front", "side"), ("side", "front")):
        if seen[slot] == other:
            return "wrong_slot", (f"job {job_id}: {_seen_text(slot, views[slot])}, but the {slot} slot needs a "
                                  f"{slot} view")
    if "oblique" in (f, s) or "unknown" in (f, s):
        return "unclear", None
    return "ok", None


def validate(videos: dict[str, str | os.PathLike], job_id: str, params: ValidityParams = PARAMS,
             progress: Callable[[str, int, int], None] | None = None) -> ValidationReport:
    """Analyse each view ({'front': path, 'side': path}), then check the views.

    The views are analysed at the same time, one thread and one still-image estimator each (OpenCV's decoder and
    MediaPipe's graph release the GIL, so two views take about the time of one on two cores). `progress` is called
    from this thread only (Dagster's run log is written from the step's own thread)."""
    updates: queue.Queue[tuple[str, int, int]] = queue.Queue()

    def one(view: str, path: str | os.PathLike) -> ViewValidation:
        with MediaPipePose(video=False) as est:
            return analyse_view(path, view, est, params, lambda d, t: updates.put((view, d, t)))

    with ThreadPoolExecutor(max_workers=len(videos), thread_name_prefix="validate") as pool:
        futures = {view: pool.submit(one, view, path) for view, path in videos.items()}
        while not all(f.done() for f in futures.values()) or not updates.empty():
            try:
                update = updates.get(timeout=0.2)
            except queue.Empty:
                continue
            if progress:
                progress(*update)
        views = {view: f.result() for view, f in futures.items()}  # re-raises a view's error
    return judge(job_id, views, params)


def judge(job_id: str, views: dict[str, ViewValidation], params: ValidityParams = PARAMS) -> ValidationReport:
    """The job's verdict from its analysed views: their own reasons, then the view check (`params.view_check`)."""
    reasons = [r for v in views.values() for r in v.reasons]
    verdict, message = check_views(job_id, {k: v for k, v in views.items() if v.walking})
    warnings = []
    if message:
        (reasons if params.view_check == "refuse" else warnings).append(message)
    elif verdict == "unclear":
        warnings.append(f"job {job_id}: the view could not be judged from the pose in "
                        + ", ".join(f"the {s} slot ({v.view_seen})" for s, v in views.items()
                                    if v.walking and v.view_seen not in ("front", "side")))
    return ValidationReport(job_id=job_id, valid=not reasons, views=views, thresholds=params.thresholds(),
                            params=asdict(params), view_check={"verdict": verdict, "mode": params.view_check,
                                                               "message": message},
                            reasons=reasons, warnings=warnings)
