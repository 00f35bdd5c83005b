"""The uploads sensor: complete uploads in storage become partitions and runs, once per upload version.

- A new job: its partition is added, an `upload` materialization is recorded with the upload's fingerprint as
  its data version, and one run of `igait_job` is requested (run key = job ID).
- A refused upload: logged with the job and the reason (file and field names only, never a value), and kept
  visible: its job document says `failed` at stage 0 with the reason, and the family gets one e-mail (after a
  grace period, in case the rest of the upload is still on its way) when metadata.json holds a usable address.
  The scanner re-examines it whenever its files change (see igait_pipeline.uploads).
- A re-upload of a known job (its files' fingerprint differs from the data version of the job's last recorded
  upload): the whole graph is re-run for it. Stages 1–7 of the previous upload are deleted first, so no stage can
  mix the new upload with outputs of the old one (a stage run alone finds its inputs missing instead), a new
  upload materialization with the new data version marks every downstream stage stale in the UI, and the run
  key `{job_id}@{fingerprint}` makes that run happen once. A re-scan of an unchanged upload launches nothing.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from igait_pipeline.jobs import igait_job
from igait_pipeline.launch import DATA_VERSION_TAG, accepted_doc, run_tags, upload_events
from igait_pipeline.layout import PIPELINE_STAGES, UPLOAD, user_id_of
from igait_pipeline.observability import tracing
from igait_pipeline.observability.sensor_log import sensor_logger
from igait_pipeline.partitions import job_partitions
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.resources.status import JobStatusResource
from igait_pipeline.status.jobdoc import JobStore, new_job_doc, plain_error
from igait_pipeline.storage import Storage
from igait_pipeline.uploads import BadJob, ReadyJob, scan_uploads

REFUSAL_EMAIL_GRACE = timedelta(minutes=10)  # the rest of an upload may still be on its way


def _is_reupload(context: SensorEvaluationContext, job: ReadyJob) -> bool:
    """Do the job's files differ from its last recorded upload (the data version of that materialization)?"""
    recs = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(UPLOAD.asset), asset_partitions=[job.job_id]), limit=1).records
    if not recs:
        return False  # a partition added by hand, without an upload record: left to whoever added it
    version = (recs[0].event_log_entry.tags or {}).get(DATA_VERSION_TAG)
    if version is not None:
        return version != job.fingerprint
    return job.updated > recs[0].timestamp  # recorded before uploads had versions: newer files are a re-upload


def _drop_old_generation(storage: Storage, job_id: str) -> int:
    """Delete stages 1–7 of a job (outputs of a previous upload). Returns the number of files deleted."""
    n = 0
    for st in PIPELINE_STAGES:
        for obj in list(storage.list(st.prefix(job_id))):
            storage.delete(obj.key)
            n += 1
    return n


def _refused_doc(store: JobStore, bad: BadJob, now: datetime) -> None:
    """Job document of a refused upload: failed at stage 0 with the reason; an e-mail after the grace period.
    A document of a job that got further (a refused re-upload of a processed job) is left alone."""
    def change(doc: dict | None) -> dict | None:
        if doc is not None and not (doc.get("current_stage") == 0 and doc.get("error")):
            return doc
        base = doc if doc is not None else new_job_doc(bad.job_id, user_id_of(bad.job_id), now, None, bad.email)
        out = {**base, "status": "failed", "current_stage": 0, "error": plain_error(f"upload refused: {bad.reason}")}
        if doc is None:
            out["email_retry_at"] = (now + REFUSAL_EMAIL_GRACE).isoformat()
        elif not doc.get("email") and bad.email:
            out["email"] = bad.email
        return out

    store.update(bad.job_id, change)


@sensor(job=igait_job, minimum_interval_seconds=10, default_status=DefaultSensorStatus.RUNNING,
        description="Watches jobs/*/stage_0/ for complete uploads (metadata.json written last); adds the job's "
                    "partition and requests one run per upload version; re-examines refused uploads when their "
                    "files change.")
def uploads_sensor(context: SensorEvaluationContext, storage: StorageResource, job_status: JobStatusResource):
    log = sensor_logger(context, "uploads_sensor")  # context.log, and JSON lines where configured
    st = storage.get()
    scan = scan_uploads(st, context.cursor)
    now = datetime.now(UTC)
    for bad in scan.bad:
        log.error(f"job {bad.job_id}: upload refused: {bad.reason}")
    for job_id in scan.forgotten:
        log.warning(f"job {job_id}: refused upload no longer watched (more than the cursor keeps)")
    known = set(context.instance.get_dynamic_partitions(job_partitions.name)) if scan.ready else set()
    fresh, again = [], []
    for job in scan.ready:
        if job.job_id not in known:
            fresh.append(job)
        elif _is_reupload(context, job):
            n = _drop_old_generation(st, job.job_id)
            log.warning(f"job {job.job_id}: re-uploaded (version {job.fingerprint}); {n} files of stages "
                        f"1–7 from the previous upload deleted, the whole graph runs again")
            again.append(job)
        else:
            log.info(f"job {job.job_id}: already known, upload unchanged; no new run")
    refused = [b for b in scan.bad if b.fingerprint]  # a malformed job ID has no document
    if refused or fresh or again:
        store = job_status.store()
        try:
            for bad in refused:
                _refused_doc(store, bad, now)
            for job in fresh + again:
                accepted_doc(store, job, now)
        finally:
            store.close()
    if scan.backlog:
        log.info(f"{scan.backlog} more new uploads wait for the next tick")
    if not fresh and not again:
        return SensorResult(skip_reason=SkipReason(
            f"no new complete uploads ({scan.listed} listed, {len(scan.bad)} refused, {scan.rechecked} refused "
            f"re-checked)"), cursor=scan.cursor)
    first = {job.job_id for job in fresh}
    for job in fresh + again:  # the root span of each upload's trace (run, steps and e-mail join it)
        tracing.record_upload_span(job.job_id, job.fingerprint, "re-upload" if job.job_id not in first else "upload")
        log.info(f"job {job.job_id}: upload version {job.fingerprint} accepted, one run requested",
                 extra=tracing.upload_ids(job.job_id, job.fingerprint))
    return SensorResult(
        run_requests=[RunRequest(run_key=job.job_id if job.job_id in first else f"{job.job_id}@{job.fingerprint}",
                                 partition_key=job.job_id, tags=run_tags(job))
                      for job in fresh + again],
        dynamic_partitions_requests=[job_partitions.build_add_request([job.job_id for job in fresh])] if fresh else [],
        # after a re-upload the new data version marks every stage of the job stale in the UI
        asset_events=[event for job in fresh + again for event in upload_events(
            job, f"upload of job {job.job_id} found in storage" + ("" if job.job_id in first else " (re-upload)"))],
        cursor=scan.cursor,
    )
