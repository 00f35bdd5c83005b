"""Finding complete uploads in storage (no Dagster here; the sensor wraps it).

A job is ready when `jobs/{job_id}/stage_0/` holds front.mp4, side.mp4 and metadata.json; the web back end (and
`igait submit`) writes metadata.json last. A scan lists only metadata.json objects (server-side glob) and reads
only those newer than the cursor: a high-water mark of their update time plus the jobs seen at exactly that time.

A refused upload is not forgotten when the high-water mark moves past it: the cursor keeps each refused job with
the fingerprint of its stage_0 files (name, size, update time of each), and every tick re-lists a bounded number
of them, oldest first; one whose files changed (the videos arrived after metadata.json, a corrected
metadata.json, a replaced video) is checked again. The fingerprint of an accepted upload is its version: the
sensor records it as the upload's data version, so a re-upload of a finished job is recognised.

The store not answering (TransientStorageError, after the client's own retries) says nothing about the upload:
it is raised, never turned into a refusal; the tick fails, its cursor is not saved, and the next tick looks again.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from igait_pipeline.layout import UPLOAD, JobIdError, upload_glob, validate_job_id
from igait_pipeline.schemas import AddressError, JobMetadata, MetadataError, normalize_email
from igait_pipeline.storage import ObjectInfo, Storage, StorageError, TransientStorageError

METADATA_GLOB = upload_glob()
VIDEO_NAMES = tuple(name for name in UPLOAD.files if name.endswith(".mp4"))
MAX_JOBS_PER_TICK = 500  # a backlog (first start, lost cursor, burst) is worked off over several short ticks
CHECK_THREADS = 16  # each check is a few small object-store requests: overlap their latency
MAX_REFUSED_KEPT = 2000  # refused jobs the cursor remembers (the oldest are dropped beyond this, with a log line)
RECHECK_PER_TICK = 100  # refused jobs re-listed per tick (round robin): one listing request each


@dataclass
class ReadyJob:
    job_id: str
    metadata: JobMetadata
    sizes: dict[str, int]
    fingerprint: str = ""
    updated: float = 0.0  # metadata.json's update time


@dataclass
class BadJob:
    job_id: str
    reason: str  # names files and fields, never a metadata value (it goes to logs)
    fingerprint: str = ""
    email: str | None = None  # the family's address, when metadata.json holds a usable one


@dataclass
class ScanResult:
    ready: list[ReadyJob] = field(default_factory=list)
    bad: list[BadJob] = field(default_factory=list)
    cursor: str = ""
    listed: int = 0
    backlog: int = 0  # new uploads left for the next tick
    rechecked: int = 0  # refused jobs re-listed this tick
    forgotten: list[str] = field(default_factory=list)  # refused jobs dropped from the cursor (cap reached)


@dataclass
class UploadCursor:
    t: float = 0.0
    seen: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)  # job ID -> fingerprint, oldest re-check first

    @classmethod
    def from_json(cls, cursor: str | None) -> UploadCursor:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(float(data["t"]), set(data["seen"]), dict(data.get("refused") or []))

    def to_json(self) -> str:
        return json.dumps({"t": self.t, "seen": sorted(self.seen), "refused": list(self.refused.items())})


def fingerprint(objects: dict[str, ObjectInfo]) -> str:
    """A short digest of the upload's files (name, size, update time): changes whenever any of them changes."""
    text = "\n".join(f"{name}:{o.size}:{o.updated!r}" for name, o in sorted(objects.items())
                     if name in UPLOAD.files)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _listing(storage: Storage, job_id: str) -> dict[str, ObjectInfo]:
    prefix = UPLOAD.prefix(job_id)
    return {o.key[len(prefix):]: o for o in storage.list(prefix) if "/" not in o.key[len(prefix):]}


def _usable_email(storage: Storage, job_id: str) -> str | None:
    try:
        raw = json.loads(storage.read_bytes(UPLOAD.key(job_id, "metadata.json")))
        return normalize_email(raw.get("email")) if isinstance(raw, dict) else None
    except TransientStorageError:
        raise
    except (FileNotFoundError, ValueError, StorageError, AddressError):
        return None


