"""Stage 5's gait events against heel strikes and toe-offs labelled by hand on real clips.

    python -m bench.events [FOLDER …] [--labels DIR] [--fresh] [--only STEM …]

For every clip in each FOLDER (default: .cache/bench-media/ of the repository, where the public clips without a
licence are kept, never committed) with a label in DIR (default bench/labels/) that has hand-labelled events
(`heel_strikes` not null, `events_fps`), runs the pipeline's own stage functions on it as a job would:

- stage 1 `media.convert` (1920×1080, 60 fps), stage 2 `validity.analyse_view` in the label's slot (the walker),
  stage 3 `reframe.reframe_view`, stage 4 `pose.extract_keypoints` keeping to the walker (`reframe.gate_from_crop`);
  the keypoints are cached in FOLDER/events-cache/ (keyed by the clip's size and mtime; `--fresh` redoes them), so
  a change to stage 5 is re-measured in seconds;
- stage 5 `gait.events.measure_view` on the slot's keypoints (side view: heel strikes and toe-offs; front view:
  heel strikes only, the pipeline finds no front-view toe-offs);

and compares the detected events with the labels. Times: a labelled frame k (the k-th frame as decoded, which is
what bench/contact_sheet.py numbers) is at that frame's presentation time in the clip (`frame_times`, ffprobe; not
k / events_fps, which is off by up to 0.1 s on the variable-frame-rate phone clips); stage 1 keeps the clip's clock
(its frame i at i / 60 s, by those presentation times), so detected times are compared as they are.

Matching rule, per clip, per foot (the walker's own left / right, as labelled and as MediaPipe names them) and per
kind (heel strike, toe-off): labelled and detected events are paired one to one, closest pairs first (every
pair within `MATCH_WINDOW_S` sorted by |error|, taken greedily when neither member is taken yet). A labelled event
left unpaired is *missed*; a detected event left unpaired is *extra* when it lies within the label's
`events_span` (the frames over which the labeller marked every decidable event of that clip) and at least
`MATCH_WINDOW_S` from every frame listed in `events_undecided` (events the labeller could not place). Kinds the
pipeline does not detect in a view (front-view toe-offs) are labelled but not scored (they count in N of the last
line, not in its percentages). A labelled event whose nearest detection of the same kind is on the *other* foot
within the window is also counted as `swapped` (the pose model's left/right mix-up), for reading only. When the
labeller could not tell the feet apart (`"feet_identified": false`: both legs alike in a side view; the feet are
then named consistently within the clip only), the detected feet are matched either way round, as a whole clip,
whichever pairs more events (`feet swapped` in the notes); timing errors are unaffected.

Errors are detected minus labelled time. "Within k frames" uses frames of 30 fps (33.3 ms), the issue's unit,
whatever the clip's rate (a 10 fps label is itself only within ±50 ms); the share is of *labelled* events (a
missed event is not within). Per clip and in total: labelled events, within 1 and 2 frames, mean |error| and its
95th percentile (ms), mean signed error per kind (the bias an offset would remove), missed, extra and swapped;
stride time error (ms, mean |detected − labelled| over labelled strides, consecutive labelled heel strikes of one
foot, whose two ends were both matched) and cadence error (%: the pipeline's reported `cadence_spm`, from its
steady strides, against 120 / the mean labelled stride time; "-" when stage 5 reports none). Each clip's line
also notes the median offset of every detection to the nearest label of its own foot and kind at any distance
(what a bias beyond the matching window looks like). Before the last line, the ceiling (`ceiling`): the share
within 2 frames if each clip's events of each kind were moved by the one shift best for that clip, chosen on its
own labels, which no per-walk offset can beat. The run ends with exactly one line

    events: N labelled, side S % within 2 frames, front F % within 2 frames

Labels: bench/labels/{clip stem}.json (see bench/walkers.py for the common keys) with "events_fps",
"heel_strikes": {"left": [frame, …], "right": […]}, "toe_offs": {…}, "events_span": [first, last] (frames),
"events_undecided": [frame, …] and "event_labelling" (how they were made, passes, agreement); how they were made
is in bench/labels/README.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_MEDIA = ROOT / ".cache" / "bench-media"
FEET = ("left", "right")
KINDS = {"heel_strikes": "HS", "toe_offs": "TO"}
MATCH_WINDOW_S = 0.25  # a detection further than this from a label is another event (a step is ~0.5 s)
FRAME_S = 1 / 30  # "within k frames" is at 30 fps
CLIPS = (".mp4", ".mov", ".webm", ".avi", ".mkv")


def frame_times(clip: Path) -> np.ndarray:
    """The presentation time (s) of every frame of a clip as decoded, in order (ffprobe): the time of a labelled
    frame number. Not k / fps: several clips have a variable frame rate (dlj0214/GAIT's phone clips drift up to
    +99 ms from k / 29.97 by their 120th frame, the Biomechanics-of-gait ones by −14…−24 ms after a short interval
    early on), and stage 1 converts to a constant 60 fps by these times."""
    import subprocess

    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(clip)],
                         capture_output=True, text=True, check=True).stdout.split()
    ts = np.array([float(x.strip(",")) for x in out if x.strip(",") not in ("", "N/A")])
    return ts - ts[0] if len(ts) else ts


def _to_seconds(label: dict, times: np.ndarray | None):
    """Frame number -> seconds: the clip's own frame times when known (past its last frame, extrapolated at
    events_fps), else k / events_fps."""
    fps = float(label["events_fps"])
    if times is None or not len(times):
        return lambda k: k / fps
    return lambda k: float(times[k]) if 0 <= k < len(times) else float(times[-1] + (k - len(times) + 1) / fps)


def label_events(label: dict, times: np.ndarray | None = None) -> dict[str, dict[str, list[float]]]:
    """{kind: {foot: [seconds]}} of a label's events (kinds it does not label are empty); `times`: the clip's
    frame times (`frame_times`), else frame k is at k / events_fps."""
    sec = _to_seconds(label, times)
    out = {}
    for kind in KINDS:
        per = label.get(kind) or {}
        out[kind] = {f: sorted(sec(k) for k in per.get(f, [])) for f in FEET}
    return out


def validate_label(label: dict) -> list[str]:
    """What is wrong with a label that has events (empty when it is usable)."""
    problems = []
    fps = label.get("events_fps")
    if not isinstance(fps, (int, float)) or fps <= 0:
        problems.append("events_fps missing or not positive")
    for kind in KINDS:
        per = label.get(kind)
        if per is None:
            continue
        if set(per) != set(FEET):
            problems.append(f"{kind} must have keys left and right")
            continue
        for f in FEET:
            frames = per[f]
            if any(not isinstance(k, int) or k < 0 for k in frames):
                problems.append(f"{kind}.{f}: frames must be non-negative integers")
            elif frames != sorted(set(frames)):
                problems.append(f"{kind}.{f}: frames must be increasing")
    span = label.get("events_span")
    if not (isinstance(span, list) and len(span) == 2 and span[0] < span[1]):
        problems.append("events_span must be [first, last] frames")
    elif not problems:
        for kind in KINDS:
            for f in FEET:
                if any(not span[0] <= k <= span[1] for k in (label.get(kind) or {}).get(f, [])):
                    problems.append(f"{kind}.{f}: a frame outside events_span")
    if "event_labelling" not in label:
        problems.append("event_labelling (how the events were labelled) missing")
    return problems


@dataclass
class Match:
    """One kind of event of one foot: pairs (label s, detected s), missed labels, extra detections."""

    pairs: list[tuple[float, float]] = field(default_factory=list)
    missed: list[float] = field(default_factory=list)
    extra: list[float] = field(default_factory=list)

    @property
    def errors(self) -> list[float]:
        return [d - lab for lab, d in self.pairs]


def match(labelled: list[float], detected: list[float], span: tuple[float, float] = (-np.inf, np.inf),
          undecided: list[float] = (), window: float = MATCH_WINDOW_S) -> Match:
    """Pair labelled and detected times one to one, closest first, within `window` (the docstring's rule)."""
    cand = sorted((abs(d - lab), i, j) for i, lab in enumerate(labelled) for j, d in enumerate(detected)
                  if abs(d - lab) <= window)
    li, dj, pairs = set(), set(), []
    for _, i, j in cand:
        if i not in li and j not in dj:
            li.add(i)
            dj.add(j)
            pairs.append((labelled[i], detected[j]))
    m = Match(sorted(pairs), [lab for i, lab in enumerate(labelled) if i not in li])
    lo, hi = span
    m.extra = [d for j, d in enumerate(detected) if j not in dj and lo - window < d < hi + window
               and all(abs(d - u) > window for u in undecided)]
    return m


def within(errors: list[float], n_labelled: int, frames: int) -> float:
    """Share of labelled events detected within `frames` frames at 30 fps."""
    return sum(abs(e) <= frames * FRAME_S + 1e-9 for e in errors) / n_labelled if n_labelled else float("nan")


def stride_errors(labelled_hs: dict[str, list[float]], matches: dict[str, Match]) -> list[float]:
    """Detected minus labelled stride time (s) for each labelled stride (consecutive labelled heel strikes of one
    foot) whose two ends were both matched."""
    out = []
    for f in FEET:
        got = dict(matches[f].pairs)
        for a, b in zip(labelled_hs[f], labelled_hs[f][1:]):
            if a in got and b in got:
                out.append((got[b] - got[a]) - (b - a))
    return out


def labelled_stance_ratio(lab: dict[str, dict[str, list[float]]]) -> float | None:
    """Mean share of a labelled stride (consecutive labelled heel strikes of one foot) from its heel strike to the
    one labelled toe-off of that foot inside it (the pipeline's `stance_ratio`); None without such a stride."""
    ratios = []
    for f in FEET:
        hs, to = lab["heel_strikes"][f], lab["toe_offs"][f]
        for a, b in zip(hs, hs[1:]):
            inside = [t for t in to if a < t < b]
            if len(inside) == 1:
                ratios.append((inside[0] - a) / (b - a))
    return float(np.mean(ratios)) if ratios else None


def ceiling(group: list[ClipScore], frames: int = 2, grid_ms: range = range(-200, 205, 5)) -> int:
    """Matched events that would be within `frames` frames if every clip's events of each kind moved by the one
    shift (of `grid_ms`) that suits that clip best, chosen on its own labels: what no method that differs from
    stage 5's by one shift per walk (an event offset, however it is chosen) can beat. The rest of the error is
    per event."""
    total = 0
    for sc in group:
        for errs in sc.by_kind.values():
            e = np.asarray(errs, float)
            if len(e):
                total += max(int(np.sum(np.abs(e - g / 1000) <= frames * FRAME_S + 1e-9)) for g in grid_ms)
    return total


def labelled_cadence(labelled_hs: dict[str, list[float]]) -> float | None:
    """120 / mean labelled stride time (the pipeline's definition), steps per minute."""
    strides = [b - a for f in FEET for a, b in zip(labelled_hs[f], labelled_hs[f][1:])]
    return 120.0 / float(np.mean(strides)) if strides else None


@dataclass
class ClipScore:
    clip: str
    view: str
    labelled: int = 0
    errors: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    missed: int = 0
    extra: int = 0
    swapped: int = 0
    unscored: int = 0  # labelled kinds the pipeline does not detect in this view
    stride_err: list[float] = field(default_factory=list)
    cadence_label: float | None = None
    cadence_got: float | None = None
    stance_label: float | None = None
    stance_got: float | None = None
    nearest: dict[str, list[float]] = field(default_factory=dict)  # per kind: detected minus nearest own label
    feet_swapped: bool = False  # feet not identified by the labeller, and the detected feet fit better swapped
    note: str = ""


def _swapped_fits_better(lab: dict, detected: dict, span: tuple[float, float], undecided: list[float]) -> bool:
    """For a label whose feet are not identified: do more events match with the detected feet swapped?"""
    def matched(det: dict) -> int:
        return sum(len(match(lab[k][f], det[k][f], span, undecided).pairs) for k in det for f in FEET)
    swapped = {k: {"left": v["right"], "right": v["left"]} for k, v in detected.items()}
    return matched(swapped) > matched(detected)


def score(label: dict, detected: dict[str, dict[str, list[float]]], cadence_got: float | None,
          times: np.ndarray | None = None, stance_got: float | None = None) -> ClipScore:
    """Score one clip's detected events {kind: {foot: [s]}} (a kind absent: not detected in this view) and the
    reported cadence and stance ratio; `times`: the clip's frame times (`frame_times`), else frame k is at
    k / events_fps."""
    sec = _to_seconds(label, times)
    lab = label_events(label, times)
    span = tuple(sec(k) for k in label["events_span"])
    undecided = [sec(k) for k in label.get("events_undecided", [])]
    view = label.get("view") or label["slot"]
    sc = ClipScore(label["clip"], view, cadence_got=cadence_got, cadence_label=labelled_cadence(lab["heel_strikes"]),
                   stance_got=stance_got, stance_label=labelled_stance_ratio(lab) if "toe_offs" in detected else None)
    if label.get("feet_identified", True) is False and _swapped_fits_better(lab, detected, span, undecided):
        detected = {k: {"left": v["right"], "right": v["left"]} for k, v in detected.items()}
        sc.feet_swapped = True
    hs_matches = {}
    for kind, short in KINDS.items():
        if kind not in detected:
            sc.unscored += sum(len(lab[kind][f]) for f in FEET)
            continue
        for f in FEET:
            other = "right" if f == "left" else "left"
            m = match(lab[kind][f], detected[kind][f], span, undecided)
            if kind == "heel_strikes":
                hs_matches[f] = m
            sc.labelled += len(lab[kind][f])
            sc.errors += m.errors
            sc.by_kind.setdefault(short, []).extend(m.errors)
            sc.missed += len(m.missed)
            sc.extra += len(m.extra)
            sc.swapped += sum(any(abs(d - t) <= MATCH_WINDOW_S for d in detected[kind][other]) for t in m.missed)
            if lab[kind][f]:  # every detection inside the span against its own foot's nearest label, any distance
                sc.nearest.setdefault(short, []).extend(
                    min((d - t for t in lab[kind][f]), key=abs) for d in detected[kind][f]
                    if span[0] - MATCH_WINDOW_S < d < span[1] + MATCH_WINDOW_S)
    if hs_matches:
        sc.stride_err = stride_errors(lab["heel_strikes"], hs_matches)
    return sc


# ---------------------------------------------------------------------------------------------- the pipeline

def keypoints_for(clip: Path, label: dict, cache: Path, fresh: bool = False, estimator=None) -> tuple[Path, str]:
    """Stages 1–4 on a clip in the label's slot; returns (keypoints JSON, a note). Cached under `cache`."""
    from igait_pipeline.stages import media, pose, reframe, validity

    slot = label["slot"]
    st = clip.stat()
    key = cache / f"{clip.stem}.{slot}.{st.st_size}.{int(st.st_mtime)}.keypoints.json"
    if key.is_file() and not fresh:
        return key, "cached keypoints"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="igait-events-") as tmp:
        tmp = Path(tmp)
        conv = tmp / f"{slot}.mp4"
        media.convert(clip, conv)
        v = validity.analyse_view(conv, slot, estimator)
        if not v.walker_box:
            raise RuntimeError(f"{clip.name}: stage 2 found no walker ({'; '.join(v.reasons)})")
        crop = reframe.reframe_view(conv, v, tmp / "s3" / f"{slot}.mp4")
        res = pose.extract_keypoints(tmp / "s3" / f"{slot}.mp4", tmp / "s4", slot, "bench",
                                     is_walker=reframe.gate_from_crop(crop))
        key.write_bytes(res.keypoints_path.read_bytes())
    note = "" if v.walking else "stage 2: not walking; "
    return key, note + f"stage 2 saw {v.view_seen}"


