"""Dagster resources over the storage layer: where objects live, and the IO manager that stores stage files."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import (
    ConfigurableIOManager,
    ConfigurableResource,
    DagsterInvariantViolationError,
    Failure,
    InputContext,
    OutputContext,
    RetryRequested,
)

from igait_pipeline import watchdog
from igait_pipeline.layout import (
    FILES_META,
    STAGE_META,
    VIEW_META,
    stage_of_asset,
    validate_job_id,
    view_of,
    view_of_asset,
)
from igait_pipeline.storage import (
    DEFAULT_ROOT,
    STORAGE_ROOT_ENV,
    Scope,
    ScopeError,
    StageFiles,
    Storage,
    TransientStorageError,
    read_stage,
    storage_from_uri,
    write_stage,
)
from igait_pipeline.storage.scope import scoped

STORAGE_STEP_RETRIES = 2  # more attempts of a step after the store stayed unavailable through the client's retries
STORAGE_RETRY_WAIT_ENV = "IGAIT_STORAGE_RETRY_WAIT_S"
DEFAULT_STORAGE_RETRY_WAIT_S = 30.0


def storage_retry_wait() -> float:
    raw = os.environ.get(STORAGE_RETRY_WAIT_ENV, "").strip()
    try:
        wait = float(raw) if raw else DEFAULT_STORAGE_RETRY_WAIT_S
    except ValueError:
        wait = -1.0
    if wait < 0:
        raise ValueError(f"${STORAGE_RETRY_WAIT_ENV} must be a number of seconds >= 0, got {raw!r}")
    return wait


@contextmanager
def retry_transient(job_id: str, what: str, attempt: int) -> Iterator[None]:
    """Around a step's storage work: a TransientStorageError (the store still failing after the client library's
    own retries, igait_pipeline.storage.gcs) makes Dagster run the step again (RetryRequested), at most
    STORAGE_STEP_RETRIES more times, $IGAIT_STORAGE_RETRY_WAIT_S (30 s) apart; on the last attempt it fails the
    step with a Failure naming the job, what the step was doing and the key. Only this error type: a rejected
    video, bad metadata or a bug is never retried. `attempt` is the step's retry number (0 the first time)."""
    try:
        yield
    except TransientStorageError as e:
        if attempt >= STORAGE_STEP_RETRIES:
            raise Failure(description=f"job {job_id}: {what}: storage unavailable after {attempt + 1} attempts "
                                      f"of the step: {e}",
                          metadata={"job_id": job_id, "cause": str(e)}, allow_retries=False) from e
        raise RetryRequested(max_retries=STORAGE_STEP_RETRIES, seconds_to_wait=storage_retry_wait()) from e


def _attempt(context: InputContext | OutputContext) -> int:
    """The step's retry number (0 the first time); 0 for a context built outside a step (build_*_context)."""
    try:
        return context.step_context.previous_attempt_count
    except DagsterInvariantViolationError:
        return 0


class StorageResource(ConfigurableResource):
    """The object store: a local directory (default) or `gs://bucket/prefix`. Inside a stage's step (see
    `assets._step`) the handle is scoped to what that stage may touch (igait_pipeline.storage.scope)."""

    root: str = ""

    def get(self) -> Storage:
        return scoped(storage_from_uri(self.root or os.environ.get(STORAGE_ROOT_ENV) or DEFAULT_ROOT))

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


def stage_step_scope(asset: str, job_id: str | None) -> Scope:
    """The scope of the step of a stage asset (`keypoints_front`) for a job; ScopeError for anything else."""
    try:
        st, view = stage_of_asset(asset), view_of_asset(asset)
    except KeyError:
        raise ScopeError(f"{asset} is not a stage asset: the stage IO manager stores and loads files only for "
                         f"the steps of the stages in layout.STAGES") from None
    if job_id is None:
        raise ScopeError(f"{asset}: a stage's files are stored per job; this step has no job (partition)")
    return Scope.for_stage(st, job_id, view)


class StageFilesIOManager(ConfigurableIOManager):
    """Persists each stage's own files (mp4, json, zip — never pickles) at `jobs/{job_id}/stage_N/<name>`.

    Outputs are `StageFiles`; inputs arrive as `StageFiles` of local paths (in place on local disk, downloaded
    to a per-run cache on GCS). The asset of one view of a per-view stage (metadata `igait/view`) writes, replaces
    and reads only that view's files in `stage_N/`.

    Every write and read goes through a handle scoped to the step's stage and job (`Scope.for_stage`): an output
    stored anywhere but the stage's own `stage_N/` of the run's job, or an input that is not one of the stage's
    inputs (`layout.STAGES[n].reads`) of that job, raises a ScopeError naming the stage, the job and the key.
    """

    storage: StorageResource

    def handle_output(self, context: OutputContext, obj: StageFiles) -> None:
        watchdog.exit_with_parent()
        if not isinstance(obj, StageFiles):
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, not StageFiles")
        job_id = validate_job_id(context.partition_key)
        number = _stage_of(context.definition_metadata, context.asset_key.to_user_string())
        view = _view_of(context.definition_metadata)
        # The scope is the stage the asset *is* (its key); the folder is the one its metadata names: a wrong
        # `igait/stage` (or a wrong key) is refused instead of overwriting another stage.
        scope = stage_step_scope(context.asset_key.to_user_string(), job_id)
        with retry_transient(job_id, f"{scope.access.label}, step {scope.step}, storing its files", _attempt(context)):
            keys = write_stage(scoped(self.storage.get(), scope), job_id, number, obj, view=view)
        context.add_output_metadata({"storage_keys": sorted(keys.values())})

    def load_input(self, context: InputContext) -> StageFiles:
        watchdog.exit_with_parent()  # a step's first work: from here on it ends with its run worker
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
        # The reader's scope: the stage of the asset loading this input, for the job of the step's run.
        reader = stage_step_scope(context.op_def.name, context.partition_key if context.has_partition_key else None)
        what = f"{reader.access.label}, step {reader.step}, reading stage {stage}"
        with retry_transient(job_id, what, _attempt(context)):
            return read_stage(scoped(self.storage.get(), reader), job_id, stage, self.storage.cache_dir(job_id),
                              required=required, view=view)
