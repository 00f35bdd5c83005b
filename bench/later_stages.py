"""Stages 5–7 for the bench (imported by bench/stages.py): cycles, features + prediction, archive."""
from __future__ import annotations

import time
from pathlib import Path

from igait_pipeline.schemas import JobMetadata, Keypoints
from igait_pipeline.stages import archive, cycles, features, predict

REFERENCE_MODEL = Path(__file__).resolve().parents[1] / "igait_pipeline" / "reference_model"
METADATA = {"age": 9, "sex": "F", "height": "4'2\"", "weight": "28 kg", "ethnicity": "not stated",
            "email": "family@example.org"}


def later_stages(tmp: Path) -> list[tuple]:
    kp = Keypoints.model_validate_json((tmp / "s4" / "side_keypoints.json").read_text())
    front = kp.model_copy(update={"view": "front"})  # the sample is a side view; it stands in for the front
    rows = []
    t = time.perf_counter()
    gait = cycles.measure_gait(kp, front, "bench_1")
    gait.plots()
    cyc = gait.cycles
    rows.append(("5 gait_cycles", time.perf_counter() - t, f"{len(cyc.strides)} strides", None))
    t = time.perf_counter()
    model = predict.load_model_dir(REFERENCE_MODEL)
    fs = features.compute_features(cyc, JobMetadata.parse(METADATA))
    pred = predict.predict(fs, model, "bench_1", flags=cyc.quality["flags"], stage5_settings=cyc.settings)
    rows.append(("6 prediction", time.perf_counter() - t, f"{pred.classification}, score {pred.score:.3f}", None))
    t = time.perf_counter()
    files = {4: {p.name: p for p in (tmp / "s4").iterdir()}, 3: {p.name: p for p in (tmp / "s3").iterdir()}}
    archive.build_archive("bench_1", files, archive.summary_text("bench_1", None, cyc, pred), tmp / "results.zip")
    rows.append(("7 results_archive", time.perf_counter() - t, "stages 3–4 files", None))
    return rows