def detect(kp_path: Path, settings=None) -> tuple[dict, dict[str, float | None], str]:
    """Stage 5 on cached keypoints: ({kind: {foot: [s]}}, {"cadence_spm", "stance_ratio": reported or None},
    a note)."""
    from igait_pipeline.schemas import Keypoints
    from igait_pipeline.stages.gait.events import measure_view
    from igait_pipeline.stages.gait.parameters import parameters
    from igait_pipeline.stages.gait.settings import DEFAULT

    settings = settings or DEFAULT
    kp = Keypoints.model_validate_json(kp_path.read_text())
    res = measure_view(kp, settings)
    got = {"heel_strikes": {f: list(res.heel_strikes[f]) for f in FEET}}
    if kp.view == "side":
        got["toe_offs"] = {f: list(res.toe_offs[f]) for f in FEET}
    reported = {"cadence_spm": None, "stance_ratio": None}
    if res.strides:
        p = parameters(res, None, settings)
        reported = {k: p[k]["value"] for k in reported}
    note = "; ".join(res.reasons) or f"{len(res.strides)} strides, {len(res.steady_strides)} steady"
    return got, reported, note


def choose_heel_strike_offset(side: list[tuple[Path, dict, np.ndarray]], estimator: str = "mediapipe-blazepose-full",
                              grid_ms: range = range(0, -125, -5)) -> list[str]:
    """Leave-one-clip-out choice of `EventSettings.heel_strike_estimator_offsets_s` for `estimator` over side clips
    [(keypoints path, label, frame times)]: for each clip, the offset of `grid_ms` that puts the most heel strikes
    of the *other* clips within 2 frames (ties: the smaller offset), scored on the held-out clip. Returns the
    report's lines."""
    from dataclasses import replace

    from igait_pipeline.stages.gait.settings import DEFAULT

    hits = np.zeros((len(side), len(grid_ms)), int)  # heel strikes within 2 frames, per clip and offset
    events = np.zeros((len(side), len(grid_ms)), int)  # all side events within 2 frames
    n_hs = np.array([sum(len(v) for v in label_events(label, times)["heel_strikes"].values())
                     for _, label, times in side])
    n_all = np.zeros(len(side), int)
    for j, ms in enumerate(grid_ms):
        s = replace(DEFAULT, events=replace(DEFAULT.events, heel_strike_estimator_offsets_s=((estimator, ms / 1000),)))
        for i, (kp, label, times) in enumerate(side):
            got, _, _ = detect(kp, s)
            sc = score(label, got, None, times)
            hs = sc.by_kind.get("HS", [])
            hits[i, j] = sum(abs(e) <= 2 * FRAME_S + 1e-9 for e in hs)
            events[i, j] = sum(abs(e) <= 2 * FRAME_S + 1e-9 for e in sc.errors)
            n_all[i] = sc.labelled
    lines, held_hs, held_all = [], 0, 0
    for i, (kp, label, _) in enumerate(side):
        others = hits.sum(axis=0) - hits[i]
        j = int(np.flatnonzero(others == others.max())[0])
        held_hs += hits[i, j]
        held_all += events[i, j]
        lines.append(f"held out {label['clip'][:40]:40} chosen {grid_ms[j]:+4d} ms: heel strikes "
                     f"{hits[i, j]}/{n_hs[i]} within 2 frames (with 0 ms: {hits[i, 0]})")
    j_all = int(np.flatnonzero(hits.sum(axis=0) == hits.sum(axis=0).max())[0])
    lines.append(f"held out: heel strikes {held_hs}/{n_hs.sum()} ({held_hs / n_hs.sum():.0%}), side events "
                 f"{held_all}/{n_all.sum()} ({held_all / n_all.sum():.0%}) within 2 frames; with 0 ms: "
                 f"{hits[:, 0].sum()}/{n_hs.sum()}, {events[:, 0].sum()}/{n_all.sum()}; in-sample best "
                 f"{grid_ms[j_all]:+d} ms: {hits[:, j_all].sum()}/{n_hs.sum()}, {events[:, j_all].sum()}/{n_all.sum()}")
    return lines


