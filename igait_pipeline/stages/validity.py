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
from igait_pipeline.stages import camera, media
from igait_pipeline.stages.pose import (
    PAD_DARK,
    MediaPipePose,
    Person,
    PoseEstimator,
    _iou,
    bars_stay_dark,
    box_of,
    content_box,
    detect_people,
    full_body,
    region_to_frame,
)
from igait_pipeline.stages.tracking import (
    Track,
    TrackerParams,
    WalkerParams,
    WalkEvidence,
    choose_walker,
    track_people,
    view_evidence,
    walk_evidence,
)


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
    pad_dark: int = PAD_DARK
    """Stage 1 pads a picture that is not 16:9 with black bars (a portrait phone video becomes a 608-pixel-wide
    picture in a 1920×1080 frame); people are searched only inside them. A bar is a run of whole columns (rows)
    from an edge, no pixel of which is brighter than this in any channel (H.264 keeps the black within a few
    levels), in the first sample and in every later one (else the whole frame is searched from there on)."""
    pad_min_bar: float = 0.02
    """...and bars narrower than this share of the frame's width (height) are ignored."""
    pad_edge: int = 4
    """...and in later samples this many pixels of a bar next to the picture are not looked at: H.264 rings
    into them from a bright picture edge (a real portrait clip read levels up to 9 in the 2 columns next to its
    picture on its second sample, and stage 2 then searched the whole frame: 5.9 pose runs a sample instead of
    2.2)."""
    pan: camera.PanParams = field(default_factory=camera.PanParams)
    """How far the camera pans between samples (`camera.background_shift`): the walker's travel across the scene
    is the hips' travel across the picture less the background's."""
    tracker: TrackerParams = field(default_factory=TrackerParams)
    walker: WalkerParams = field(default_factory=WalkerParams)

    def thresholds(self) -> dict[str, float]:
        return {"min_person_ratio": self.min_person_ratio, "min_full_body_ratio": self.min_full_body_ratio,
                "min_travel_heights": self.walker.min_travel_heights,
                "min_scale_change": self.walker.min_scale_change,
                "min_legs_agreement": self.walker.min_legs_agreement,
                "max_rhythm_false_alarm": self.walker.max_false_alarm,
                "min_rhythm_snr": self.walker.min_rhythm_snr}


PARAMS = ValidityParams()
# The walk evidence shown beside each view in the UI (all of it is in validation.json).
WALK_SUMMARY = ("walks", "stride_period_s", "rhythm_signal", "rhythm_snr", "rhythm_false_alarm", "crosses",
                "travel_heights", "approaches", "scale_change", "scale_steadiness", "scale_legs", "dense")
MAX_SAMPLE_GAP_S = PARAMS.max_sample_gap_s


def sampling_step(fps: float, frames: int, params: ValidityParams = PARAMS) -> int:
    """Frames between samples: about `sample_hz`, thinned towards `max_samples` on long videos, but never more
    than `max_sample_gap_s` apart (a 125 s walk sampled 1.4 s apart broke the walker's track into pieces, and
    legs cannot be seen alternating with fewer than about 4 samples per stride)."""
    per_hz = round(fps / params.sample_hz)
    thinned = int(np.ceil(frames / params.max_samples))
    return max(1, per_hz, min(thinned, int(fps * params.max_sample_gap_s)))


Look = Callable[[list[tuple[float, tuple[float, float, float, float]]]], list[Person | None]]


