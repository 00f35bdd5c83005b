"""The uploads sensor: complete uploads in storage become partitions and runs, once per job."""

from dagster import (
    AssetMaterialization,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from igait_pipeline.jobs import igait_job
from igait_pipeline.partitions import job_partitions
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.layout import UPLOAD
from igait_pipeline.uploads import scan_uploads



@sensor(job=igait_job, minimum_interval_seconds=10, default_status=DefaultSensorStatus.RUNNING,
        description="Watches jobs/*/stage_0/ for complete uploads (metadata.json written last); adds the job's "
                    "partition and requests one run per job, never a second one.")
def uploads_sensor(context: SensorEvaluationContext, storage: StorageResource):
    scan = scan_uploads(storage.get(), context.cursor)
    for bad in scan.bad:
        context.log.error(f"job {bad.job_id}: upload refused: {bad.reason}")
    known = set(context.instance.get_dynamic_partitions(job_partitions.name)) if scan.ready else set()
    fresh = [job for job in scan.ready if job.job_id not in known]
    for job in scan.ready:
        if job.job_id in known:
            context.log.info(f"job {job.job_id}: already known (re-upload or re-scan); no new run")
    if scan.backlog:
        context.log.info(f"{scan.backlog} more new uploads wait for the next tick")
    if not fresh:
        return SensorResult(skip_reason=SkipReason(
            f"no new complete uploads ({scan.listed} listed, {len(scan.bad)} refused)"), cursor=scan.cursor)
    ids = [job.job_id for job in fresh]
    return SensorResult(
        run_requests=[RunRequest(run_key=job_id, partition_key=job_id, tags={"igait/job_id": job_id})
                      for job_id in ids],
        dynamic_partitions_requests=[job_partitions.build_add_request(ids)],
        asset_events=[AssetMaterialization(
            "upload", partition=job.job_id,
            description=f"upload of job {job.job_id} found in storage",
            metadata={"prefix": UPLOAD.prefix(job.job_id),
                      **{f"size_bytes/{n}": s for n, s in job.sizes.items()}})
            for job in fresh],
        cursor=scan.cursor,
    )
