"""The research team's label file, `research/labels.csv` in storage: one row per labelled job.

    job_id,label,source,date
    user123_5,ASD,clinic-A ADOS-2,2026-10-04
    user124_1,NO ASD,clinic-A ADOS-2,2026-10-05

`label` is "ASD" or "NO ASD" (the classes of prediction.json); `source` says who labelled it and how; `date` is
an ISO date. The file is read whole or not at all: an unknown column, a malformed or unknown job ID, a job listed
twice, an unknown label, an empty source or a bad date raise LabelFileError naming the row (its line number in the
file) and the cause. No Dagster import.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Collection

import pandas as pd

from igait_pipeline.layout import JobIdError, user_id_of, validate_job_id

COLUMNS = ("job_id", "label", "source", "date")
LABELS = {"ASD": 1, "NO ASD": 0}


class LabelFileError(ValueError):
    """The label file cannot be used; the message names the row and the cause."""


def parse_labels(data: bytes, known_jobs: Collection[str] | None = None,
                 name: str = "research/labels.csv") -> pd.DataFrame:
    """The label file as a data frame (job_id, participant, label, y, source, date), or LabelFileError.
    known_jobs: the job IDs the pipeline knows (None: not checked)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelFileError(f"{name} is not UTF-8 text: {e}") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise LabelFileError(f"{name} is empty; its first line must be {','.join(COLUMNS)}")
    if [h.strip() for h in header] != list(COLUMNS):
        raise LabelFileError(f"{name} line 1: columns {header} are not {list(COLUMNS)}")
    known = set(known_jobs) if known_jobs is not None else None
    rows, seen = [], {}
    for line, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        where = f"{name} line {line}"
        if len(fields) != len(COLUMNS):
            raise LabelFileError(f"{where}: {len(fields)} fields, expected {len(COLUMNS)} ({','.join(COLUMNS)})")
        job_id, label, source, date = (f.strip() for f in fields)
        try:
            validate_job_id(job_id)
        except JobIdError as e:
            raise LabelFileError(f"{where}: {e}") from None
        where = f"{name} line {line} (job {job_id})"
        if known is not None and job_id not in known:
            raise LabelFileError(f"{where}: no such job in the pipeline (not a partition of the jobs)")
        if job_id in seen:
            raise LabelFileError(f"{where}: the job is labelled twice (first on line {seen[job_id]})")
        if label not in LABELS:
            raise LabelFileError(f"{where}: unknown label {label!r}; labels are {', '.join(LABELS)}")
        if not source:
            raise LabelFileError(f"{where}: empty source (who labelled the job, and how)")
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise LabelFileError(f"{where}: date {date!r} is not an ISO date (YYYY-MM-DD)") from None
        seen[job_id] = line
        rows.append({"job_id": job_id, "participant": user_id_of(job_id), "label": label, "y": LABELS[label],
                     "source": source, "date": day.isoformat()})
    return pd.DataFrame(rows, columns=["job_id", "participant", "label", "y", "source", "date"])


def labels_csv(rows: list[tuple[str, str, str, str]]) -> bytes:
    """A label file from (job_id, label, source, date) rows."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    w.writerows(rows)
    return out.getvalue().encode()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