def _video_look(video: str | os.PathLike, info: media.VideoInfo, est: PoseEstimator, margin: float = 0.25) -> Look:
    """Stage 2's second pass on a video: for each (t, box) asked, one pose run on a square crop around the box at
    frame round(t·fps) (the frames are decoded once, in order, from the first one asked)."""
    def look(asks: list[tuple[float, tuple[float, float, float, float]]]) -> list[Person | None]:
        out: list[Person | None] = [None] * len(asks)
        wanted: dict[int, list[int]] = {}
        for k, (t, _) in enumerate(asks):
            wanted.setdefault(int(round(t * info.fps)), []).append(k)
        if not wanted:
            return out
        cap = cv2.VideoCapture(str(video))
        try:
            first = min(wanted)
            cap.set(cv2.CAP_PROP_POS_FRAMES, first)
            i = first
            while i <= max(wanted):
                if i not in wanted:
                    if not cap.grab():
                        break
                    i += 1
                    continue
                ok, frame = cap.read()
                if not ok:
                    break
                h, w = frame.shape[:2]
                for k in wanted[i]:
                    x0, y0, x1, y1 = asks[k][1]
                    side = max((x1 - x0) * w, (y1 - y0) * h) * (1 + 2 * margin)
                    cx, cy = (x0 + x1) / 2 * w, (y0 + y1) / 2 * h
                    cx0, cy0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
                    cx1, cy1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
                    if cx1 - cx0 < 16 or cy1 - cy0 < 16:
                        continue
                    crop = cv2.cvtColor(frame[cy0:cy1, cx0:cx1], cv2.COLOR_BGR2RGB)
                    lm = est.process(np.ascontiguousarray(crop), 0)
                    if lm is None:
                        continue
                    full = region_to_frame(lm, (cx0, cy0, cx1 - cx0, cy1 - cy0), (w, h))
                    box = box_of(full)
                    if box is not None:
                        out[k] = Person(full, box)
                i += 1
        finally:
            cap.release()
        return out
    return look


