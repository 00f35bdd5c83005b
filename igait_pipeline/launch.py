"""Running a job without the daemon, exactly as the uploads sensor and the daemon would.

    record_upload(instance, storage, job_id, how, store)
                                               what the sensor does for a complete upload: add the job's partition,
                                               report the `upload` materialization (stage 0) and start the job
                                               document afresh if it has one (a refused upload, now fixed:
                                               `accepted_doc`, which the sensor calls too). The sensor skips a job
                                               whose partition exists, so it never launches a second run for it.
    run_job(instance, job_id)                  one run of `igait_job` for the partition, launched in this process
                                               with the code location's executor (multiprocess by default: each
                                               step its own process, the two views of a stage at the same time),
                                               as the daemon's run worker would run it.

`igait run` and `igait demo` are these two calls after `igait submit`'s. `hint_unknown_job` is installed when the
code location loads: the standard `dagster asset materialize --partition ID` for an ID that is no partition yet
fails inside Dagster before any of our code runs (DagsterInvalidSubsetError); the hint says what to do.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import re
import sys
from datetime import UTC, datetime

from dagster import (
    AssetMaterialization,
    AssetObservation,
    DagsterInstance,
    JobExecutionResult,
    build_reconstructable_job,
    execute_job,
)

from igait_pipeline.layout import JOB_ID_RE, UPLOAD, user_id_of, validate_job_id
from igait_pipeline.observability import tracing
from igait_pipeline.partitions import PARTITION_TAG, job_partitions
from igait_pipeline.status.jobdoc import JobStore, new_job_doc
from igait_pipeline.storage import Storage
from igait_pipeline.uploads import ReadyJob, check_upload

DEFINITIONS_MODULE = "igait_pipeline.definitions"
JOB_FUNCTION = "igait_job_def"  # in DEFINITIONS_MODULE: the resolved job (assets, resources, executor)
JOB_TAG = "igait/job_id"


DATA_VERSION_TAG = "dagster/data_version"  # where Dagster reads an asset event's data version
UPLOAD_VERSION_TAG = "igait/upload_version"  # run tag: the fingerprint of the upload a run processes


def upload_events(job: ReadyJob, description: str) -> list[AssetObservation | AssetMaterialization]:
    """What the sensor records for a complete upload: an observation carrying the upload's fingerprint as the
    `upload` asset's data version (Dagster reads an external asset's version from observations; recorded first),
    then the `upload` (stage 0) materialization the job status reads."""
    return [AssetObservation(UPLOAD.asset, partition=job.job_id, tags={DATA_VERSION_TAG: job.fingerprint}),
            AssetMaterialization(UPLOAD.asset, partition=job.job_id, description=description,
                                 tags={DATA_VERSION_TAG: job.fingerprint},
                                 metadata={"prefix": UPLOAD.prefix(job.job_id), "upload_version": job.fingerprint,
                                           **{f"size_bytes/{n}": s for n, s in job.sizes.items()}})]


# How the daemon's run retry re-executes a run whose worker died (dagster.yaml `run_retries`): from the failed
# steps. Every stage before them committed its files whole (manifest-last on GCS, a directory swap locally), so
# the retry starts at the step that was running when the worker died instead of converting, validating and
# reframing the videos again (ALL_STEPS); the step it re-runs replaces the half-written commit.
RETRY_STRATEGY_TAG = "dagster/retry_strategy"
RETRY_STRATEGY = "FROM_FAILURE"


def run_tags(job: ReadyJob) -> dict[str, str]:
    """The tags of a job's run (the sensor's RunRequest and `run_job` alike)."""
    return {JOB_TAG: job.job_id, UPLOAD_VERSION_TAG: job.fingerprint, RETRY_STRATEGY_TAG: RETRY_STRATEGY}


def accepted_doc(store: JobStore, job: ReadyJob, now: datetime) -> None:
    """A job accepted after a refusal, or re-uploaded: its document, if it has one, starts again (`submitted`, the
    refusal's error gone; a refusal e-mail that has not gone out yet never will; the new result gets its own
    e-mail) and records the new upload's version, so events of a run of the old upload still in flight no longer
    change it. The uploads sensor and `record_upload` (`igait run`, `igait register`) both call this."""
    m = job.metadata
    store.update(job.job_id, lambda doc: None if doc is None else new_job_doc(
        job.job_id, user_id_of(job.job_id), now, m.patient(), m.email, job.fingerprint))


def record_upload(instance: DagsterInstance, storage: Storage, job_id: str, how: str,
                  store: JobStore) -> tuple[ReadyJob, bool]:
    """Check the job's upload in storage (raises MetadataError / FileNotFoundError / JobIdError with the reason),
    then add its partition and record its upload as the sensor does, unless the partition exists already; as the
    sensor does, a job document already in store (the uploads sensor refused an earlier version of this upload)
    starts again. Returns the checked upload and whether it was recorded now."""
    job = check_upload(storage, validate_job_id(job_id))
    if instance.has_dynamic_partition(job_partitions.name, job_id):
        return job, False
    instance.add_dynamic_partitions(job_partitions.name, [job_id])
    for event in upload_events(job, f"upload of job {job_id} {how}"):
        instance.report_runless_asset_event(event)
    tracing.record_upload_span(job_id, job.fingerprint, how)  # the trace's root, as the sensor records it
    accepted_doc(store, job, datetime.now(UTC))
    return job, True


def start_step_server() -> bool:
    """Start the multiprocess executor's forkserver now, with the preload list the executor will ask for, so its
    imports (the code location, MediaPipe, torch: seconds) overlap this process's work before the run; the
    executor then finds it running and forks every step from it. Does nothing for another executor."""
    from igait_pipeline.execution import EXECUTOR_ENV, PRELOAD_MODULES

    if (os.environ.get(EXECUTOR_ENV) or "multiprocess").strip().lower() != "multiprocess":
        return False
    # the list Dagster's multiprocess executor sets (it puts its own module first)
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["dagster._core.executor.multiprocess", *PRELOAD_MODULES])
    multiprocessing.forkserver.ensure_running()
    return True


def run_job(instance: DagsterInstance, job: ReadyJob, run_config: dict | None = None) -> JobExecutionResult:
    """One run of the whole job for the partition, in this process, with the code location's executor."""
    recon = build_reconstructable_job(DEFINITIONS_MODULE, JOB_FUNCTION)
    return execute_job(recon, instance=instance, run_config=run_config,
                       tags={PARTITION_TAG: job.job_id, **run_tags(job)})


