"""The iGait job: every stage asset of one job ID, run together for one partition."""
from __future__ import annotations

from dagster import define_asset_job

from igait_pipeline.layout import ASSET_GROUP
from igait_pipeline.partitions import job_partitions

JOB_NAME = "igait_job"

igait_job = define_asset_job(
    JOB_NAME,
    selection=f"group:{ASSET_GROUP}",
    partitions_def=job_partitions,
    description="The whole iGait pipeline for one job (partition = job ID): stage 1 to results.zip.",
)