def _densify(tracks: list[Track], evidence: dict[int, WalkEvidence], look: Look, p: WalkerParams,
             aspect: float, min_iou: float = 0.3, pan: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Look again, more densely, at candidate walkers whose travel is clear but whose leg rhythm is not (at most
    two, the longest first): extra samples at `p.dense_hz` within their walking segment, each from one pose run on
    the track's interpolated box. Their evidence is measured again."""
    unclear = [tr for tr in tracks if tr.id in evidence and (evidence[tr.id].crosses or evidence[tr.id].approaches)
               and not evidence[tr.id].periodic]
    for tr in sorted(unclear, key=lambda tr: -len(tr.samples))[:2]:
        a, b = evidence[tr.id].window
        times, boxes = tr.times(), tr.boxes()
        extra_t = []
        for t0, t1 in zip(times[:-1], times[1:]):
            if t1 < a or t0 > b:
                continue
            extra = int(np.ceil((t1 - t0) * p.dense_hz)) - 1
            extra_t += [float(t0 + (t1 - t0) * (k + 1) / (extra + 1)) for k in range(max(0, extra))]
        asks = [(t, tuple(float(np.interp(t, times, boxes[:, c])) for c in range(4))) for t in extra_t]
        found = [(t, pe) for (t, box), pe in zip(asks, look(asks)) if pe is not None and _iou(pe.box, box) >= min_iou]
        if found:
            tr.samples = sorted(tr.samples + found, key=lambda s: s[0])
            tr.looked_again += len(found)
        evidence[tr.id] = walk_evidence(tr, p, aspect, dense=True, pan=pan)


def analyse_view(video: str | os.PathLike, view: str, estimator: PoseEstimator | None = None,
                 params: ValidityParams = PARAMS, progress: Callable[[int, int], None] | None = None
                 ) -> ViewValidation:
    info = media.probe(video)
    step = sampling_step(info.fps, info.frames, params)
    own = estimator is None
    est = estimator or MediaPipePose(video=False)
    samples, shifts, grey, picture = [], [], None, None
    region = None  # the picture inside stage 1's padding bars, while they stay black: no pose runs on the bars
    try:
        for i, t, frame in media.iter_frames(video, step=step):
            if not samples:
                region = content_box(frame, params.pad_dark, params.pad_min_bar)
            elif region is not None and not bars_stay_dark(frame, region, params.pad_dark, params.pad_edge):
                region = None
            people = detect_people(est, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), region=region)
            if not samples and region is not None:  # the pan is measured inside the first sample's picture
                h, w = frame.shape[:2]
                picture = (region[0] / w, region[1] / h, (region[0] + region[2]) / w, (region[1] + region[3]) / h)
            prev, grey = grey, camera.small_grey(frame, params.pan, picture)
            shifts.append(camera.background_shift(prev, grey, [pe.box for pe in people + samples[-1][1]],
                                                  params.pan, picture) if samples else None)
            samples.append((t, people))
            if progress and len(samples) % 10 == 0:
                progress(len(samples), info.frames // step)
        if not samples:
            raise media.MediaError(f"{view} video: no frame could be decoded")
        return analyse_detections(view, samples, fps=info.fps, frames_total=info.frames, width=info.width,
                                  height=info.height, params=params, look=_video_look(video, info, est),
                                  pan=camera.pan_track([t for t, _ in samples], shifts))
    finally:
        if own:
            est.close()


def analyse_detections(view: str, samples: list[tuple[float, list[Person]]], *, fps: float, frames_total: int,
                       width: int, height: int, params: ValidityParams = PARAMS,
                       look: Look | None = None, pan: tuple[np.ndarray, np.ndarray] | None = None
                       ) -> ViewValidation:
    """Stage 2's verdict on one view from the people found on each sample [(t, people)]: tracks, the walker
    (looked at again more densely through `look` where its rhythm is unclear), the view seen, and the reasons.
    pan: the background's position per sample (`camera.pan_track`), when the camera may turn."""
    sampled = len(samples)
    with_person = sum(bool(p) for _, p in samples)
    with_many = sum(len(p) > 1 for _, p in samples)
    aspect = width / height if height else 1.0
    wp = params.walker
    tracks = track_people(samples, params.tracker, aspect)
    evidence = {tr.id: walk_evidence(tr, wp, aspect, pan=pan) for tr in tracks if len(tr.samples) >= wp.min_samples}
    if look is not None:
        _densify(tracks, evidence, look, wp, aspect, pan=pan)
    choice = choose_walker(tracks, wp, aspect, evidence, pan=pan)
    walker, walk = choice.track, choice.walk
    seen = view_evidence(walker, walk, wp, aspect) if walker else None

    reasons, warnings = [], []
    person_ratio = with_person / sampled
    first = _first_pass(walker, samples) if walker else []
    full_ratio = sum(full_body(p.landmarks) for p in first) / sampled
    if person_ratio < params.min_person_ratio:
        reasons.append(f"{view} view: a person is visible in only {person_ratio:.0%} of sampled frames "
                       f"(need {params.min_person_ratio:.0%})" if with_person else
                       f"{view} view: no person found in the video")
    elif full_ratio < params.min_full_body_ratio:
        reasons.append(f"{view} view: the whole body (head to ankles) is visible in only {full_ratio:.0%} of "
                       f"sampled frames (need {params.min_full_body_ratio:.0%})")
    if walker and not walk.walks:
        reasons.append(f"{view} view: the person does not walk (the one seen longest, "
                       f"{walker.samples[-1][0] - walker.samples[0][0]:.1f} s: {_walk_text(walk, wp)})")
    if choice.several:
        reasons.append(f"{view} view: several people walk at the same time ({len(choice.several) + 1} people "
                       f"walking or crossing the frame together with the walker, track {walker.id}, the longest "
                       f"for {choice.overlap_s:.1f} s, more than {wp.max_overlap_s:g} s); the job needs one walker "
                       f"in view, so no one is measured")
    if choice.elsewhere:
        who = "person walks" if len(choice.elsewhere) == 1 else "people walk"
        ids = ", ".join(map(str, choice.elsewhere))
        warnings.append(f"{view} view: {len(choice.elsewhere)} other {who} in the video at other times (track "
                        f"{ids}); the walker measured is the one seen longest, track {walker.id}")
    if choice.companion is not None:
        warnings.append(f"{view} view: a taller person (track {choice.companion}) walks beside the walker; the "
                        f"shorter person, track {walker.id}, is measured")
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
    return ViewValidation(frames_total=frames_total, frames_sampled=sampled, fps=fps,
                          person_ratio=round(person_ratio, 4), full_body_ratio=round(full_ratio, 4),
                          multiple_people_ratio=round(many_ratio, 4), walking=bool(walk and walk.walks),
                          hip_travel=round(walk.hip_travel, 4) if walk else 0.0,
                          scale_change=round(walk.scale_change, 4) if walk else 1.0, walker_box=box,
                          track=track_rows, tracks=len(tracks), walker_track_id=walker.id if walker else None,
                          walker_coverage=round(len(first) / sampled, 4),
                          walk=walk.as_dict() if walk else {}, view_seen=seen.seen if seen else "unknown",
                          background_track=([[round(float(t), 3), round(float(x), 5)] for t, x in zip(*pan)]
                                            if pan is not None and np.ptp(pan[1]) >= params.pan.min_slide
                                            else []),
                          view_evidence=seen.as_dict() if seen else {}, reasons=reasons, warnings=warnings)


def _first_pass(track: Track, samples: list[tuple[float, list[Person]]]) -> list[Person]:
    """The track's people on the first pass's samples (the second pass's extra samples aside: ratios stay shares
    of the sampled frames)."""
    times = {round(t, 4) for t, _ in samples}
    return [pe for t, pe in track.samples if round(t, 4) in times]


def _walk_text(walk: WalkEvidence, p: WalkerParams) -> str:
    r = walk.rhythm
    if r.period_s is None:
        legs = f"legs seen on too few samples for a stride rhythm ({r.samples})"
    else:
        legs = (f"{'a' if walk.periodic else 'no clear'} stride rhythm in the legs (best: {r.signal.replace('_', ' ')} "
                f"offset, period {r.period_s:.2f} s, swing {r.snr:.1f}× its jitter, false-alarm chance "
                f"{r.false_alarm:.1%} over {r.cycles:.1f} strides; need ≥ {p.min_rhythm_snr:g}×, ≤ "
                f"{p.max_false_alarm:.0%}, ≥ {p.min_cycles:g} strides)")
    a, s = walk.across, walk.scale
    body = f", legs ×{s.legs:.2f}" if s.legs is not None else ""
    where = (f"across the scene (the camera panned {walk.camera_pan:.2f} frame widths)" if walk.camera_pan >= 0.05
             else "across the frame")
    return (f"{legs}; hips travel {a.change:.1f} body heights {where} in {a.seconds:.1f} s "
            f"({a.steadiness:.0%} of moves one way), torso size changes ×{s.change:.2f} in {s.seconds:.1f} s "
            f"(ρ = {s.steadiness:.2f}{body}); need {p.min_travel_heights:g} body heights "
            f"({p.min_travel_steadiness:.0%} one way) or ×{p.min_scale_change:g} (|ρ| ≥ {p.min_scale_steadiness:g}, "
            f"legs changing the same way by ≥ {p.min_legs_agreement:.0%} of it) over ≥ {p.min_seconds:g} s")


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


def plot_walks(report: ValidationReport) -> bytes:
    """PNG: per view, the walker's leg offset that carries the stride rhythm (samples) and the fitted trend +
    sinusoid, with the period, the swing over the jitter and the false-alarm chance: what "walking" rests on."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    height = 2.4 * len(report.views)
    fig = Figure(figsize=(10.5, height), dpi=90)
    # fixed margins (tight_layout drew the figure an extra time to measure them): what it computed for one and
    # two views, rounded outwards; bottom and top in inches, so they hold for either height
    fig.subplots_adjust(left=0.08, right=0.985, bottom=0.62 / height, top=1 - 0.36 / height, hspace=0.35)
    axes = fig.subplots(len(report.views), 1, squeeze=False)[:, 0]
    for ax, (view, v) in zip(axes, report.views.items()):
        w = v.walk
        s = w.get("rhythm_series") or {}
        if s.get("t"):
            ax.plot(s["t"], s["offset"], "o", ms=3, color="tab:blue", label="left − right offset (samples)")
            ax.plot(s["t"], s["fit"], "-", color="tab:orange", label="trend + stride sinusoid")
            a, b = w.get("window", [s["t"][0], s["t"][-1]])
            ax.axvspan(a, b, color="tab:green", alpha=0.08, label="walking segment")
            ax.legend(loc="upper right", fontsize=7)
        period = w.get("stride_period_s")
        ax.set_title(f"{view}: {'walks' if v.walking else 'does not walk'} — "
                     f"{(w.get('rhythm_signal') or '-').replace('_', ' ')} offset, "
                     + (f"stride {period:.2f} s, swing {w.get('rhythm_snr', 0):.1f}× jitter, false alarm "
                        f"{w.get('rhythm_false_alarm', 1):.1%}" if period else "no rhythm measured")
                     + f"; seen {v.view_seen}", fontsize=9)
        ax.set_ylabel("body heights", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
