"""The job document the iGait web app reads, how pipeline events change it, and where it is kept.

One document per job ID in the collection `jobs` (shape fixed: the web app reads it):

    job_id, user_id, created_at, updated_at,
    patient {age, sex, height, weight, ethnicity},
    status: submitted | processing | completed | failed,
    current_stage: 0..7,
    stages {"1".."7": {status: pending | processing | success | failed | skipped,
                       started_at, completed_at, duration_ms, output_keys, error}},
    result {score, classification, archive_key, model},
    error,                          why the job failed before any stage ran (a refused upload), else null
    email, email_sent,              email_sent: true only once the SMTP server accepted the message
    email_status: pending | sending | sent | retry | failed | uncertain | skipped,
    email_error, email_attempts, email_retry_at      (the last refusal, failed tries, not before this ISO time)
    upload_version                  the fingerprint of the upload the document is about (absent on older documents)

`JobEvent` is the plain record of one thing the pipeline did (an upload seen, a run started, a stage started,
succeeded or failed, a run ended); `apply_events` folds events into a document. Every event sets absolute values
taken from the event itself (its time, its stage, its error), so applying the same events again, in the same
order, gives the same document: that is what makes a replayed sensor tick harmless. `updated_at` is the store's
own clock (a Firestore server timestamp) and changes only when a write changes something.

`JobStore` is the interface of the backends: Firestore in production (`status.firestore_store`), an embedded
SQLite file by default (`status.sqlite_store`). No Dagster import here.
"""
from __future__ import annotations

import copy
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from igait_pipeline.layout import FINAL_STAGE, PIPELINE_STAGES, VIEWS, view_of

COLLECTION = "jobs"
STAGE_NUMBERS = tuple(s.number for s in PIPELINE_STAGES)  # the stages a job document tracks (not the upload)
_STAGE_KEYS = tuple(str(n) for n in STAGE_NUMBERS)
JOB_STATUSES = ("submitted", "processing", "completed", "failed")
STAGE_STATUSES = ("pending", "processing", "success", "failed", "skipped")
FINAL_JOB_STATUSES = ("completed", "failed")
TIME_FIELDS = ("created_at", "updated_at")
STAGE_TIME_FIELDS = ("started_at", "completed_at")
ERROR_MAX_CHARS = 1000
EMAIL_STATUSES = ("pending", "sending", "sent", "retry", "failed", "uncertain", "skipped")
EMAIL_DUE = ("pending", "retry")  # e-mail states in which a finished job's e-mail may be (re)tried
EMAIL_MAX_ATTEMPTS = 5
EMAIL_BACKOFF_S = (60, 300, 1800, 7200)  # wait after the 1st, 2nd, ... refused attempt (the last one repeats)

STATUS_URI_ENV = "IGAIT_STATUS_URI"
DEFAULT_STATUS_URI = "sqlite:data/status.sqlite3"

JobStatus = Literal["submitted", "processing", "completed", "failed"]
StageStatus = Literal["pending", "processing", "success", "failed", "skipped"]


# ---------- the document, as a model (for readers and tests; the fold works on plain dicts) ----------
class StageState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: StageStatus
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    output_keys: list[str]
    error: str | None


class Patient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    age: float | None
    sex: str | None
    height: float | None = Field(description="cm")
    weight: float | None = Field(description="kg")
    ethnicity: str | None


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: float | None
    classification: str | None
    archive_key: str | None
    model: str | None = None  # "name version" of the model that scored this result (re-scoring changes it)


