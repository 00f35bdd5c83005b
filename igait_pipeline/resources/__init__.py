"""The Dagster resources of the code location, and the one place that assembles them for a deployment.

- `StorageResource` (the object store: a directory or `gs://bucket/prefix`) and `StageFilesIOManager` (each
  stage's files at `jobs/{job_id}/stage_N/`): `io_manager.py`, over the plain library `igait_pipeline.storage`.
- `ModelStoreResource`: which scoring model the prediction asset uses (`model_store.py`).
- `JobStatusResource`, `SmtpResource`: the job-status sensor's store and e-mail server (`status.py`).

`build_resources()` is what `igait_pipeline.definitions` (and tests, and `igait run`) use: the local or the
production flavour is chosen by configuration (the storage root, `$IGAIT_STATUS_URI`, `$IGAIT_SMTP_*`), not code.
"""
from __future__ import annotations

from igait_pipeline.resources.io_manager import StageFilesIOManager, StorageResource
from igait_pipeline.resources.model_store import ModelStoreResource
from igait_pipeline.resources.status import JobStatusResource, SmtpResource


def build_resources(storage_root: str = "") -> dict:
    """Every resource the assets and sensors need. An empty storage_root means $IGAIT_STORAGE_ROOT (or the default
    directory); job documents and e-mail come from the environment and are read by the status sensor only."""
    storage = StorageResource(root=storage_root)
    return {
        "storage": storage,
        "io_manager": StageFilesIOManager(storage=storage),
        "model_store": ModelStoreResource(storage=storage),
        "job_status": JobStatusResource(),
        "smtp": SmtpResource(),
    }


__all__ = ["JobStatusResource", "ModelStoreResource", "SmtpResource", "StageFilesIOManager", "StorageResource",
           "build_resources"]
