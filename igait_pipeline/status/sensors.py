"""The Dagster side of job status: the sensor that keeps job documents current and sends the e-mail.

`job_status_sensor` reads what the pipeline did since its cursor (`events.JobEventReader`: upload
materializations, run starts and ends, each run's step events), folds each job's events into its document in one
store transaction per job (`jobdoc.apply_events`), then sends the e-mail of every finished job that has not had
one (`notify.deliver`). The cursor moves only when the whole tick succeeded; a tick that fails or crashes is read
again from the same cursor, and since the fold sets absolute values from the events and the store writes only
real changes, the documents end the same (see docs/status.md).

Its resources (`job_status`, `smtp`, and `storage` to read metadata.json, prediction.json and validation.json and
to make the archive link) are in igait_pipeline.resources, whose `build_resources()` the Definitions use.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetRecordsFilter,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from igait_pipeline.launch import DATA_VERSION_TAG
from igait_pipeline.layout import ARCHIVE, PREDICTION, UPLOAD, VALIDATION, user_id_of
from igait_pipeline.observability import tracing
from igait_pipeline.observability.sensor_log import sensor_log
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.resources.status import JobStatusResource, SmtpResource
from igait_pipeline.schemas import JobMetadata, MetadataError, Prediction, ValidationReport
from igait_pipeline.status.events import JobEventReader, ReaderCursor, StageMap
from igait_pipeline.status.jobdoc import (
    EMAIL_DUE,
    FINAL_JOB_STATUSES,
    JobEvent,
    JobStore,
    apply_events,
    email_due_now,
    finalized_at,
)
from igait_pipeline.status.notify import Outcome, SmtpSettings, deliver
from igait_pipeline.storage import Storage

SENSOR_NAME = "job_status_sensor"


# ---------- reading the job's own files (facts the event log does not hold) ----------
def _read_json(storage: Storage, key: str) -> dict | None:
    """The JSON object at key, or None if there is none or it is not JSON (other storage errors propagate: the
    tick fails and is retried)."""
    try:
        return json.loads(storage.read_bytes(key))
    except (FileNotFoundError, ValueError):
        return None


def upload_event(storage: Storage, job_id: str, at: datetime, upload_version: str | None = None) -> JobEvent:
    """The upload as a JobEvent, with the patient details and e-mail from stage_0/metadata.json."""
    raw = _read_json(storage, UPLOAD.key(job_id, "metadata.json"))
    patient, email = None, None
    if raw is not None:
        try:
            meta = JobMetadata.parse(raw)
            patient, email = meta.patient(), meta.email
        except MetadataError:
            pass  # the uploads sensor refuses such jobs; if one gets here, the document shows no details
    return JobEvent("upload", job_id, at, user_id=user_id_of(job_id), patient=patient, email=email,
                    upload_version=upload_version)


def job_result(storage: Storage, job_id: str) -> dict:
    """result {score, classification, archive_key, model} from stage_6/prediction.json and the stage 7 archive
    key; model is the name and version of the model that scored it."""
    pred = _read_json(storage, PREDICTION.key(job_id))
    score = classification = model = None
    if pred is not None:
        try:
            p = Prediction.model_validate(pred)
            score, classification, model = p.score, p.classification, f"{p.model.name} {p.model.version}"
        except ValueError:
            pass
    return {"score": score, "classification": classification, "archive_key": ARCHIVE.key(job_id), "model": model}


def outcome_for(storage: Storage, doc: dict) -> Outcome:
    job_id = doc["job_id"]
    archive_key = (doc.get("result") or {}).get("archive_key")
    url = storage.url(archive_key) if archive_key and storage.exists(archive_key) else None
    threshold = disclaimer = validated = None
    reasons: tuple[str, ...] = ()
    if doc["status"] == "completed":
        pred = _read_json(storage, PREDICTION.key(job_id))
        if pred is not None:
            threshold, disclaimer = pred.get("threshold"), pred.get("disclaimer")
            validated = pred.get("clinically_validated")
    elif doc.get("error") and doc.get("current_stage") == 0:
        return Outcome(upload_refused=doc["error"])  # the upload was refused: no stage ran, nothing to link
    else:
        report = _read_json(storage, VALIDATION.key(job_id))
        if report is not None:
            try:
                rep = ValidationReport.model_validate(report)
                if not rep.valid:
                    reasons = tuple(rep.reasons)
            except ValueError:
                pass
    return Outcome(archive_url=url, threshold=threshold, disclaimer=disclaimer, reasons=reasons,
                   clinically_validated=validated)


# ---------- one tick ----------
def _last_upload(instance, stages: StageMap, job_id: str, fallback: datetime) -> tuple[datetime, str | None]:
    """When the job's latest upload was recorded, and its version (the document a re-upload starts is its own)."""
    recs = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=stages.upload_key, asset_partitions=[job_id]), limit=1).records
    if not recs:
        return fallback, None
    return (datetime.fromtimestamp(recs[0].timestamp, tz=UTC),
            (recs[0].event_log_entry.tags or {}).get(DATA_VERSION_TAG))


