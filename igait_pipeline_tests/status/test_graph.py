"""A tiny stand-in for the iGait asset graph, for the status tests: the same asset names, partitions, `igait/stage`
metadata, IO manager and storage layout as the real pipeline, but each stage writes a few bytes in milliseconds.

A run's tags steer it: `igait-test/fail=<asset name>` makes that stage raise a Failure, `igait-test/invalid=1`
makes validation_report refuse the videos the way the real one does (validation.json written, then Failure).
Helpers here put an upload into storage and report it the way the uploads sensor does.
"""

import io
import json
import threading
import zipfile
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetMaterialization,
    AssetSpec,
    DagsterInstance,
    Definitions,
    Failure,
    Output,
    asset,
    define_asset_job,
)

from igait_pipeline.layout import KEYPOINTS, VIEW_META, VIEWS, job_key
from igait_pipeline.partitions import job_partitions
from igait_pipeline.resources import JobStatusResource, SmtpResource
from igait_pipeline.resources.io_manager import FILES_META, STAGE_META, StageFilesIOManager, StorageResource
from igait_pipeline.status.sensors import job_status_sensor
from igait_pipeline.storage import LocalStorage, StageFiles, write_stage

GROUP = "igait"
FAIL_TAG = "igait-test/fail"
INVALID_TAG = "igait-test/invalid"
HOLD_TAG = "igait-test/hold"  # <asset name>: that stage waits (after it started) until the test releases it
VALIDATION_REASONS = ["side view: more than one person is visible in 40% of the frames"]

METADATA = {"age": 7, "sex": "F", "height": "4'2\"", "weight": "55 lb", "ethnicity": "Hispanic or Latino",
            "email": "parent.of.test.child@example.org"}


def _scratch(context: AssetExecutionContext, n: int) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"status-test-{context.partition_key}-{n}-"))


