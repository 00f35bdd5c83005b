"""Stage 2 on the synthetic phone-camera grid (issue 16, item 2): per-cell verdicts and the walking evidence.

    python -m bench.front_scenes [--n-per-cell N] [--seed S] [--negatives N] [--by FACTOR …] [--cells]
                                 [--evidence] [--failures] [--json OUT]

Renders every scene of `scenes.front_grid`, `scenes.side_grid` and `scenes.negative_grid`
(igait_pipeline/reference_model/scenes.py: a child walking toward / away from / across a phone camera, with or
without a parent, as stage 2's detector would report it on every frame), runs stage 2's pure analysis on each
(`scenes.judge`: `validity.analyse_detections` at stage 2's sampling step, with the scene as the second pass's
`look`) and prints:

- accuracy per value of each factor (`--by`, default every factor) and, with `--cells`, per whole cell: walking
  verdict right, view right (walking scenes), walker track is the child (≥ 90 % of its samples), accepted (no
  reasons), all right;
- the numbers the walking decision uses (`v.walk`, whatever keys stage 2 writes): for each numeric key its
  5th / 50th / 95th percentile per group (front toward, front away, side, negatives by kind), and the
  truth's own numbers (child's projected height at start / end, speed) alongside;
- with `--failures`, every scene whose verdict is wrong, with its reasons.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import numpy as np

from igait_pipeline.reference_model import scenes

FACTORS = ("view", "direction", "camera", "height", "cadence", "parent", "extra", "kind")


def _fmt(x) -> str:
    return "-" if x is None else f"{100 * x:5.1f}%"


def table(rows: list[dict], key: str) -> str:
    out = [f"{key:<52} {'n':>5} {'walking':>7} {'view':>7} {'walker':>7} {'accept':>7} {'all':>7}"]
    for r in rows:
        out.append(f"{r[key]:<52} {r['n']:>5} {_fmt(r['walking_ok']):>7} {_fmt(r['view_ok']):>7} "
                   f"{_fmt(r['walker_ok']):>7} {_fmt(r['accepted']):>7} {_fmt(r['all_ok']):>7}")
    return "\n".join(out)


def _group(o: scenes.Outcome) -> str:
    f = scenes.cell_factors(o.cell)
    if f["view"] == "front":
        return f"front {f['direction']}"
    if f["view"] == "side":
        return "side"
    return f"negative {f['kind']}"


def evidence_table(outcomes: list[scenes.Outcome]) -> str:
    """Percentiles (5/50/95) of every numeric walk-evidence value per group, and counts of its flags."""
    groups: dict[str, list[scenes.Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[_group(o)].append(o)
    lines = []
    for g, os_ in sorted(groups.items()):
        lines.append(f"[{g}] n={len(os_)}")
        keys = sorted({k for o in os_ for k in o.walk})
        for k in keys:
            vals = [o.walk.get(k) for o in os_]
            if all(isinstance(v, bool) or v is None for v in vals):
                true = sum(v is True for v in vals)
                lines.append(f"  {k:<22} true {true}/{len(vals)}")
            elif all(isinstance(v, (int, float)) or v is None for v in vals):
                num = np.array([float(v) for v in vals if v is not None])
                if len(num):
                    p5, p50, p95 = np.percentile(num, [5, 50, 95])
                    lines.append(f"  {k:<22} p5 {p5:9.4g}  p50 {p50:9.4g}  p95 {p95:9.4g}  (n={len(num)})")
            elif all(isinstance(v, str) or v is None for v in vals):
                counts: dict[str, int] = defaultdict(int)
                for v in vals:
                    counts[str(v)] += 1
                lines.append(f"  {k:<22} " + ", ".join(f"{a}: {b}" for a, b in sorted(counts.items())))
        px = np.array([o.truth.get("child_px") or [np.nan, np.nan] for o in os_], dtype=float)
        if np.isfinite(px).any():
            lines.append(f"  truth child_px start  p50 {np.nanmedian(px[:, 0]):.0f}  end p50 "
                         f"{np.nanmedian(px[:, 1]):.0f}; speed p50 "
                         f"{np.median([o.truth.get('speed_m_s', np.nan) for o in os_]):.2f} m/s")
    return "\n".join(lines)


def run(n_per_cell: int = 1, seed: int = 0, negatives: int = 300) -> tuple[list[scenes.Outcome], float]:
    specs = scenes.front_grid(n_per_cell, seed) + scenes.side_grid(n_per_cell, seed) \
        + scenes.negative_grid(negatives, seed)
    t0 = time.perf_counter()
    outcomes = [scenes.judge(scenes.render(s)) for s in specs]
    return outcomes, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-per-cell", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--negatives", type=int, default=300)
    ap.add_argument("--by", nargs="*", default=list(FACTORS))
    ap.add_argument("--cells", action="store_true", help="also one row per whole cell")
    ap.add_argument("--failures", action="store_true", help="list every scene with a wrong verdict")
    ap.add_argument("--json", help="write every outcome (verdicts, walk evidence, truth) as JSON lines here")
    args = ap.parse_args(argv)
    outcomes, seconds = run(args.n_per_cell, args.seed, args.negatives)
    print(f"{len(outcomes)} scenes in {seconds:.1f} s ({1000 * seconds / max(1, len(outcomes)):.0f} ms per scene: "
          f"render + stage 2)\n")
    groups = {"front": [o for o in outcomes if o.cell.startswith("front/")],
              "side": [o for o in outcomes if o.cell.startswith("side/")],
              "negative": [o for o in outcomes if o.cell.startswith("negative/")]}
    for name, os_ in groups.items():
        if not os_:
            continue
        print(f"== {name}: {len(os_)} scenes")
        for by in args.by:
            rows = scenes.summarise(os_, by)
            if len(rows) > 1 or rows[0][by] != "-":
                print(table(rows, by) + "\n")
        if args.cells:
            print(table(scenes.summarise(os_, "cell"), "cell") + "\n")
    print("== walk evidence (v.walk) per group\n" + evidence_table(outcomes) + "\n")
    if args.failures:
        print("== wrong verdicts")
        for o in outcomes:
            if not o.ok:
                print(f"{o.cell} seed={o.truth['params']['render_seed']}: walking={o.walking} view={o.view_seen} "
                      f"walker={o.walker} ({o.walker_child_share:.0%} child) reasons={o.reasons}")
    if args.json:
        with open(args.json, "w") as f:
            for o in outcomes:
                f.write(json.dumps({**o.as_row(), "truth": {k: v for k, v in o.truth.items()
                                                            if k not in ("child_params", "parent_params")}},
                                   default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x)) + "\n")
    wrong = sum(not o.ok for o in outcomes)
    print(f"{len(outcomes) - wrong}/{len(outcomes)} scenes right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
