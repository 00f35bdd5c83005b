"""The cohort feature table: one row per finished job (stage 5 done), for researchers (pandas) and for training.

A row holds what stage 6 scores — the feature vector of `stages.features` (per-leg joint-angle curves sampled
over the gait cycle, their cycle-to-cycle SD, the gait parameters, age / sex / height / weight) — plus, per gait
parameter, the steady strides (or steps / frames) it used (`n__{parameter}`, 0 when not measured), each stage 5
quality flag (`flag__{name}`), the view the events came from, and the job's label where the label file has one.
Never the e-mail, ethnicity or any other field of metadata.json, and never a prediction (the table feeds the
model: reading predictions would make a cycle).

Scaling: a row depends only on its job's cycles.json and metadata.json, so `build_rows` reuses the previous
table's row of every job whose two files have not changed (same size and modification time in storage: the
`version` column) and computes only new or changed jobs; labels are joined afresh each time (cheap). Listing is
one server-side glob per file name (`jobs/*/stage_5/cycles.json`), not a walk of every object. A full rebuild
(no previous table) reads every job once; `python -m bench.research table` measures both at 10,000 jobs.

Format: Parquet (`research/gait_feature_table.parquet`, zstd), read with `pandas.read_parquet`: types are kept
(job IDs as strings, counts as integers, flags as booleans, the label as a nullable integer), and every column's
field metadata carries its `unit` and `description` (`column_info`), the file's metadata the table format
(`igait.table`). No Dagster import.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from igait_pipeline.layout import CYCLES, UPLOAD, user_id_of
from igait_pipeline.schemas import Cycles, JobMetadata, MetadataError
from igait_pipeline.stages import features
from igait_pipeline.stages.gait.parameters import METHODS
from igait_pipeline.storage import Storage

ID_COLUMNS = ["job_id", "participant", "version", "view_used", "steady_strides"]
LABEL_COLUMNS = ["label", "y", "label_source", "label_date"]
TABLE_KEY = "research/gait_feature_table.parquet"
TABLE_FORMAT = "igait-feature-table/2"  # /1 was CSV; /2 Parquet with units and descriptions per column


@dataclass(frozen=True)
class JobFiles:
    job_id: str
    version: str  # of cycles.json and metadata.json together: "size:mtime|size:mtime"


def finished_jobs(storage: Storage) -> list[JobFiles]:
    """Every job with a cycles.json and a metadata.json, with the two files' version (two globbed listings)."""
    def listing(stage, name):
        out = {}
        for o in storage.list("jobs/", match_glob=f"jobs/*/stage_{stage.number}/{name}"):
            out[o.key.split("/")[1]] = f"{o.size}:{o.updated:.6f}"
        return out
    cyc, meta = listing(CYCLES, "cycles.json"), listing(UPLOAD, "metadata.json")
    return [JobFiles(j, f"{cyc[j]}|{meta[j]}") for j in sorted(cyc) if j in meta]


def job_row(job_id: str, cycles: Cycles, meta: JobMetadata) -> dict:
    """One job's row (no label columns)."""
    fs = features.compute_features(cycles, meta)
    row: dict = {"job_id": job_id, "participant": user_id_of(job_id), "view_used": cycles.view_used,
                 "steady_strides": len(cycles.strides)}
    row.update(fs.as_dict())
    for name in features.PARAMETERS:
        d = cycles.parameter_details.get(name)
        row[f"n__{name}"] = int(d.n) if d is not None and d.value is not None else 0
    for flag in cycles.quality.get("flags") or []:
        row[f"flag__{flag['name']}"] = bool(flag.get("ok"))
    return row


def build_rows(jobs: Iterable[JobFiles], read: Callable[[str, str], bytes], previous: pd.DataFrame | None = None,
               progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, dict]:
    """The table without labels: previous rows reused where the job's files have the same version, the others
    computed from `read(job_id, "cycles" | "metadata")`. Returns (table, {"reused", "computed", "skipped":
    {job_id: why}})."""
    jobs = list(jobs)
    old = {}
    if previous is not None and len(previous):
        prev = previous.drop(columns=[c for c in LABEL_COLUMNS if c in previous.columns])
        old = {r["job_id"]: r for r in prev.to_dict("records")}
    rows, skipped, reused = [], {}, 0
    for i, job in enumerate(jobs):
        if progress and i % 500 == 0:
            progress(i, len(jobs))
        hit = old.get(job.job_id)
        if hit is not None and hit.get("version") == job.version:
            rows.append(hit)
            reused += 1
            continue
        try:
            cyc = Cycles.model_validate_json(read(job.job_id, "cycles"))
            meta = JobMetadata.from_json(read(job.job_id, "metadata"))
            row = job_row(job.job_id, cyc, meta)
        except (ValueError, MetadataError, features.FeaturesError) as e:
            skipped[job.job_id] = str(e).splitlines()[0][:300]
            continue
        row["version"] = job.version
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        rest = [c for c in table.columns if c not in ID_COLUMNS]
        table = table[[c for c in ID_COLUMNS if c in table.columns] + rest]
    return table, {"reused": reused, "computed": len(rows) - reused, "skipped": skipped}


