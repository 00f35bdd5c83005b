"""Object storage for iGait jobs and models, as a plain library (no Dagster import anywhere in this package).

    from igait_pipeline.storage import storage_from_uri
    st = storage_from_uri("gs://igait-data/igait")   # or a directory; default $IGAIT_STORAGE_ROOT or data/storage

- `base`: the `Storage` interface (exists, list, download, upload, delete, url), `ObjectInfo`, `StorageError`.
- `local`: `LocalStorage`, objects as files under a root directory (the embedded default).
- `gcs`: `GCSStorage`, a Google Cloud Storage bucket (imported only when a `gs://` root is asked for).
- `stage_files`: `StageFiles`, `write_stage`, `read_stage`: one stage's files at `jobs/{job_id}/stage_N/`.
- `scope`: `ScopedStorage`, `Scope`, `ScopeError`: a handle limited to what one stage's step (or the uploads path)
  may touch, from `layout.ACCESS`.
The key layout itself (`stage_prefix`, `job_key`, `model_prefix`) lives in `igait_pipeline.layout`.
"""
from __future__ import annotations

import os

from igait_pipeline.storage.base import ObjectInfo, Storage, StorageError, TransientStorageError
from igait_pipeline.storage.local import LocalStorage
from igait_pipeline.storage.scope import Scope, ScopedStorage, ScopeError
from igait_pipeline.storage.stage_files import StageFiles, read_stage, write_stage

STORAGE_ROOT_ENV = "IGAIT_STORAGE_ROOT"
DEFAULT_ROOT = "data/storage"

__all__ = ["DEFAULT_ROOT", "STORAGE_ROOT_ENV", "LocalStorage", "ObjectInfo", "Scope", "ScopeError", "ScopedStorage",
           "StageFiles", "Storage", "StorageError", "TransientStorageError", "read_stage", "storage_from_uri",
           "write_stage"]


def storage_from_uri(uri: str | None = None) -> Storage:
    """`gs://bucket/prefix` chooses GCS; anything else is a local directory. Default: $IGAIT_STORAGE_ROOT."""
    uri = uri or os.environ.get(STORAGE_ROOT_ENV) or DEFAULT_ROOT
    if uri.startswith("gs://"):
        from igait_pipeline.storage.gcs import GCSStorage  # imported only when production storage is asked for

        return GCSStorage.from_uri(uri)
    return LocalStorage(uri)