def find_cases(folders: list[Path], label_dir: Path, only: list[str] | None) -> list[tuple[Path, dict]]:
    cases = []
    for lab_path in sorted(label_dir.glob("*.json")):
        label = json.loads(lab_path.read_text())
        if not label.get("heel_strikes") or (only and lab_path.stem not in only):
            continue
        for folder in folders:
            clip = folder / label["clip"]
            if clip.is_file():
                cases.append((clip, label))
                break
        else:
            print(f"{label['clip']}: labelled but not found in {', '.join(map(str, folders))} (see its source)",
                  file=sys.stderr)
    return cases


def _ms(x: float) -> str:
    return "-" if x != x else f"{1000 * x:+.0f}"


def row(name: str, view: str, sc_list: list[ClipScore]) -> str:
    n = sum(s.labelled for s in sc_list)
    errs = [e for s in sc_list for e in s.errors]
    a = np.abs(errs) if errs else np.array([np.nan])
    kinds = {k: [e for s in sc_list for e in s.by_kind.get(k, [])] for k in KINDS.values()}
    bias = " ".join(f"{k} {_ms(float(np.mean(v))) if v else '-':>5}" for k, v in kinds.items())
    strides = [abs(e) for s in sc_list for e in s.stride_err]
    cad = [abs(s.cadence_got / s.cadence_label - 1) for s in sc_list if s.cadence_got and s.cadence_label]
    cad_txt = f"{100 * np.mean(cad):.1f}" if cad else "-"
    stance = [abs(s.stance_got - s.stance_label) for s in sc_list if s.stance_got is not None
              and s.stance_label is not None]
    stance_txt = f"{100 * np.mean(stance):.1f}" if stance else "-"
    return (f"{name[:32]:32} {view:5} {n:4d} {within(errs, n, 1):6.0%} {within(errs, n, 2):6.0%} "
            f"{1000 * np.mean(a):6.0f} {1000 * np.percentile(a, 95):6.0f}  {bias}  "
            f"{sum(s.missed for s in sc_list):3d} {sum(s.extra for s in sc_list):3d} "
            f"{sum(s.swapped for s in sc_list):3d}  {1000 * np.mean(strides) if strides else float('nan'):6.0f} "
            f"{cad_txt:>6} {stance_txt:>6}")


