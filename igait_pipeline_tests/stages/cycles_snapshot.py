"""A snapshot of cycles.json on the sample clip (stable fields, with tolerances) that guards stage 5 against
regressions. The whole-graph test compares its job's cycles.json with it.

Refresh it deliberately, after checking the change is an improvement, from a job's stage 4 keypoints:

    python -m igait_pipeline_tests.stages.cycles_snapshot jobs/demo_1/stage_4
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from igait_pipeline.schemas import Cycles

SNAPSHOT = Path(__file__).resolve().parent / "data" / "sample_cycles_snapshot.json"
TOLERANCE = {"event_s": 2 / 60, "count": 1, "relative": 0.04, "stance_ratio": 0.03, "rom_deg": 6.0,
             "step_length_norm": 0.06}


def snapshot_of(c: Cycles) -> dict:
    kin = c.kinematics.get("curves", {})
    return {
        "view_used": c.view_used,
        "steady_strides": len(c.strides),
        "excluded_strides": len(c.excluded_strides),
        "heel_strikes": c.heel_strikes,
        "toe_offs": c.toe_offs,
        "parameters": {k: c.parameters[k] for k in ("cadence_spm", "stride_time_mean_s", "walking_speed_norm",
                                                     "stance_ratio", "step_length_norm")},
        "null_parameters": sorted(k for k, v in c.parameters.items() if v is None),
        "counts": {k: d.n for k, d in c.parameter_details.items()},
        "rom_deg": {k: v.get("rom_deg") for k, v in kin.items()},
        "flags": {f["name"]: f["ok"] for f in c.quality.get("flags", [])},
    }


def differences(c: Cycles, snapshot: dict) -> list[str]:
    """What differs from the snapshot beyond the tolerances (empty: it matches)."""
    now, tol, out = snapshot_of(c), TOLERANCE, []
    for key in ("view_used", "null_parameters", "flags"):
        if now[key] != snapshot[key]:
            out.append(f"{key}: {now[key]} vs snapshot {snapshot[key]}")
    for key in ("steady_strides", "excluded_strides"):
        if abs(now[key] - snapshot[key]) > tol["count"]:
            out.append(f"{key}: {now[key]} vs snapshot {snapshot[key]}")
    for kind in ("heel_strikes", "toe_offs"):
        for foot, times in snapshot[kind].items():
            got = now[kind].get(foot, [])
            missing = [t for t in times if not any(abs(t - g) <= tol["event_s"] for g in got)]
            extra = [g for g in got if not any(abs(t - g) <= tol["event_s"] for t in times)]
            if len(missing) > tol["count"] or len(extra) > tol["count"]:
                out.append(f"{kind} {foot}: {got} vs snapshot {times}")
    for k, v in snapshot["parameters"].items():
        got = now["parameters"][k]
        if (got is None) != (v is None):
            out.append(f"{k}: {got} vs snapshot {v}")
        elif v is not None:
            limit = tol.get(k, tol["relative"] * abs(v))
            if abs(got - v) > limit:
                out.append(f"{k}: {got} vs snapshot {v} (tolerance {limit:.3g})")
    for k, v in snapshot["counts"].items():
        if abs(now["counts"].get(k, -99) - v) > max(tol["count"], 0.25 * v):
            out.append(f"count of {k}: {now['counts'].get(k)} vs snapshot {v}")
    for k, v in snapshot["rom_deg"].items():
        got = now["rom_deg"].get(k)
        if (got is None) != (v is None) or (v is not None and abs(got - v) > tol["rom_deg"]):
            out.append(f"ROM {k}: {got} vs snapshot {v}")
    return out


def main(stage_4_dir: str) -> None:
    from igait_pipeline.schemas import Keypoints
    from igait_pipeline.stages import cycles

    d = Path(stage_4_dir)
    side = Keypoints.model_validate_json((d / "side_keypoints.json").read_text())
    front = Keypoints.model_validate_json((d / "front_keypoints.json").read_text())
    c = cycles.detect_cycles(side, front, side.job_id)
    SNAPSHOT.write_text(json.dumps(snapshot_of(c), indent=1) + "\n")
    print(f"wrote {SNAPSHOT}")


if __name__ == "__main__":
    main(sys.argv[1])