class JobDocument(BaseModel):
    """The exact shape of `jobs/{job_id}`; `JobDocument.model_validate(doc)` checks a document."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    user_id: str
    created_at: datetime
    updated_at: datetime | None
    patient: Patient
    status: JobStatus
    current_stage: int = Field(ge=0, le=FINAL_STAGE)
    stages: dict[Literal[_STAGE_KEYS], StageState] = Field(min_length=len(_STAGE_KEYS), max_length=len(_STAGE_KEYS))
    result: Result
    error: str | None = None
    email: str | None
    email_sent: bool
    email_status: Literal[EMAIL_STATUSES] = "pending"
    email_error: str | None = None
    email_attempts: int = 0
    email_retry_at: str | None = None
    upload_version: str | None = None  # absent (None) on documents written before it existed


EMPTY_PATIENT = {"age": None, "sex": None, "height": None, "weight": None, "ethnicity": None}
EMPTY_RESULT = {"score": None, "classification": None, "archive_key": None, "model": None}


def fresh_stage(status: str = "pending") -> dict:
    return {"status": status, "started_at": None, "completed_at": None, "duration_ms": None, "output_keys": [],
            "error": None}


def new_job_doc(job_id: str, user_id: str, created_at: datetime, patient: dict | None,
                email: str | None, upload_version: str | None = None) -> dict:
    """A job as the uploads sensor first sees it: submitted, every stage pending, no e-mail sent. upload_version:
    the fingerprint of the upload it is about (the `upload` asset's data version); only runs of that upload change
    the document (`apply_event`)."""
    pat = dict(EMPTY_PATIENT)
    pat.update({k: v for k, v in (patient or {}).items() if k in EMPTY_PATIENT})
    return {
        "job_id": job_id,
        "user_id": user_id,
        "created_at": created_at,
        "updated_at": None,  # set by the store when it writes
        "patient": pat,
        "status": "submitted",
        "current_stage": 0,
        "stages": {str(n): fresh_stage() for n in STAGE_NUMBERS},
        "result": dict(EMPTY_RESULT),
        "error": None,
        "email": email,
        "email_sent": False,
        "email_status": "pending",
        "email_error": None,
        "email_attempts": 0,
        "email_retry_at": None,
        "upload_version": upload_version,
    }


def utc(ts: float | datetime) -> datetime:
    if isinstance(ts, datetime):
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return datetime.fromtimestamp(ts, tz=UTC)


# ---------- events ----------
EventKind = Literal["upload", "run_start", "step_start", "materialized", "step_success", "step_failure",
                    "step_retry", "step_skipped", "run_end"]


@dataclass(frozen=True)
class JobEvent:
    """One thing the pipeline did to one job, in the order the pipeline did it."""

    kind: EventKind
    job_id: str
    at: datetime
    run_id: str | None = None
    stage: int | None = None
    duration_ms: int | None = None
    output_keys: tuple[str, ...] = ()
    error: str | None = None
    outcome: Literal["success", "failure", "canceled"] | None = None  # run_end
    will_retry: bool = False  # run_end: Dagster will launch a retry of this run
    planned: tuple[int, ...] = ()  # run_start / run_end: the stages this run was to execute
    planned_views: tuple[tuple[int, str], ...] = ()  # run_start: (stage, view) of each per-view asset it executes
    # upload: the upload's data version; a run's events: its run's `igait/upload_version` tag (None: not tagged)
    upload_version: str | None = None
    # filled in by the sensor from storage, never by the event log:
    user_id: str | None = None  # upload
    patient: dict | None = None  # upload
    email: str | None = None  # upload
    result: dict | None = field(default=None, hash=False)  # run_end: {score, classification, archive_key}


def plain_error(text: str | None) -> str | None:
    if not text:
        return None
    text = " ".join(text.strip().split())
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


def _ms_between(start: datetime | None, end: datetime) -> int | None:
    if start is None:
        return None
    return max(0, round((utc(end) - utc(start)).total_seconds() * 1000))


def apply_event(doc: dict, ev: JobEvent) -> dict:
    """Apply one event to a document (in place) and return it. Deterministic: depends on the event and doc only."""
    if ev.kind == "upload":
        # creation is `new_job_doc`, a re-upload's fresh start `launch.accepted_doc`; a sighting of an upload only
        # makes it the one the document is about (a store rebuilt from history meets each upload in turn)
        if ev.upload_version is not None:
            doc["upload_version"] = ev.upload_version
        return doc
    if is_stale(doc, ev):
        return doc  # a run of an upload the family has since replaced: its steps and result are not this job's
    stages = doc["stages"]
    st = stages.get(str(ev.stage)) if ev.stage is not None else None
    if ev.kind == "run_start":
        for n in ev.planned:
            if str(n) in stages:
                stages[str(n)] = {**fresh_stage(), "output_keys": _kept_keys(stages[str(n)], n, ev.planned_views)}
        if any(n >= 6 for n in ev.planned):
            doc["result"] = dict(EMPTY_RESULT)  # a new prediction or archive is coming: the old one is void
        doc["status"] = "processing"
        return doc
    if ev.kind == "run_end":
        return _end_run(doc, ev)
    if st is None:
        return doc  # a step that is not a tracked stage
    if ev.kind == "step_start":  # the keys run_start kept (a partial run's other view) stay
        stages[str(ev.stage)] = {**fresh_stage("processing"), "started_at": ev.at, "output_keys": st["output_keys"]}
        doc["status"] = "processing"
        doc["current_stage"] = ev.stage
    elif ev.kind == "materialized":  # a per-view stage materializes once per view: the keys add up
        st["output_keys"] = sorted(set(st["output_keys"]) | set(ev.output_keys))
    elif ev.kind == "step_success":
        st.update(status="success", completed_at=ev.at, error=None,
                  duration_ms=ev.duration_ms if ev.duration_ms is not None else _ms_between(st["started_at"], ev.at))
    elif ev.kind == "step_failure":
        st.update(status="failed", completed_at=ev.at, duration_ms=_ms_between(st["started_at"], ev.at),
                  error=plain_error(ev.error) or "the stage failed")
        if ev.output_keys:
            st["output_keys"] = sorted(set(ev.output_keys))
    elif ev.kind == "step_retry":
        st.update(status="processing", error=plain_error(f"retrying after: {ev.error or 'an error'}"))
    elif ev.kind == "step_skipped":
        st.update(status="skipped", completed_at=None, duration_ms=None)
    return doc


def is_stale(doc: dict, ev: JobEvent) -> bool:
    """Is ev an event of a run of another upload than the document's? A run without the upload-version tag (a
    stage re-materialized from the UI) and a document without an upload_version (written before it existed) count
    as the same upload."""
    current = doc.get("upload_version")
    return ev.upload_version is not None and current is not None and ev.upload_version != current


def _kept_keys(st: dict, stage: int, planned_views: Iterable[tuple[int, str]]) -> list[str]:
    """The output keys of a stage a run re-makes that stay valid: none, unless the run re-makes only some views of
    a per-view stage (`--select keypoints_front`); then the files of the other views, which it does not touch."""
    remade = {view for n, view in planned_views if n == stage}
    if not remade or remade >= set(VIEWS):
        return []
    return [k for k in st["output_keys"] if view_of(k.rpartition("/")[2]) not in remade]


def _end_run(doc: dict, ev: JobEvent) -> dict:
    stages = doc["stages"]
    for n in ev.planned:
        st = stages.get(str(n))
        if st is None:
            continue
        if st["status"] == "pending":
            st["status"] = "skipped"  # never started: an earlier stage failed or the run was stopped
        elif st["status"] == "processing":
            st.update(status="failed", completed_at=ev.at, duration_ms=_ms_between(st["started_at"], ev.at),
                      error=st["error"] or f"the run ended ({ev.outcome}) while this stage was running")
    final = stages[str(FINAL_STAGE)]
    any_failed = any(s["status"] == "failed" for s in stages.values())
    if final["status"] == "success" and not any_failed:
        doc["status"] = "completed"
        doc["current_stage"] = FINAL_STAGE
        if ev.result is not None:
            doc["result"] = {**EMPTY_RESULT, **{k: v for k, v in ev.result.items() if k in EMPTY_RESULT}}
    elif ev.outcome == "success":
        pass  # a partial run (not up to the archive) that succeeded: the job is where it was
    elif ev.will_retry:
        doc["status"] = "processing"  # Dagster launches a retry of this run: not final yet
    else:
        doc["status"] = "failed"
    return doc


def apply_events(doc: dict | None, events: Sequence[JobEvent], seed: JobEvent | None = None) -> dict | None:
    """Fold events (of one job, in order) into a copy of doc. A missing document is created from the first
    upload event, else from `seed` (an upload event the caller reconstructed), else left missing."""
    out = copy.deepcopy(doc) if doc is not None else None
    for ev in events:
        if out is None:
            src = ev if ev.kind == "upload" else seed
            if src is None:
                continue
            out = new_job_doc(src.job_id, src.user_id or src.job_id.rpartition("_")[0], src.at, src.patient,
                              src.email, src.upload_version)
        out = apply_event(out, ev)
    return out


def finalized_at(doc: dict) -> datetime:
    """When the job last did something: the latest stage time, or its creation."""
    times = [utc(doc["created_at"])]
    for st in doc["stages"].values():
        times += [utc(t) for t in (st.get("started_at"), st.get("completed_at")) if t is not None]
    return max(times)


def email_status_of(doc: dict) -> str:
    """The document's email_status; "pending" for a document written before that field existed."""
    return doc.get("email_status") or "pending"


