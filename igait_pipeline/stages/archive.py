"""Stage 7: one `results.zip` with every stage's files and a short summary a person can read."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from igait_pipeline.schemas import Cycles, Prediction, ValidationReport

STORED = {".mp4", ".png", ".jpg", ".zip"}  # already compressed: stored as they are


def summary_text(job_id: str, validation: ValidationReport | None, cycles: Cycles | None,
                 prediction: Prediction | None) -> str:
    lines = [f"iGait results for job {job_id}", ""]
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
        p = cycles.parameters
        lines.append(f"Gait ({cycles.view_used} view): {len(cycles.strides)} strides")
        for name, value in p.items():
            if value is not None:
                lines.append(f"  {name}: {value:.3f}" if isinstance(value, float) else f"  {name}: {value}")
        lines.append("")
    if prediction:
        lines.append(f"Screening score: {prediction.score:.3f} (threshold {prediction.threshold}) -> "
                     f"{prediction.classification}")
        lines.append(f"Model: {prediction.model.name} {prediction.model.version} "
                     f"(sha256 {prediction.model.sha256[:12]}…)")
        lines.append(f"Trained on: {prediction.model.trained_on}")
        outside = (prediction.features.get("outside_training_range") or {}).get("count", 0)
        if outside:
            lines.append(f"Caution: {outside} model inputs lie far outside the data the model was trained on; "
                         f"the score is an extrapolation.")
        lines.append(prediction.disclaimer)
    return "\n".join(lines) + "\n"


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
