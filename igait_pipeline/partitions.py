"""The dynamic partitions of the iGait assets: one partition per job ID (rules in `igait_pipeline.layout`)."""
from __future__ import annotations

from dagster import DynamicPartitionsDefinition

job_partitions = DynamicPartitionsDefinition(name="jobs")
PARTITION_TAG = "dagster/partition"  # the run tag Dagster sets to a partitioned run's partition key
