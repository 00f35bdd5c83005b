"""Stage 7: one `results.zip` with every stage's files and a short summary a person can read."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from igait_pipeline.schemas import Cycles, Prediction, ValidationReport

STORED = {".mp4", ".png", ".jpg", ".zip"}  # already compressed: stored as they are


def _caveat(prediction: Prediction) -> list[str]:
    """The lines SUMMARY.txt starts with: what the result may and may not be read as."""
    lines = []
    if prediction.classification == "INDETERMINATE":
        lines.append("RESULT: INDETERMINATE - this job gets no screening result, because:")
        lines += [f"  - {r}" for r in prediction.reasons]
        lines.append(f"The model's score ({prediction.score:.3f}) is kept below only as a number; it is not a "
                     f"result and says nothing about this person.")
    if not prediction.clinically_validated:
        lines.append(prediction.disclaimer)
    return lines + ([""] if lines else [])


def summary_text(job_id: str, validation: ValidationReport | None, cycles: Cycles | None,
                 prediction: Prediction | None) -> str:
    lines = [f"iGait results for job {job_id}", ""]
    if prediction:
        lines += _caveat(prediction)
    if validation:
        lines.append(f"Video check: {'passed' if validation.valid else 'FAILED'}")
        for view, v in sorted(validation.views.items()):
            lines.append(f"  {view}: person in {v.person_ratio:.0%} of sampled frames, whole body in "
                         f"{v.full_body_ratio:.0%}, walking: {'yes' if v.walking else 'no'}, seen from the "
                         f"{v.view_seen}, walker on {v.walker_coverage:.0%} of sampled frames")
            lines += [f"    note: {w}" for w in v.warnings]
        lines += [f"  note: {w}" for w in validation.warnings]
        lines += [f"  reason: {r}" for r in validation.reasons]
        lines.append("")
    if cycles:
        lines += _gait_lines(cycles)
    if prediction:
        if prediction.classification == "INDETERMINATE":
            lines.append(f"Model score (not a result): {prediction.score:.3f}")
        else:
            lines.append(f"Screening score: {prediction.score:.3f} (threshold {prediction.threshold}) -> "
                         f"{prediction.classification}")
        lines.append(f"In the model's domain: {'yes' if prediction.in_domain else 'no'}"
                     + (f" ({len(prediction.out_of_range_inputs)} inputs outside their training range)"
                        if prediction.out_of_range_inputs else ""))
        lines.append(f"Model: {prediction.model.name} {prediction.model.version} "
                     f"(sha256 {prediction.model.sha256[:12]}…), clinically validated: "
                     f"{'yes' if prediction.clinically_validated else 'no'}")
        lines.append(f"Trained on: {prediction.model.trained_on}")
        if prediction.clinically_validated:
            lines.append(prediction.disclaimer)
    return "\n".join(lines) + "\n"


JOINT_NAMES = {"side_hip_flexion": "hip flexion/extension", "side_knee_flexion": "knee flexion/extension",
               "front_hip_abduction": "hip ab/adduction", "front_knee_abduction": "knee ab/adduction"}


def _source(d) -> str:
    """Where a number comes from: "side view, 8 steady strides", "front view, 412 front-view frames of 6 …"."""
    basis = d.basis.removeprefix("front-view ")
    return f"{d.view} view, {d.n} {basis}" if d.view else f"{d.n} {d.basis}"


def _gait_lines(cycles: Cycles) -> list[str]:
    lines = [f"Gait (events from the {cycles.view_used} view): {len(cycles.strides)} steady strides used, "
             f"{len(cycles.excluded_strides)} excluded (gait initiation/termination, cut by the frame edge)"]
    front = ((cycles.quality or {}).get("views") or {}).get("front") or {}
    if front.get("strides"):
        lines.append(f"  front view ({str(front.get('direction', '')).replace('_', ' ')}): "
                     f"{front.get('steady_strides')} of {front.get('strides')} strides steady")
    for name, d in cycles.parameter_details.items():
        if d.value is None:
            lines.append(f"  {name}: not reported ({d.reason})")
        else:
            lines.append(f"  {name}: {d.value:.3f}  ({_source(d)})")
    if not cycles.parameter_details:  # cycles.json from before parameter_details existed
        lines += [f"  {k}: {v:.3f}" for k, v in cycles.parameters.items() if isinstance(v, float)]
    kin = cycles.kinematics or {}
    sym, curves = kin.get("symmetry") or {}, kin.get("curves") or {}
    if sym:
        lines.append("  range of motion per leg (mean gait cycle), left / right, symmetry index:")
        for joint, v in sym.items():
            view = joint.split("_")[0]
            label = f"{JOINT_NAMES.get(joint, joint)}, from the {view} view"
            if v.get("rom_left_deg") is None:
                lines.append(f"    {label}: not measured ({v.get('reason')})")
            else:
                nl = (curves.get(f"{joint}_left") or {}).get("n_cycles", "?")
                nr = (curves.get(f"{joint}_right") or {}).get("n_cycles", "?")
                where = ", over the stance phases where the 2-D projection is valid" if view == "front" else ""
                si = (f"SI {v['rom_symmetry_index_pct']:+.1f} %" if v.get("rom_symmetry_index_pct") is not None
                      else f"no SI ({v.get('reason')})")
                lines.append(f"    {label} ({nl} left / {nr} right steady cycles{where}): {v['rom_left_deg']:.1f}° / "
                             f"{v['rom_right_deg']:.1f}°, {si}")
    return lines + [""]


def build_archive(job_id: str, stages: dict[int, dict[str, Path]], summary: str,
                  out_path: str | os.PathLike) -> dict:
    """Zip `stage_N/<name>` for every file given, plus SUMMARY.txt; written atomically. Returns a manifest."""
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.partial")
    manifest = {}
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr("SUMMARY.txt", summary, compress_type=zipfile.ZIP_DEFLATED)
            for stage in sorted(stages):
                for name, path in sorted(stages[stage].items()):
                    arc = f"stage_{stage}/{name}"
                    kind = zipfile.ZIP_STORED if Path(name).suffix.lower() in STORED else zipfile.ZIP_DEFLATED
                    z.write(path, arc, compress_type=kind)
                    manifest[arc] = Path(path).stat().st_size
            z.writestr("manifest.json", json.dumps({"job_id": job_id, "files": manifest}, indent=1),
                       compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest
