"""Finding complete uploads in storage (no Dagster here; the sensor wraps it).

A job is ready when `jobs/{job_id}/stage_0/` holds front.mp4, side.mp4 and metadata.json; the web back end (and
`igait submit`) writes metadata.json last. A scan lists only metadata.json objects (server-side glob) and reads
only those newer than the cursor: a high-water mark of their update time plus the jobs seen at exactly that time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from igait_pipeline.partitions import JobIdError, validate_job_id
from igait_pipeline.resources.storage import ObjectInfo, Storage, job_key
from igait_pipeline.schemas import JobMetadata, MetadataError

METADATA_GLOB = "jobs/*/stage_0/metadata.json"
VIDEO_NAMES = ("front.mp4", "side.mp4")


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


def _load_cursor(cursor: Optional[str]) -> tuple[float, set[str]]:
    if not cursor:
        return 0.0, set()
    data = json.loads(cursor)
    return float(data["t"]), set(data["seen"])


def check_upload(storage: Storage, job_id: str, meta_obj: Optional[ObjectInfo] = None) -> ReadyJob:
    """Validate one job's upload; raise MetadataError / FileNotFoundError / JobIdError with the reason."""
    validate_job_id(job_id)
    sizes = {}
    for name in VIDEO_NAMES:
        key = job_key(job_id, 0, name)
        infos = list(storage.list(key))
        if not infos or infos[0].key != key:
            raise FileNotFoundError(f"{name} is missing (metadata.json arrived without it)")
        if infos[0].size == 0:
            raise FileNotFoundError(f"{name} is empty")
        sizes[name] = infos[0].size
    try:
        raw = json.loads(storage.read_bytes(job_key(job_id, 0, "metadata.json")))
    except json.JSONDecodeError as e:
        raise MetadataError(f"metadata.json is not valid JSON ({e.msg} at line {e.lineno})") from None
    sizes["metadata.json"] = meta_obj.size if meta_obj else 0
    return ReadyJob(job_id, JobMetadata.parse(raw), sizes)


def scan_uploads(storage: Storage, cursor: Optional[str] = None) -> ScanResult:
    since, seen_at_mark = _load_cursor(cursor)
    result = ScanResult()
    new: list[ObjectInfo] = []
    for obj in storage.list("jobs/", match_glob=METADATA_GLOB):
        result.listed += 1
        job_id = obj.key.split("/")[1]
        if obj.updated > since or (obj.updated == since and job_id not in seen_at_mark):
            new.append(obj)
    mark, at_mark = since, set(seen_at_mark)
    for obj in sorted(new, key=lambda o: (o.updated, o.key)):
        job_id = obj.key.split("/")[1]
        try:
            result.ready.append(check_upload(storage, job_id, obj))
        except (JobIdError, MetadataError, FileNotFoundError) as e:
            result.bad.append(BadJob(job_id, str(e)))
        if obj.updated > mark:
            mark, at_mark = obj.updated, set()
        at_mark.add(job_id)
    result.cursor = json.dumps({"t": mark, "seen": sorted(at_mark)})
    return result
