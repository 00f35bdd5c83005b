"""Dagster resources over the storage layer: where objects live, and the IO manager that stores stage files."""

import os
import tempfile
from pathlib import Path

from dagster import ConfigurableIOManager, ConfigurableResource, InputContext, OutputContext

from igait_pipeline.layout import FILES_META, STAGE_META, VIEW_META, validate_job_id, view_of
from igait_pipeline.storage import (
    DEFAULT_ROOT,
    STORAGE_ROOT_ENV,
    StageFiles,
    Storage,
    read_stage,
    storage_from_uri,
    write_stage,
)


class StorageResource(ConfigurableResource):
    """The object store: a local directory (default) or `gs://bucket/prefix`."""

    root: str = ""

    def get(self) -> Storage:
        return storage_from_uri(self.root or os.environ.get(STORAGE_ROOT_ENV) or DEFAULT_ROOT)

    def cache_dir(self, job_id: str) -> Path:
        base = Path(os.environ.get("IGAIT_CACHE_DIR") or Path(tempfile.gettempdir()) / "igait-cache")
        d = base / job_id
        d.mkdir(parents=True, exist_ok=True)
        return d


def _stage_of(metadata: dict | None, what: str) -> int:
    if not metadata or STAGE_META not in metadata:
        raise ValueError(f"{what} has no '{STAGE_META}' metadata: the IO manager cannot place its files")
    value = metadata[STAGE_META]
    return int(getattr(value, "value", value))


def _view_of(metadata: dict | None) -> str | None:
    value = (metadata or {}).get(VIEW_META)
    return getattr(value, "value", value)


class StageFilesIOManager(ConfigurableIOManager):
    """Persists each stage's own files (mp4, json, zip — never pickles) at `jobs/{job_id}/stage_N/<name>`.

    Outputs are `StageFiles`; inputs arrive as `StageFiles` of local paths (in place on local disk, downloaded
    to a per-run cache on GCS). The asset of one view of a per-view stage (metadata `igait/view`) writes, replaces
    and reads only that view's files in `stage_N/`.
    """

    storage: StorageResource

    def handle_output(self, context: OutputContext, obj: StageFiles) -> None:
        if not isinstance(obj, StageFiles):
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, not StageFiles")
        job_id = validate_job_id(context.partition_key)
        stage = _stage_of(context.definition_metadata, context.asset_key.to_user_string())
        keys = write_stage(self.storage.get(), job_id, stage, obj, view=_view_of(context.definition_metadata))
        context.add_output_metadata({"storage_keys": sorted(keys.values())})

    def load_input(self, context: InputContext) -> StageFiles:
        job_id = validate_job_id(context.asset_partition_key)
        upstream = context.upstream_output
        meta = upstream.definition_metadata if upstream else None
        stage = _stage_of(meta, context.asset_key.to_user_string())
        required = tuple(getattr(meta.get(FILES_META), "value", meta.get(FILES_META)) or ())
        # One view's asset reads only its view's files (and files of no view): the input's own view (a per-view
        # upstream), else the view of the asset reading it (AssetIn metadata).
        view = _view_of(meta) or _view_of(context.definition_metadata)
        if view:
            required = tuple(n for n in required if view_of(n) in (None, view))
        return read_stage(self.storage.get(), job_id, stage, self.storage.cache_dir(job_id),
                          required=required, view=view)