def check_upload(storage: Storage, job_id: str, meta_obj: ObjectInfo | None = None,
                 present: dict[str, ObjectInfo] | None = None) -> ReadyJob:
    """Validate one job's upload; raise MetadataError / FileNotFoundError / JobIdError / StorageError."""
    validate_job_id(job_id)
    present = _listing(storage, job_id) if present is None else present  # one listing
    sizes = {}
    for name in VIDEO_NAMES:
        if name not in present:
            raise FileNotFoundError(f"{name} is missing (metadata.json arrived without it)")
        if present[name].size == 0:
            raise FileNotFoundError(f"{name} is empty")
        sizes[name] = present[name].size
    metadata = JobMetadata.from_json(storage.read_bytes(UPLOAD.key(job_id, "metadata.json")))
    meta_obj = meta_obj or present.get("metadata.json")
    sizes["metadata.json"] = meta_obj.size if meta_obj else 0
    return ReadyJob(job_id, metadata, sizes, fingerprint(present), meta_obj.updated if meta_obj else 0.0)


def _check(storage: Storage, job_id: str, obj: ObjectInfo | None = None):
    present: dict[str, ObjectInfo] = {}
    try:
        validate_job_id(job_id)
        present = _listing(storage, job_id)
        return check_upload(storage, job_id, obj, present)
    except JobIdError as e:
        return BadJob(job_id, str(e))
    except TransientStorageError:
        raise  # the store, not the upload
    except (MetadataError, FileNotFoundError, StorageError) as e:
        return BadJob(job_id, str(e), fingerprint(present), _usable_email(storage, job_id))


def scan_uploads(storage: Storage, cursor: str | None = None, max_jobs: int = MAX_JOBS_PER_TICK,
                 recheck: int = RECHECK_PER_TICK) -> ScanResult:
    """Complete uploads newer than the cursor, oldest first, at most max_jobs of them (the cursor then stops at
    the last one checked, so the next tick goes on from there); and refused uploads whose files changed."""
    cur = UploadCursor.from_json(cursor)
    result = ScanResult()
    new: list[ObjectInfo] = []
    for obj in storage.list("jobs/", match_glob=METADATA_GLOB):
        result.listed += 1
        job_id = obj.key.split("/")[1]
        if obj.updated > cur.t or (obj.updated == cur.t and job_id not in cur.seen):
            new.append(obj)
    batch = sorted(new, key=lambda o: (o.updated, o.key))[:max_jobs]
    result.backlog = len(new) - len(batch)
    in_batch = {o.key.split("/")[1] for o in batch}

    # Refused jobs, round robin: re-list a few, re-check those whose files changed.
    refused = dict(cur.refused)
    due = [j for j in refused if j not in in_batch][:recheck]
    changed: list[str] = []
    for job_id in due:
        result.rechecked += 1
        try:
            present = _listing(storage, job_id)
        except TransientStorageError:
            raise  # not "the upload is gone"
        except StorageError:
            present = {}
        fp = refused.pop(job_id)  # re-inserted at the end (round robin) unless the upload is gone
        if "metadata.json" not in present:
            continue  # deleted (or moved) upload: nothing left to wait for
        if fingerprint(present) != fp:
            changed.append(job_id)
        else:
            refused[job_id] = fp

    work: list[tuple[str, ObjectInfo | None]] = [(o.key.split("/")[1], o) for o in batch]
    work += [(j, None) for j in changed]
    with ThreadPoolExecutor(max_workers=min(CHECK_THREADS, max(1, len(work)))) as pool:
        checked = list(pool.map(lambda w: _check(storage, *w), work))
    for (job_id, _), outcome in zip(work, checked):
        if isinstance(outcome, BadJob):
            result.bad.append(outcome)
            refused.pop(job_id, None)
            if outcome.fingerprint:  # a malformed job ID is refused for good: its files cannot fix it
                refused[job_id] = outcome.fingerprint
        else:
            result.ready.append(outcome)
            refused.pop(job_id, None)
    while len(refused) > MAX_REFUSED_KEPT:
        result.forgotten.append(next(iter(refused)))
        del refused[result.forgotten[-1]]

    mark, at_mark = cur.t, set(cur.seen)
    for obj in batch:
        if obj.updated > mark:
            mark, at_mark = obj.updated, set()
        at_mark.add(obj.key.split("/")[1])
    result.cursor = UploadCursor(mark, at_mark, refused).to_json()
    return result