_UNKNOWN_PARTITION = re.compile(r"partition key `(?P<key>[^`]*)`")


def unknown_job_hint(exc: BaseException) -> str | None:
    """What to do, for Dagster's error about a partition key that is no job on this instance (else None)."""
    if type(exc).__name__ != "DagsterInvalidSubsetError":
        return None
    m = _UNKNOWN_PARTITION.search(str(exc))
    if not m or not JOB_ID_RE.match(m["key"]):
        return None
    job_id = m["key"]
    return (f"igait: job {job_id} is not a partition of this Dagster instance yet: a job becomes one when the "
            f"uploads sensor (dagster dev, or the daemon) finds its upload in storage. Without a daemon:\n"
            f"  igait register {job_id}     record the upload in storage as the sensor would; then this command works\n"
            f"  igait run --job-id {job_id}   record it and run the whole job now\n"
            f"  igait submit --front F --side S --metadata M --job-id {job_id}   first, if it is not uploaded yet")


def hint_unknown_job() -> None:
    """Chain a sys.excepthook that adds `unknown_job_hint` under Dagster's traceback (CLI processes only: the
    daemon and the web server do not die by an uncaught exception). Installing it twice is harmless."""
    previous = sys.excepthook
    if getattr(previous, "igait_hint", False):
        return

    def hook(exc_type, exc, tb):
        previous(exc_type, exc, tb)
        hint = unknown_job_hint(exc)
        if hint:
            print(hint, file=sys.stderr)

    hook.igait_hint = True
    sys.excepthook = hook