def needs_email(doc: dict) -> bool:
    return (doc.get("status") in FINAL_JOB_STATUSES and not doc.get("email_sent") and bool(doc.get("email"))
            and email_status_of(doc) in EMAIL_DUE)


def email_due_now(doc: dict, now: datetime) -> bool:
    """needs_email, and any back-off after a refused attempt is over."""
    retry_at = doc.get("email_retry_at")
    return needs_email(doc) and (retry_at is None or datetime.fromisoformat(retry_at) <= now)


def backoff_s(attempts: int) -> int:
    return EMAIL_BACKOFF_S[min(max(attempts, 1), len(EMAIL_BACKOFF_S)) - 1]


# ---------- comparing and diffing documents ----------
def same_content(a: dict | None, b: dict | None) -> bool:
    """Equal apart from `updated_at` (timestamps compared as instants)."""
    if a is None or b is None:
        return a is b
    return _norm({k: v for k, v in a.items() if k != "updated_at"}) == _norm(
        {k: v for k, v in b.items() if k != "updated_at"})


def _norm(v):
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, datetime):
        return utc(v).timestamp().__round__(6)
    return v


def changed_paths(old: dict, new: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Leaf paths whose value differs between old and new (maps are descended, everything else compared whole)."""
    out: dict[tuple[str, ...], object] = {}
    for k, v in new.items():
        path = prefix + (k,)
        if k not in old:
            out[path] = v
        elif isinstance(v, dict) and isinstance(old[k], dict) and v:
            out.update(changed_paths(old[k], v, path))
        elif _norm(old[k]) != _norm(v):
            out[path] = v
    return out


# ---------- the backends' interface ----------
Change = Callable[[dict | None], dict | None]


class JobStore(ABC):
    """Where job documents live. Every change is a read-modify-write in one transaction, written only if it
    changes something; `updated_at` is stamped by the store (server time) on each real write."""

    collection: str = COLLECTION

    @abstractmethod
    def get(self, job_id: str) -> dict | None: ...

    @abstractmethod
    def update(self, job_id: str, change: Change) -> dict | None:
        """In one transaction: read the document (None if absent), call change on a copy, and write the result
        (create it if it was absent) unless it equals what was read. Returns the document as it now is."""

    @abstractmethod
    def find(self, *, status: Iterable[str] | None = None, email_sent: bool | None = None,
             user_id: str | None = None, email_status: Iterable[str] | None = None,
             limit: int = 100) -> list[dict]:
        """Documents matching every given condition (status / email_status is one of the given values), in job
        ID order. A document without email_status (written before that field existed) counts as "pending"."""

    def close(self) -> None:
        pass

    # -- the e-mail: claimed (email_status "sending") in a transaction before it goes out, so it never goes twice;
    #    email_sent is set only once the server has accepted it --
    def _take_due_email(self, job_id: str, **fields) -> bool:
        """In one transaction: if the job's e-mail is due (not sent, email_status pending/retry), set fields on the
        document. True if this caller made the change, False if the e-mail was not due (any more)."""
        won = []

        def take(doc: dict | None) -> dict | None:
            won.clear()  # the store may run this again (a transaction retried): only the last run counts
            if doc is None or doc.get("email_sent") or email_status_of(doc) not in EMAIL_DUE:
                return doc
            won.append(True)
            return {**doc, **fields}

        self.update(job_id, take)
        return bool(won)

    def claim_email(self, job_id: str) -> bool:
        """email_status pending/retry -> sending; True if this caller won (and must send), False otherwise."""
        return self._take_due_email(job_id, email_status="sending")

    def email_accepted(self, job_id: str) -> None:
        """The server answered 250 to the message: now, and only now, email_sent is true."""
        self.update(job_id, lambda doc: None if doc is None else {
            **doc, "email_sent": True, "email_status": "sent", "email_error": None, "email_retry_at": None})

    def release_email(self, job_id: str, error: str = "not sent", permanent: bool = False,
                      now: datetime | None = None) -> dict | None:
        """The e-mail certainly did not leave: count the attempt, record why, and either schedule the next try
        (back-off) or, when the cause is permanent or the attempts are used up, give up (email_status failed)."""
        now = now or datetime.now(UTC)

        def release(doc: dict | None) -> dict | None:
            if doc is None:
                return None
            attempts = int(doc.get("email_attempts") or 0) + 1
            give_up = permanent or attempts >= EMAIL_MAX_ATTEMPTS
            retry_at = None if give_up else (now + timedelta(seconds=backoff_s(attempts))).isoformat()
            return {**doc, "email_sent": False, "email_status": "failed" if give_up else "retry",
                    "email_attempts": attempts, "email_error": plain_error(error), "email_retry_at": retry_at}

        return self.update(job_id, release)

    def email_uncertain(self, job_id: str, error: str) -> None:
        """The connection broke while the message was handed over: it may have left. Never tried again by the
        sensor (an operator who finds it was not delivered sets email_status back to "retry")."""
        self.update(job_id, lambda doc: None if doc is None else {
            **doc, "email_status": "uncertain", "email_error": plain_error(error)})

    def skip_email(self, job_id: str, why: str) -> bool:
        """No e-mail is due (the job finished too long ago): email_status skipped, email_sent stays false."""
        return self._take_due_email(job_id, email_status="skipped", email_error=plain_error(why))


def job_store_from_uri(uri: str | None = None, collection: str = COLLECTION) -> JobStore:
    """`firestore://PROJECT[/DATABASE]` chooses Firestore (FIRESTORE_EMULATOR_HOST is honoured by the client);
    `sqlite:PATH` (or a bare path) an embedded SQLite file. Default: $IGAIT_STATUS_URI, else
    `sqlite:data/status.sqlite3`."""
    uri = uri or os.environ.get(STATUS_URI_ENV) or DEFAULT_STATUS_URI
    if uri.startswith("firestore://"):
        from igait_pipeline.status.firestore_store import FirestoreJobStore

        project, _, database = uri[len("firestore://"):].partition("/")
        return FirestoreJobStore(project=project or None, database=database or None, collection=collection)
    from igait_pipeline.status.sqlite_store import SqliteJobStore

    path = uri[len("sqlite:"):] if uri.startswith("sqlite:") else uri
    if path.startswith("//"):
        path = path[2:]  # sqlite:///abs/path and sqlite://rel/path both work
    return SqliteJobStore(path, collection=collection)
