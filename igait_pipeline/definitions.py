"""The one `Definitions` of the iGait code location: assets, job, sensors, resources and executor.

It only assembles: storage comes from $IGAIT_STORAGE_ROOT (a directory by default, `gs://bucket/prefix` in
production) through `resources.build_resources`, the executor from $IGAIT_EXECUTOR (see igait_pipeline.execution),
the Dagster instance from $DAGSTER_HOME as usual. Nothing imports this module: it is what `dagster dev`,
`dagster asset materialize -m igait_pipeline.definitions` and the code server load (and `igait run`, through
`igait_job_def` by name: see igait_pipeline.launch).
"""
from dagster import Definitions

from igait_pipeline import assets, research_assets
from igait_pipeline.execution import executor_from_env
from igait_pipeline.jobs import JOB_NAME, igait_job
from igait_pipeline.launch import hint_unknown_job
from igait_pipeline.resources import build_resources
from igait_pipeline.sensors import uploads_sensor
from igait_pipeline.status.sensors import status_sensors

defs = Definitions(
    assets=[assets.upload, *assets.STAGE_ASSETS, *research_assets.RESEARCH_ASSETS],
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
