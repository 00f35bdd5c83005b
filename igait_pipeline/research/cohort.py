"""A simulated cohort to exercise the research flow without video: participants of both simulated classes, several
jobs each, written to storage as the pipeline leaves them after stage 4 (stage_0/metadata.json, stage_4
keypoints and an overlay video of those keypoints), plus the label file.

Each participant is one simulated child (`synthetic.sample_params` of its class, seeded by its number); each of
its jobs is a new recording of that child (another seed: other noise, strides and camera), so jobs of one
participant are alike and the grouped cross-validation matters. The user IDs (`simkid-007`) say nothing of the
class. No Dagster import.
"""
from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igait_pipeline.layout import job_key
from igait_pipeline.reference_model import synthetic
from igait_pipeline.research.labels import labels_csv
from igait_pipeline.schemas import Keypoints
from igait_pipeline.stages import cycles, media, pose
from igait_pipeline.storage import Storage

LABEL_SOURCE = "simulated: the synthetic walkers' class (igait_pipeline.reference_model.synthetic)"


@dataclass(frozen=True)
class CohortSettings:
    """The simulated cohort's shape."""

    participants_per_class: int = 8
    jobs_per_participant: int = 2
    seed: int = 0
    """Participant i's child comes from seed * 10_000 + i; its job j from that times 100 + j."""
    overlay_width: int = 240
    """Width of the overlay video drawn from the simulated keypoints (0: none; the keypoints asset the pipeline
    reads needs it, so 0 is for building tables outside Dagster only)."""
    label_date: str = "2026-12-01"


@dataclass(frozen=True)
class CohortJob:
    job_id: str
    participant: str
    label: str  # "ASD" | "NO ASD"


def _overlay(kp: Keypoints, dst: Path, width: int) -> None:
    height = int(round(width * kp.height / kp.width / 2) * 2)
    writer = media.VideoWriter(dst, width, height, kp.fps)
    try:
        for fr in kp.frames:
            frame = np.zeros((height, width, 3), np.uint8)
            writer.write(pose.draw_skeleton(frame, None if fr.landmarks is None else np.asarray(fr.landmarks)))
    except BaseException:
        writer.abort()
        raise
    writer.close()


def write_cohort(storage: Storage, settings: CohortSettings = CohortSettings()) -> list[CohortJob]:
    """Write every job's stage 0 metadata and stage 4 files; return the jobs (label file: `cohort_labels`).
    Per job its stage 4 files first, metadata.json last (as an upload completes). The overlay videos are drawn two
    at a time (each encoder is an ffmpeg process of its own, mostly starting up for these short clips)."""
    jobs, pending = [], []
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=2) as pool:
        for label in (1, 0):
            for k in range(settings.participants_per_class):
                number = 2 * k + (1 - label)  # the classes interleave: simkid-000 ASD-like, -001 TD-like, ...
                participant = f"simkid-{number:03d}"
                child_seed = settings.seed * 10_000 + number
                params = synthetic.sample_params(np.random.default_rng(child_seed), label)
                for j in range(1, settings.jobs_per_participant + 1):
                    job_id = f"{participant}_{j}"
                    w = synthetic.make_walker(child_seed * 100 + j, label=label, job_id=job_id, params=params)
                    meta = {"age": w.metadata.age, "sex": w.metadata.sex, "height": f"{w.metadata.height_cm} cm",
                            "weight": f"{w.metadata.weight_kg} kg", "ethnicity": "synthetic",
                            "email": f"{participant}@example.invalid"}
                    overlays = []
                    for view, kp in (("front", w.front), ("side", w.side)):
                        storage.write_bytes(job_key(job_id, 4, f"{view}_keypoints.json"),
                                            kp.model_dump_json().encode())
                        if settings.overlay_width:
                            out = Path(tmp) / f"{job_id}.{view}_overlay.mp4"
                            overlays.append((pool.submit(_overlay, kp, out, settings.overlay_width), out,
                                             job_key(job_id, 4, f"{view}_overlay.mp4")))
                    pending.append((job_id, overlays, meta))
                    jobs.append(CohortJob(job_id, participant, "ASD" if label else "NO ASD"))
        for job_id, overlays, meta in pending:
            for drawn, out, key in overlays:
                drawn.result()
                storage.upload(out, key)
                out.unlink()
            storage.write_bytes(job_key(job_id, 0, "metadata.json"), json.dumps(meta).encode())
    return sorted(jobs, key=lambda j: j.job_id)


def write_stage5(storage: Storage, jobs: list[CohortJob]) -> None:
    """Stage 5 of each simulated job, as the gait_cycles asset computes it (cycles.json from its keypoints), without
    a Dagster run: what a feature table of the cohort needs."""
    for j in jobs:
        kp = {v: Keypoints.model_validate_json(storage.read_bytes(job_key(j.job_id, 4, f"{v}_keypoints.json")))
              for v in ("front", "side")}
        storage.write_bytes(job_key(j.job_id, 5, "cycles.json"),
                            cycles.detect_cycles(kp["side"], kp["front"], j.job_id).model_dump_json().encode())


def cohort_labels(jobs: list[CohortJob], settings: CohortSettings = CohortSettings()) -> bytes:
    return labels_csv([(j.job_id, j.label, LABEL_SOURCE, settings.label_date) for j in jobs])
