"""The research layer: labels, the cohort feature table, candidate models trained and validated from labelled
jobs, and a simulated cohort to test the flow. Plain functions over files and data frames; no Dagster import
(the assets that wrap them are in igait_pipeline.research_assets)."""
