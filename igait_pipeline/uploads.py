"""Finding complete uploads in storage (no Dagster here; the sensor wraps it).

A job is ready when `jobs/{job_id}/stage_0/` holds front.mp4, side.mp4 and metadata.json; the web back end (and
`igait submit`) writes metadata.json last. A scan lists only metadata.json objects (server-side glob) and reads
only those newer than the cursor: a high-water mark of their update time plus the jobs seen at exactly that time.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from igait_pipeline.layout import UPLOAD, JobIdError, upload_glob, validate_job_id
from igait_pipeline.storage import ObjectInfo, Storage
from igait_pipeline.schemas import JobMetadata, MetadataError

METADATA_GLOB = upload_glob()
VIDEO_NAMES = ("front.mp4", "side.mp4")
MAX_JOBS_PER_TICK = 500  # a backlog (first start, lost cursor, burst) is worked off over several short ticks
CHECK_THREADS = 16  # each check is a few small object-store requests: overlap their latency


@dataclass
class ReadyJob:
    job_id: str
    metadata: JobMetadata
    sizes: dict[str, int]


@dataclass
class BadJob:
    job_id: str
    reason: str


@dataclass
class ScanResult:
    ready: list[ReadyJob] = field(default_factory=list)
    bad: list[BadJob] = field(default_factory=list)
    cursor: str = ""
    listed: int = 0
    backlog: int = 0  # new uploads left for the next tick


def _load_cursor(cursor: Optional[str]) -> tuple[float, set[str]]:
    if not cursor:
        return 0.0, set()
    data = json.loads(cursor)
    return float(data["t"]), set(data["seen"])


def check_upload(storage: Storage, job_id: str, meta_obj: Optional[ObjectInfo] = None) -> ReadyJob:
    """Validate one job's upload; raise MetadataError / FileNotFoundError / JobIdError with the reason."""
    validate_job_id(job_id)
    present = {o.key.rsplit("/", 1)[1]: o for o in storage.list(UPLOAD.prefix(job_id))}  # one listing
    sizes = {}
    for name in VIDEO_NAMES:
        if name not in present:
            raise FileNotFoundError(f"{name} is missing (metadata.json arrived without it)")
        if present[name].size == 0:
            raise FileNotFoundError(f"{name} is empty")
        sizes[name] = present[name].size
    metadata = JobMetadata.from_json(storage.read_bytes(UPLOAD.key(job_id, "metadata.json")))
    sizes["metadata.json"] = meta_obj.size if meta_obj else 0
    return ReadyJob(job_id, metadata, sizes)


def _check(storage: Storage, obj: ObjectInfo):
    job_id = obj.key.split("/")[1]
    try:
        return check_upload(storage, job_id, obj)
    except (JobIdError, MetadataError, FileNotFoundError) as e:
        return BadJob(job_id, str(e))


def scan_uploads(storage: Storage, cursor: Optional[str] = None, max_jobs: int = MAX_JOBS_PER_TICK) -> ScanResult:
    """Complete uploads newer than the cursor, oldest first, at most max_jobs of them (the cursor then stops at
    the last one checked, so the next tick goes on from there)."""
    since, seen_at_mark = _load_cursor(cursor)
    result = ScanResult()
    new: list[ObjectInfo] = []
    for obj in storage.list("jobs/", match_glob=METADATA_GLOB):
        result.listed += 1
        job_id = obj.key.split("/")[1]
        if obj.updated > since or (obj.updated == since and job_id not in seen_at_mark):
            new.append(obj)
    batch = sorted(new, key=lambda o: (o.updated, o.key))[:max_jobs]
    result.backlog = len(new) - len(batch)
    with ThreadPoolExecutor(max_workers=min(CHECK_THREADS, max(1, len(batch)))) as pool:
        checked = list(pool.map(lambda o: _check(storage, o), batch))
    mark, at_mark = since, set(seen_at_mark)
    for obj, outcome in zip(batch, checked):
        (result.bad if isinstance(outcome, BadJob) else result.ready).append(outcome)
        if obj.updated > mark:
            mark, at_mark = obj.updated, set()
        at_mark.add(obj.key.split("/")[1])
    result.cursor = json.dumps({"t": mark, "seen": sorted(at_mark)})
    return result
