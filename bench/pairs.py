"""Cross-view consistency on real pairs: does stage 5 flag a job whose two videos show different people, and pass
one whose two videos show the same person?

    python -m bench.pairs [FOLDER …] [--labels DIR] [--fresh]

Takes every labelled clip (DIR/{stem}.json, default bench/labels/) found in the FOLDERs (default
.cache/bench-media/ and the tests' cache, $IGAIT_TEST_CACHE or .cache/test-media/) that shows one person walking
in its own slot's view (label `walks` true, `refuse` null, `view` equal to `slot`), runs stages 1–4 on it in that
slot (cached beside the clip, as `bench/events.py` does), then stage 5 (`cycles.detect_cycles`) on every pair of a
side clip and a front clip, and reads `quality.cross_view`: the two views' mean steady stride times and leg-to-trunk
proportions against `ConsistencySettings`' tolerances.

Who is who: a label's `person` names the walker; without it, the clip's source repository stands for its walker.
Two clips with the same `person` show the same person; two clips whose persons differ show different people (every
source here filmed its own walkers). Prints one line per pair (stride times, proportions, verdict: `agree`,
`FLAGGED` with what differed, or `not compared` with the reason: a view with too few steady strides), then per
kind of pair how many were compared and flagged, and ends with one line

    pairs: same person A/B agree, different people C/D flagged, E not compared

The stride-time check tells two walkers apart only when their paces differ by more than its tolerance; adults
walking at their own comfortable pace often do not, which this bench shows rather than hides.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.events import keypoints_for

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_FOLDERS = [ROOT / ".cache" / "bench-media",
                   Path(os.environ.get("IGAIT_TEST_CACHE") or ROOT / ".cache" / "test-media")]


def person(label: dict) -> str | None:
    """Who walks in a labelled clip: its `person`, else its source repository; None when neither is known."""
    if label.get("person"):
        return str(label["person"])
    src = label.get("source")
    return f"repository {src['repo']}" if isinstance(src, dict) and src.get("repo") else None


def walking_clips(folders: list[Path], label_dir: Path) -> list[tuple[Path, dict]]:
    """(clip, label) of every labelled clip found that shows one person walking in its own slot's view."""
    out = []
    for lab_path in sorted(label_dir.glob("*.json")):
        label = json.loads(lab_path.read_text())
        if not (label.get("walks") and label.get("refuse") is None and label.get("slot") in ("front", "side")
                and label.get("view") == label["slot"] and person(label)):
            continue
        clip = next((f / label["clip"] for f in folders if (f / label["clip"]).is_file()), None)
        if clip is not None:
            out.append((clip, label))
    return out


@dataclass
class PairResult:
    side: str
    front: str
    same: bool
    cross_view: dict

    @property
    def compared(self) -> bool:
        return "stride_time_s" in self.cross_view

    @property
    def flagged(self) -> bool:
        return self.compared and not self.cross_view["ok"]


def judge(side_kp, front_kp, side: str, front: str, same: bool) -> PairResult:
    """Stage 5 on one pair of keypoints; the cross-view part of its quality report."""
    from igait_pipeline.stages import cycles

    c = cycles.detect_cycles(side_kp, front_kp, "bench_pairs")
    return PairResult(side, front, same, c.quality["cross_view"])


def line(r: PairResult) -> str:
    cv = r.cross_view
    if not r.compared:
        return (f"{r.side[:34]:34s} {r.front[:24]:24s} {'same' if r.same else 'diff':4s}  not compared: "
                f"{cv.get('reason')}")
    st, lt = cv["stride_time_s"], cv.get("leg_to_trunk", {})
    prop = (f"{lt['side']:.2f}/{lt['front']:.2f} {100 * lt['difference']:3.0f}%" if lt.get("ok") is not None
            else "  -/-         ")
    what = [k for k in ("stride_time_s", "leg_to_trunk") if cv.get(k, {}).get("ok") is False]
    verdict = "agree" if cv["ok"] else "FLAGGED (" + ", ".join(what) + ")"
    return (f"{r.side[:34]:34s} {r.front[:24]:24s} {'same' if r.same else 'diff':4s}  "
            f"{st['side']:.3f}/{st['front']:.3f} s {100 * st['difference']:3.0f}%  {prop}  {verdict}")


def summary(results: list[PairResult]) -> list[str]:
    same = [r for r in results if r.same]
    diff = [r for r in results if not r.same]
    out = []
    for name, rs in (("same person", same), ("different people", diff)):
        comp = [r for r in rs if r.compared]
        out.append(f"{name}: {len(rs)} pairs, {len(comp)} compared, {sum(r.flagged for r in comp)} flagged "
                   f"({sum(r.cross_view['stride_time_s']['ok'] is False for r in comp)} by stride time, "
                   f"{sum(r.cross_view.get('leg_to_trunk', {}).get('ok') is False for r in comp)} by leg-to-trunk)")
    n_same_ok = sum(r.compared and not r.flagged for r in same)
    n_same = sum(r.compared for r in same)
    n_diff_flag = sum(r.flagged for r in diff)
    n_diff = sum(r.compared for r in diff)
    out.append(f"pairs: same person {n_same_ok}/{n_same} agree, different people {n_diff_flag}/{n_diff} flagged, "
               f"{sum(not r.compared for r in results)} not compared")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", type=Path, nargs="*", metavar="FOLDER")
    ap.add_argument("--labels", type=Path, default=HERE / "labels", help="folder of {clip stem}.json labels")
    ap.add_argument("--fresh", action="store_true", help="redo stages 1-4 (ignore cached keypoints)")
    args = ap.parse_args(argv)
    clips = walking_clips(args.folders or DEFAULT_FOLDERS, args.labels)
    sides = [(c, lab) for c, lab in clips if lab["slot"] == "side"]
    fronts = [(c, lab) for c, lab in clips if lab["slot"] == "front"]
    if not sides or not fronts:
        print("need at least one labelled walking side clip and one front clip", file=sys.stderr)
        return 2
    from igait_pipeline.schemas import Keypoints
    from igait_pipeline.stages.pose import MediaPipePose

    kps = {}
    with MediaPipePose(video=False) as est:
        for clip, label in clips:
            path, _ = keypoints_for(clip, label, clip.parent / "events-cache", args.fresh, est)
            kps[clip.stem] = Keypoints.model_validate_json(path.read_text())
    print("side clip                          front clip               who   stride side/front s diff  "
          "leg:trunk side/front diff  verdict")
    results = []
    for sc, sl in sides:
        for fc, fl in fronts:
            r = judge(kps[sc.stem], kps[fc.stem], sc.stem, fc.stem, person(sl) == person(fl))
            results.append(r)
            print(line(r))
    print("\n".join(summary(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