def update_documents(instance, stages: StageMap, store: JobStore, storage: Storage, events: list[JobEvent],
                     log) -> dict[str, str]:
    """Fold events into their jobs' documents: one transaction per job. Returns job ID -> status now."""
    by_job: dict[str, list[JobEvent]] = defaultdict(list)
    for ev in events:
        if ev.kind == "upload":
            ev = upload_event(storage, ev.job_id, ev.at, ev.upload_version)
        elif ev.kind == "run_end" and ev.outcome == "success":
            ev = replace(ev, result=job_result(storage, ev.job_id))
        by_job[ev.job_id].append(ev)
    statuses = {}
    for job_id, evs in by_job.items():
        seed = None
        if evs[0].kind != "upload":  # a document may be missing (new store): rebuild its start from the upload
            seed = upload_event(storage, job_id, *_last_upload(instance, stages, job_id, evs[0].at))
        doc = store.update(job_id, lambda d, evs=evs, seed=seed: apply_events(d, evs, seed=seed))
        if doc is not None:
            statuses[job_id] = doc["status"]
            changed = ", ".join(f"{e.kind}{'' if e.stage is None else ' ' + str(e.stage)}" for e in evs)
            log.info(f"job {job_id}: {doc['status']}, stage {doc['current_stage']} ({changed})",
                     extra=tracing.upload_ids(job_id, doc.get("upload_version")))
    return statuses


def send_pending_emails(store: JobStore, storage: Storage, settings: SmtpSettings | None, log,
                        max_age: timedelta, limit: int) -> dict[str, str]:
    """Deliver the e-mail of every finished job that has none yet.

    A job that finished more than max_age ago (its latest stage time) gets no e-mail: its email_status becomes
    skipped (email_sent stays false), once, with a log line. That happens when a new, empty store is filled
    from the instance's history, or after SMTP was unconfigured for longer than max_age; an operator who wants
    such an e-mail sent sets email_status back to "retry". A refused attempt waits for its back-off
    (email_retry_at). Without SMTP settings nothing is sent or marked.
    """
    if settings is None:
        return {}
    now = datetime.now(UTC)
    results = {}
    for doc in store.find(status=FINAL_JOB_STATUSES, email_sent=False, email_status=EMAIL_DUE, limit=limit):
        job_id = doc["job_id"]
        if not email_due_now(doc, now):
            continue  # no address (the document shows email null), or waiting for its back-off
        if now - finalized_at(doc) > max_age:
            if store.skip_email(job_id, f"finished more than {max_age} ago: no e-mail is due"):
                results[job_id] = "too_old"
                log.warning(f"job {job_id}: finished {finalized_at(doc):%Y-%m-%d %H:%M} UTC, more than "
                            f"{max_age} ago: no e-mail (email_status skipped)")
            continue
        version = doc.get("upload_version")
        with tracing.span("e-mail", tracing.trace_id_for(job_id, version),
                          parent_span_id=tracing.upload_span_id(job_id, version),
                          attributes={tracing.JOB_ID: job_id, tracing.UPLOAD_VERSION: version,
                                      "igait.job_status": doc["status"]}) as span:
            results[job_id] = deliver(store, doc, settings, outcome_for(storage, doc))
            log.info(f"job {job_id}: e-mail {results[job_id]}")
            if span is not None:
                span.set_attribute("igait.email_result", str(results[job_id]))
    if results:
        tracing.flush()
    return results


def evaluate(context: SensorEvaluationContext, job_status: JobStatusResource, smtp: SmtpResource,
             storage: StorageResource, log=None) -> SensorResult:
    log = log or context.log
    if context.repository_def is None:
        raise ValueError(f"{SENSOR_NAME} needs the code location's definitions (for the assets' stage numbers)")
    stages = StageMap.from_repository(context.repository_def)
    reader = JobEventReader(context.instance, stages)
    cursor = ReaderCursor.from_json(context.cursor)
    events, new_cursor = reader.read(cursor)
    store = job_status.store()
    try:
        st = storage.get()
        statuses = update_documents(context.instance, stages, store, st, events, log)
        mails = send_pending_emails(store, st, smtp.settings(), log,
                                    timedelta(hours=job_status.email_max_age_hours), job_status.max_emails_per_tick)
    finally:
        store.close()
    summary = (f"{len(events)} events for {len(statuses)} jobs; "
               f"{sum(1 for r in mails.values() if r == 'sent')} e-mails sent; {len(new_cursor.runs)} runs active")
    return SensorResult(skip_reason=SkipReason(summary), cursor=new_cursor.to_json())


INTERVAL_ENV = "IGAIT_STATUS_SENSOR_INTERVAL_S"
DEFAULT_INTERVAL_S = 15


def sensor_interval_s() -> int:
    """The status sensor's minimum interval: $IGAIT_STATUS_SENSOR_INTERVAL_S, default 15 s (read when the code
    location loads; the daemon evaluates sensors at most every 5 s, so less than 5 acts as 5). The daemon tests set
    it lower to wait less for the e-mail and for the ticks after it."""
    return int(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S))


@sensor(name=SENSOR_NAME, minimum_interval_seconds=sensor_interval_s(), default_status=DefaultSensorStatus.RUNNING,
        description="Keeps each job's status document (Firestore `jobs/{job_id}` or the embedded store) current "
                    "from upload, run and step events, and sends the family's one e-mail when a job ends.")
def job_status_sensor(context: SensorEvaluationContext, job_status: JobStatusResource, smtp: SmtpResource,
                      storage: StorageResource):
    with sensor_log(context, SENSOR_NAME) as log:  # context.log, and JSON lines where configured
        return evaluate(context, job_status, smtp, storage, log)


def status_sensors() -> list[SensorDefinition]:
    return [job_status_sensor]
