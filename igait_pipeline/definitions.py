"""The one `Definitions` of the iGait code location: assets, job, sensors, resources and executor.

Storage comes from $IGAIT_STORAGE_ROOT (a directory by default, `gs://bucket/prefix` in production), the executor
from $IGAIT_EXECUTOR (see igait_pipeline.execution), the Dagster instance from $DAGSTER_HOME as usual.
Nothing imports this module: it is what `dagster dev`, `dagster asset materialize -m igait_pipeline.definitions`
and the code server load.
"""
from dagster import Definitions

from igait_pipeline import assets
from igait_pipeline.execution import executor_from_env
from igait_pipeline.resources.io_manager import StageFilesIOManager, StorageResource
from igait_pipeline.resources.model_store import ModelStoreResource
from igait_pipeline.sensors import igait_job, uploads_sensor
from igait_pipeline.status.sensors import status_resources, status_sensors


def build_resources(storage_root: str = "") -> dict:
    storage = StorageResource(root=storage_root)
    return {
        "storage": storage,
        "io_manager": StageFilesIOManager(storage=storage),
        "model_store": ModelStoreResource(storage=storage),
        **status_resources(),  # job documents and e-mail: read by the status sensor, never by assets
    }


defs = Definitions(
    assets=[assets.upload, *assets.STAGE_ASSETS],
    jobs=[igait_job],
    sensors=[uploads_sensor, *status_sensors()],
    resources=build_resources(),
    executor=executor_from_env(),
)