def with_labels(table: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The table with label, y (1 ASD, 0 NO ASD, empty unlabelled), label_source and label_date."""
    lab = labels.rename(columns={"source": "label_source", "date": "label_date"})[
        ["job_id", "label", "y", "label_source", "label_date"]]
    out = table.drop(columns=[c for c in LABEL_COLUMNS if c in table.columns]).merge(lab, on="job_id", how="left")
    out["y"] = out["y"].astype("Int64")
    return out


PARAMETER_UNITS = {"cadence_spm": "steps/min", "stride_time_mean_s": "s", "stride_time_cv": "fraction",
                   "step_time_mean_s": "s", "step_time_asymmetry": "fraction", "stance_ratio": "fraction of the stride",
                   "step_length_norm": "leg lengths", "walking_speed_norm": "leg lengths/s",
                   "stride_length_norm": "leg lengths", "base_width_ratio": "ankle separation / hip separation"}
PATIENT_INFO = {"age_years": ("years", "age at the upload (metadata.json)"),
                "sex_male": ("indicator", "1 if metadata.json says male"),
                "sex_female": ("indicator", "1 if metadata.json says female"),
                "height_cm": ("cm", "height (metadata.json, converted)"),
                "weight_kg": ("kg", "weight (metadata.json, converted)")}
OTHER_INFO = {"job_id": ("", "the job (partition) ID"), "participant": ("", "the user part of the job ID: one child"),
              "version": ("", "size:mtime of cycles.json | metadata.json the row was computed from"),
              "view_used": ("", "the view stage 5's events (and the mean parameters) come from"),
              "steady_strides": ("strides", "steady strides of view_used"),
              "label": ("", "ASD or NO ASD, from the label file (empty: unlabelled)"),
              "y": ("", "1 ASD, 0 NO ASD, null unlabelled"), "label_source": ("", "who labelled it (label file)"),
              "label_date": ("", "when it was labelled (label file)")}


def column_info(name: str) -> tuple[str, str]:
    """(unit, description) of a feature-table column, written into the Parquet schema's field metadata."""
    if name in OTHER_INFO:
        return OTHER_INFO[name]
    if name in PATIENT_INFO:
        return PATIENT_INFO[name]
    if name in PARAMETER_UNITS:
        return PARAMETER_UNITS[name], f"stage 5 gait parameter: {METHODS.get(name, name)}"
    if name.startswith("n__"):
        return "count", f"steady strides (or steps, or frames) {name[3:]} was computed from; 0 when not measured"
    if name.startswith("flag__"):
        return "", f"stage 5 quality flag {name[6:]}: true when the check passed"
    for series in features.SERIES:
        if name == f"{series}_cycle_sd":
            return "degrees", f"{series}: mean over the cycle of the SD across steady cycles"
        if name.startswith(series + "_") and name[len(series) + 1:].isdigit():
            return "degrees", f"{series} joint angle at {int(name[len(series) + 1:])} % of the gait cycle " \
                              f"(mean over the leg's steady cycles)"
    return "", ""


def to_parquet(table: pd.DataFrame) -> bytes:
    """The table as Parquet bytes, each column's unit and description in its field metadata."""
    table = table.copy()
    for c in table.columns:
        if c.startswith("flag__"):
            table[c] = table[c].astype("boolean")  # True / False / missing (a job without that flag)
        elif c.startswith("n__"):
            table[c] = table[c].astype("int64")
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    fields = []
    for f in arrow.schema:
        unit, description = column_info(f.name)
        fields.append(f.with_metadata({"unit": unit, "description": description}))
    meta = {**(arrow.schema.metadata or {}), b"igait.table": json.dumps({"format": TABLE_FORMAT}).encode()}
    arrow = arrow.cast(pa.schema(fields, metadata=meta))
    buf = io.BytesIO()
    pq.write_table(arrow, buf, compression="zstd")
    return buf.getvalue()


def from_parquet(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def parquet_schema(data: bytes) -> pa.Schema:
    """The file's schema (types, and each field's unit / description metadata), without reading the rows."""
    return pq.read_schema(io.BytesIO(data))


def summary(table: pd.DataFrame) -> dict:
    """What the asset's metadata shows: rows, participants, label balance, missingness per feature group."""
    feats = [n for n in features.FEATURE_NAMES if n in table.columns]
    miss = table[feats].isna().mean() if len(table) else pd.Series(dtype=float)
    groups = {"curves": [n for n in feats if n[-3:].isdigit()], "cycle_sd": [n for n in feats
                                                                           if n.endswith("_cycle_sd")],
              "parameters": [n for n in feats if n in features.PARAMETERS],
              "patient": [n for n in feats if n in features.PATIENT]}
    labelled = table["y"].notna() if "y" in table.columns else pd.Series(False, index=table.index)
    return {
        "rows": int(len(table)),
        "participants": int(table["participant"].nunique()) if len(table) else 0,
        "labelled_rows": int(labelled.sum()),
        "label_balance": {k: int(v) for k, v in table.loc[labelled, "label"].value_counts().items()}
        if labelled.any() else {},
        "missing_share": {g: round(float(np.mean(miss[c])), 4) if c else None for g, c in groups.items()},
        "most_missing": {k: round(float(v), 4) for k, v in miss.sort_values(ascending=False).head(5).items()},
    }
