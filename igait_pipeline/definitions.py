"""The `Definitions` of the iGait per-job code location: the stage assets (partitioned by job ID), the job, the
sensors, resources and executor.

The cohort-level research assets (feature table, candidate and screening models) are a second code location,
`igait_pipeline.research_definitions` (workspace.yaml loads both): the two graphs meet only where the design says
— `prediction` reads the model in use (`screening_model`, an asset of the research location, seen here as an
external dependency) and the feature table reads the finished jobs. So `dagster asset materialize -m
igait_pipeline.definitions --select '*' --partition ID`, `keypoints_front*`, or the UI's "Materialize all" on this
location never drag a cohort asset into a job's run.

It only assembles: storage comes from $IGAIT_STORAGE_ROOT (a directory by default, `gs://bucket/prefix` in
production) through `resources.build_resources`, the executor from $IGAIT_EXECUTOR (see igait_pipeline.execution),
the Dagster instance from $DAGSTER_HOME as usual. Nothing imports this module: it is what `dagster dev`,
`dagster asset materialize -m igait_pipeline.definitions` and the code server load (and `igait run`, through
`igait_job_def` by name: see igait_pipeline.launch).
"""
from dagster import Definitions

from igait_pipeline import assets
from igait_pipeline.execution import executor_from_env
from igait_pipeline.jobs import JOB_NAME, igait_job
from igait_pipeline.launch import hint_unknown_job
from igait_pipeline.resources import build_resources
from igait_pipeline.sensors import uploads_sensor
from igait_pipeline.status.sensors import status_sensors

defs = Definitions(
    assets=[assets.upload, *assets.STAGE_ASSETS],
    jobs=[igait_job],
    sensors=[uploads_sensor, *status_sensors()],
    resources=build_resources(),
    executor=executor_from_env(),
)


def igait_job_def():
    """The resolved igait_job (assets, resources, executor): what `igait run` executes, re-loaded by name in each
    step process."""
    return defs.resolve_job_def(JOB_NAME)


hint_unknown_job()  # `dagster asset materialize --partition ID` for an unknown job says what to do