class Hold:
    """Where a held stage waits: `entered` is set when the stage is running, `release` lets it finish."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()


HOLDS: dict[str, Hold] = {}  # job ID -> its hold


def _maybe_fail(context: AssetExecutionContext, *names: str) -> None:
    if context.run.tags.get(HOLD_TAG) in names:
        hold = HOLDS[context.partition_key]
        hold.entered.set()
        if not hold.release.wait(60):
            raise Failure(description="the test never released the held stage")
    if context.run.tags.get(FAIL_TAG) in names:
        raise Failure(description=f"job {context.partition_key}: {names[0]} failed: test failure",
                      allow_retries=False)


def _files(context: AssetExecutionContext, n: int, contents: dict[str, bytes]) -> StageFiles:
    out = _scratch(context, n)
    for name, data in contents.items():
        (out / name).write_bytes(data)
    return StageFiles({name: out / name for name in contents}, scratch=out)


upload = AssetSpec("upload", group_name=GROUP, partitions_def=job_partitions,
                   metadata={STAGE_META: 0, FILES_META: ["front.mp4", "side.mp4", "metadata.json"]})


def _kw(n: int, files: list[str]) -> dict:
    return dict(group_name=GROUP, partitions_def=job_partitions, metadata={STAGE_META: n, FILES_META: files})


@asset(**_kw(1, ["front.mp4", "side.mp4"]))
def converted_video(context: AssetExecutionContext, upload: StageFiles) -> Output[StageFiles]:
    _maybe_fail(context, "converted_video")
    return Output(_files(context, 1, {"front.mp4": upload["front.mp4"].read_bytes(),
                                      "side.mp4": upload["side.mp4"].read_bytes()}))


@asset(**_kw(2, ["validation.json"]))
def validation_report(context: AssetExecutionContext, storage: StorageResource,
                      converted_video: StageFiles) -> Output[StageFiles]:
    _maybe_fail(context, "validation_report")
    valid = context.run.tags.get(INVALID_TAG) != "1"
    report = {"job_id": context.partition_key, "valid": valid, "views": {}, "thresholds": {},
              "reasons": [] if valid else VALIDATION_REASONS}
    files = _files(context, 2, {"validation.json": json.dumps(report).encode()})
    if not valid:
        write_stage(storage.get(), context.partition_key, 2, files)
        raise Failure(description=f"job {context.partition_key}: validation rejected the videos: "
                                  + "; ".join(VALIDATION_REASONS),
                      metadata={"validation_key": job_key(context.partition_key, 2, "validation.json")},
                      allow_retries=False)
    return Output(files)


@asset(**_kw(3, ["front.mp4", "side.mp4", "crop.json"]))
def reframed_video(context: AssetExecutionContext, converted_video: StageFiles,
                   validation_report: StageFiles) -> Output[StageFiles]:
    _maybe_fail(context, "reframed_video")
    return Output(_files(context, 3, {"front.mp4": b"f", "side.mp4": b"s", "crop.json": b"{}"}))


def _keypoints_view(view: str):
    """Stage 4 as the real graph has it: one asset per view, `keypoints_{view}`, each its own step. The fail and
    hold tags name `keypoints` (both views) or `keypoints_{view}` (that view only)."""
    @asset(key=KEYPOINTS.asset_key(view), group_name=GROUP, partitions_def=job_partitions,
           metadata={STAGE_META: 4, FILES_META: [f"{view}_keypoints.json"], VIEW_META: view})
    def keypoints(context: AssetExecutionContext, reframed_video: StageFiles) -> Output[StageFiles]:
        _maybe_fail(context, "keypoints", KEYPOINTS.asset_key(view))
        return Output(_files(context, 4, {f"{view}_keypoints.json": b"{}"}))
    return keypoints


keypoints_front, keypoints_side = _keypoints_view("front"), _keypoints_view("side")


@asset(**_kw(5, ["cycles.json"]), ins={f"keypoints_{v}": AssetIn(key=KEYPOINTS.asset_key(v)) for v in VIEWS})
def gait_cycles(context: AssetExecutionContext, keypoints_front: StageFiles,
                keypoints_side: StageFiles) -> Output[StageFiles]:
    _maybe_fail(context, "gait_cycles")
    return Output(_files(context, 5, {"cycles.json": b"{}"}))


PREDICTION = {"score": 0.27, "classification": "NO ASD", "threshold": 0.5, "in_domain": True,
              "clinically_validated": False,
              "model": {"name": "test-model", "version": "0", "sha256": "0" * 64, "clinically_validated": False,
                        "trained_on": "nothing"},
              "disclaimer": "Research prototype: not a clinically validated test.", "features": {}}


@asset(**_kw(6, ["prediction.json"]))
def prediction(context: AssetExecutionContext, gait_cycles: StageFiles) -> Output[StageFiles]:
    _maybe_fail(context, "prediction")
    return Output(_files(context, 6, {"prediction.json": json.dumps(
        {"job_id": context.partition_key, **PREDICTION}).encode()}))


@asset(**_kw(7, ["results.zip"]))
def results_archive(context: AssetExecutionContext, prediction: StageFiles) -> Output[StageFiles]:
    _maybe_fail(context, "results_archive")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("prediction.json", prediction["prediction.json"].read_bytes())
    return Output(_files(context, 7, {"results.zip": buf.getvalue()}))


ASSETS = [upload, converted_video, validation_report, reframed_video, keypoints_front, keypoints_side, gait_cycles,
          prediction, results_archive]
igait_job = define_asset_job("igait_job", selection=f"group:{GROUP}", partitions_def=job_partitions)


def make_defs(storage_root: str | Path = "", status_uri: str = "", smtp: SmtpResource | None = None) -> Definitions:
    storage = StorageResource(root=str(storage_root))
    return Definitions(
        assets=ASSETS,
        jobs=[igait_job],
        sensors=[job_status_sensor],
        resources={"storage": storage, "io_manager": StageFilesIOManager(storage=storage),
                   "job_status": JobStatusResource(uri=status_uri), "smtp": smtp or SmtpResource()},
    )


defs = make_defs()  # for `python -m igait_pipeline.status.metrics --definitions igait_pipeline_tests.status.test_graph`


def put_upload(storage_root: str | Path, job_id: str, metadata: dict | None = None) -> None:
    """What the web app does: write stage_0 (the videos, then metadata.json)."""
    st = LocalStorage(storage_root)
    st.write_bytes(job_key(job_id, 0, "front.mp4"), b"front video bytes")
    st.write_bytes(job_key(job_id, 0, "side.mp4"), b"side video bytes")
    st.write_bytes(job_key(job_id, 0, "metadata.json"), json.dumps(metadata or METADATA).encode())


def submit(instance: DagsterInstance, storage_root: str | Path, job_id: str, metadata: dict | None = None) -> None:
    """What the web app and the uploads sensor do: write stage_0, add the partition, report the upload."""
    put_upload(storage_root, job_id, metadata)
    instance.add_dynamic_partitions(job_partitions.name, [job_id])
    instance.report_runless_asset_event(AssetMaterialization("upload", partition=job_id))


def run_job(d: Definitions, instance: DagsterInstance, job_id: str, tags: dict | None = None):
    """One run of igait_job for the job, in process (as the run worker would run it)."""
    return d.resolve_job_def("igait_job").execute_in_process(
        partition_key=job_id, instance=instance, raise_on_error=False, tags=tags or {})


# ---------- the stand-in itself ----------
def test_stand_in_mirrors_the_stage_numbers():
    from igait_pipeline.status.events import StageMap

    stages = StageMap.from_definitions(make_defs())
    assert {k.to_user_string(): v for k, v in stages.by_asset.items()} == {
        "upload": 0, "converted_video": 1, "validation_report": 2, "reframed_video": 3, "keypoints_front": 4,
        "keypoints_side": 4,
        "gait_cycles": 5, "prediction": 6, "results_archive": 7}