HEADER = (f"{'clip':32} {'view':5} {'N':>4} {'<=1fr':>6} {'<=2fr':>6} {'|e|ms':>6} {'p95ms':>6}  "
          f"{'mean error HS/TO ms':19}  {'mis':>3} {'ext':>3} {'swp':>3}  {'strd':>6} {'cad%':>6} {'stnpp':>6}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", type=Path, nargs="*", metavar="FOLDER")
    ap.add_argument("--labels", type=Path, default=HERE / "labels", help="folder of {clip stem}.json labels")
    ap.add_argument("--fresh", action="store_true", help="redo stages 1-4 (ignore cached keypoints)")
    ap.add_argument("--only", nargs="+", metavar="STEM", help="only these labelled clips")
    ap.add_argument("--choose-heel-strike-offset", action="store_true",
                    help="choose EventSettings.heel_strike_estimator_offsets_s leave-one-clip-out on the side clips")
    args = ap.parse_args(argv)
    folders = args.folders or [DEFAULT_MEDIA]
    cases = find_cases(folders, args.labels, args.only)
    if not cases:
        print(f"no clips with labelled events in {', '.join(map(str, folders))}", file=sys.stderr)
        return 2
    bad = {c.name: p for c, lab in cases if (p := validate_label(lab))}
    if bad:
        for name, p in bad.items():
            print(f"{name}: {'; '.join(p)}", file=sys.stderr)
        return 2
    scores, kps = [], []
    from igait_pipeline.stages.pose import MediaPipePose

    with MediaPipePose(video=False) as est:
        for clip, label in cases:
            t0 = time.perf_counter()
            kp, note = keypoints_for(clip, label, clip.parent / "events-cache", args.fresh, est)
            got, reported, note5 = detect(kp)
            sc = score(label, got, reported["cadence_spm"], frame_times(clip), reported["stance_ratio"])
            sc.note = f"{note}; stage 5: {note5}; {time.perf_counter() - t0:.0f} s"
            scores.append(sc)
            kps.append((kp, label, sc.view))
    if args.choose_heel_strike_offset:
        side = [(kp, label, frame_times(clip)) for (kp, label, view), (clip, _) in zip(kps, cases) if view == "side"]
        print("\n".join(choose_heel_strike_offset(side)))
        return 0
    print("errors: detected minus labelled; <=k fr: share of labelled events within k frames at 30 fps; "
          "mis/ext/swp: missed, extra, on the other foot; strd: mean |stride time error| ms; cad%: |cadence error|; "
          "stnpp: |stance ratio error|, percentage points (side view: labelled strides with one toe-off)")
    print(HEADER)
    for sc in scores:
        print(row(sc.clip, sc.view, [sc]) + f"  {sc.cadence_label or 0:5.1f}/{sc.cadence_got or 0:5.1f} spm"
              f"  {sc.note}" + ("; feet swapped" if sc.feet_swapped else "")
              + "; median offset to the nearest own label " + ", ".join(
                  f"{k} {_ms(float(np.median(v)))} ms" for k, v in sc.nearest.items() if v)
              + (f"; {sc.unscored} front toe-offs labelled, not detected by design" if sc.unscored else ""))
    print()
    totals = {}
    for view in ("side", "front"):
        group = [s for s in scores if s.view == view]
        if group:
            print(row(f"total {view}", view, group))
            n = sum(s.labelled for s in group)
            totals[view] = (n, within([e for s in group for e in s.errors], n, 2))
    print(row("total", "all", scores))
    n_all = sum(s.labelled + s.unscored for s in scores)
    unscored = sum(s.unscored for s in scores)
    if unscored:
        print(f"{unscored} labelled events of a kind stage 5 does not detect in that view (front-view toe-offs) "
              f"are not scored")
    parts = []
    for view in ("side", "front"):
        group = [s for s in scores if s.view == view]
        n = sum(s.labelled for s in group)
        if n:
            c, missed = ceiling(group), sum(s.missed for s in group)
            parts.append(f"{view} {c}/{n} ({100 * c / n:.0f} %; {100 * (c + missed) / n:.0f} % if every missed "
                         f"event were found too)")
    print("ceiling, one best shift per clip and kind chosen on its own labels, within 2 frames: " + ", ".join(parts))
    pct = {v: f"{100 * totals[v][1]:.0f}" if v in totals else "-" for v in ("side", "front")}
    print(f"events: {n_all} labelled, side {pct['side']} % within 2 frames, front {pct['front']} % within 2 frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
