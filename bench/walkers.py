"""Stage 2 on labelled clips: is the chosen person the walker, is the view right, is the clip accepted?

    python -m bench.walkers FOLDER [FOLDER …] [--labels DIR]

For every clip in each FOLDER with a label (DIR/{stem}.json, default: that folder itself, then bench/labels/), runs
stage 2's analysis (`validity.analyse_view`) in the label's slot and prints per clip and overall:

- identity: on each labelled frame, the walker's track has a box within 0.1 s whose IoU with the labelled box is
  at least 0.5; at each `walker_absent` time, the track has no box (it did not continue on someone else);
- view: what stage 2 saw (front / side / oblique / unknown) against the label, and the slot verdict;
- accept / refuse: whether stage 2 says the clip shows someone walking, against the label;
- refusal: why stage 2 refuses the view (its reasons sorted into `REFUSALS` categories, "-" for none) against the
  label's `refuse`, when the label has that key;
- heel strikes: labelled times are listed; stage 2 does not time events (stage 5 does), so none is measured here;
- seconds stage 2 took, and the walk evidence of the walker's track (`v.walk`: its numbers and flags as key=value,
  whatever keys stage 2 writes), so one run before and one after a change can be compared line by line.

A label is JSON: {"clip", "slot": "front"|"side", "view": "front"|"side"|"oblique"|null, "walks": bool,
"refuse": "several_walkers"|"not_whole_body"|"not_walking"|"no_person"|null (optional: the refusal expected, null
for a view that must be accepted), "walker": [[t, x0, y0, x1, y1], …] (normalised), "walker_absent": [t, …],
"heel_strikes": {"left": [], "right": []} or null, "source": text or {"repo", "path", "licence", …}, "note"}.
bench/labels/ holds the labels of every clip the tests use and of the public clips measured locally (never
committed: .cache/bench-media/, see bench/labels/*.json `source`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from igait_pipeline.stages import validity
from igait_pipeline.stages.pose import MediaPipePose, _iou

HERE = Path(__file__).resolve().parent
TIME_TOLERANCE_S = 0.1
MIN_IOU = 0.5
# Refusal categories, each found by a phrase in stage 2's reasons for one view.
REFUSALS = {"no_person": ("no person found", "a person is visible in only"),
            "not_whole_body": ("whole body",),
            "not_walking": ("does not walk",),
            "several_walkers": ("several people walk",)}


def refusals(reasons: list[str]) -> list[str]:
    """The categories of stage 2's reasons for one view (sorted; [] when the view is accepted)."""
    return sorted(k for k, phrases in REFUSALS.items() if any(ph in r for r in reasons for ph in phrases))


def walk_numbers(walk: dict) -> str:
    """v.walk as compact key=value: numbers to 3 significant digits, flags as Y/N, lists and texts left out."""
    out = []
    for k, v in walk.items():
        if isinstance(v, bool):
            out.append(f"{k}={'Y' if v else 'N'}")
        elif isinstance(v, (int, float)):
            out.append(f"{k}={v:.3g}")
    return " ".join(out)


def find_labels(folder: Path, label_dir: Path | None) -> list[tuple[Path, dict]]:
    dirs = [label_dir] if label_dir else [folder, HERE / "labels"]
    found = []
    for clip in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mp4", ".mov", ".webm", ".avi", ".mkv")):
        for d in dirs:
            lab = d / f"{clip.stem}.json"
            if lab.is_file():
                found.append((clip, json.loads(lab.read_text())))
                break
    return found


def score_identity(track: list[list[float]], label: dict) -> tuple[int, int]:
    """(hits, checks) over the labelled walker boxes and walker_absent times."""
    hits = checks = 0
    for t, *box in label.get("walker", []):
        checks += 1
        near = [r for r in track if abs(r[0] - t) <= TIME_TOLERANCE_S]
        hits += any(_iou(tuple(r[1:]), tuple(box)) >= MIN_IOU for r in near)
    for t in label.get("walker_absent", []):
        checks += 1
        hits += not any(abs(r[0] - t) <= TIME_TOLERANCE_S for r in track)
    return hits, checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", type=Path, nargs="+", metavar="FOLDER")
    ap.add_argument("--labels", type=Path, default=None, help="folder of {clip stem}.json labels")
    args = ap.parse_args(argv)
    cases = [case for folder in args.folders for case in find_labels(folder, args.labels)]
    if not cases:
        print(f"no labelled clips in {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    totals = {"hits": 0, "checks": 0, "walk_ok": 0, "view_ok": 0, "view_n": 0, "refuse_ok": 0, "refuse_n": 0,
              "seconds": 0.0}
    print(f"{'clip':28} {'slot':5} {'identity':>9} {'view seen/label':>18} {'slot check':>11} "
          f"{'walks got/label':>16} {'heel strikes':>13} {'refusal got/label':>34} {'s':>5}  walk evidence")
    with MediaPipePose(video=False) as est:
        for clip, label in cases:
            t0 = time.perf_counter()
            v = validity.analyse_view(clip, label["slot"], est)
            seconds = time.perf_counter() - t0
            hits, checks = score_identity(v.track, label)
            verdict, _ = validity.check_views("bench", {label["slot"]: v}) if v.walking else ("-", None)
            walk_ok = v.walking == label["walks"]
            view_ok = label.get("view") is None or v.view_seen == label["view"]
            got = refusals(v.reasons)
            has_refuse = "refuse" in label
            want = label.get("refuse")
            refuse_ok = (want in got) if want else not got
            hs = label.get("heel_strikes")
            totals["hits"] += hits
            totals["checks"] += checks
            totals["walk_ok"] += walk_ok
            totals["view_n"] += label.get("view") is not None
            totals["view_ok"] += view_ok and label.get("view") is not None
            totals["refuse_n"] += has_refuse
            totals["refuse_ok"] += has_refuse and refuse_ok
            totals["seconds"] += seconds
            ident = f"{hits}/{checks}" if checks else "-"
            refusal = f"{','.join(got) or '-'}/{(want or '-') if has_refuse else '?'}"
            print(f"{clip.name[:28]:28} {label['slot']:5} {ident:>9} "
                  f"{v.view_seen + '/' + str(label.get('view')):>18}{'' if view_ok else '!'} {verdict:>11} "
                  f"{str(v.walking) + '/' + str(label['walks']):>16}{'' if walk_ok else '!'} "
                  f"{'none labelled' if not hs else 'not timed here':>13} "
                  f"{refusal:>34}{'' if refuse_ok or not has_refuse else '!'} {seconds:5.1f}  "
                  f"{walk_numbers(v.walk)}")
    n = len(cases)
    ident = totals["hits"] / totals["checks"] if totals["checks"] else float("nan")
    print(f"\noverall on {n} clips: walker identity {totals['hits']}/{totals['checks']} labelled frames "
          f"({ident:.0%}); walking verdict right on {totals['walk_ok']}/{n}; view right on "
          f"{totals['view_ok']}/{totals['view_n']}; refusal reason right on "
          f"{totals['refuse_ok']}/{totals['refuse_n']}; "
          f"stage 2 took {totals['seconds']:.0f} s")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
