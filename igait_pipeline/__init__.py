"""iGait processing back end as a job-partitioned Dagster asset graph."""

__version__ = "0.1.0"
