"""`igait`: submit a job the way the web back end does, see its state, and run the sample.

    igait submit --front FRONT --side SIDE --metadata META.json [--job-id ID]
    igait status ID
    igait fetch-sample
    igait demo            # submit the sample and run the whole graph in this process, on $DAGSTER_HOME
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from igait_pipeline.layout import (
    ARCHIVE,
    PIPELINE_STAGES,
    PREDICTION,
    UPLOAD,
    JobIdError,
    upload_glob,
    validate_job_id,
)
from igait_pipeline.schemas import JobMetadata, MetadataError
from igait_pipeline.storage import Storage, storage_from_uri


class CliError(Exception):
    pass


def next_job_id(storage: Storage, user_id: str) -> str:
    indices = [int(m.group(1)) for o in storage.list("jobs/", match_glob=upload_glob(f"{user_id}_*"))
               if (m := re.match(rf"jobs/{re.escape(user_id)}_(\d+)/", o.key))]
    return validate_job_id(f"{user_id}_{max(indices, default=0) + 1}")


def submit(front: Path, side: Path, metadata: Path, job_id: str | None = None, user_id: str = "local",
           storage: Storage | None = None) -> str:
    """Check the inputs, then store videos first and metadata.json last (the sensor's signal). Returns the ID."""
    from igait_pipeline.stages import media

    storage = storage or storage_from_uri()
    try:
        JobMetadata.from_json(Path(metadata).read_bytes())
    except FileNotFoundError:
        raise CliError(f"metadata file {metadata} does not exist") from None
    except MetadataError as e:
        raise CliError(f"{metadata}: {e}") from None
    for view, path in (("front", front), ("side", side)):
        try:
            media.probe(path, min_duration=media.MIN_WALK_DURATION_S)
        except media.MediaError as e:
            raise CliError(f"{view} video {path}: {e}") from None
    try:
        job_id = validate_job_id(job_id) if job_id is not None else next_job_id(storage, user_id)
    except JobIdError as e:
        raise CliError(str(e)) from None
    if storage.exists(UPLOAD.key(job_id, "metadata.json")):
        raise CliError(f"job {job_id} already exists in storage; choose another --job-id")
    storage.upload(Path(front), UPLOAD.key(job_id, "front.mp4"))
    storage.upload(Path(side), UPLOAD.key(job_id, "side.mp4"))
    storage.upload(Path(metadata), UPLOAD.key(job_id, "metadata.json"))
    return job_id


def job_status(job_id: str, instance=None) -> dict:
    """Each stage's latest state for the job, from the Dagster instance, and the result if there is one."""
    from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, RunsFilter

    validate_job_id(job_id)
    instance = instance or DagsterInstance.get()
    stages = {}
    for st in PIPELINE_STAGES:
        stage_no, name = st.number, st.asset
        recs = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(name),
                                                                  asset_partitions=[job_id]), limit=1).records
        if recs:
            stages[name] = {"stage": stage_no, "state": "materialized", "at": recs[0].timestamp,
                            "run_id": recs[0].run_id}
        else:
            stages[name] = {"stage": stage_no, "state": "not materialized"}
    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/partition": job_id}), limit=1)
    run_info = None
    if runs:
        run = runs[0]
        run_info = {"run_id": run.run_id, "status": run.status.value}
        for rec in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE):
            step = rec.dagster_event.step_key
            err = rec.dagster_event.event_specific_data.error
            if step in stages and stages[step].get("run_id") != run.run_id:
                stages[step].update(state="failed", error=err.message.strip() if err else "")
        if run.status.value in ("STARTED", "STARTING", "QUEUED", "NOT_STARTED"):
            for s in stages.values():
                if s.get("run_id") != run.run_id and s["state"] != "failed":
                    s["state"] = "pending in run " + run.run_id[:8]
    result = None
    storage = storage_from_uri()
    if storage.exists(PREDICTION.key(job_id)):
        pred = json.loads(storage.read_bytes(PREDICTION.key(job_id)))
        result = {"score": pred["score"], "classification": pred["classification"],
                  "reasons": pred.get("reasons") or [],
                  "archive": storage.url(ARCHIVE.key(job_id))
                  if storage.exists(ARCHIVE.key(job_id)) else None,
                  "note": pred.get("disclaimer")}
    return {"job_id": job_id, "run": run_info, "stages": stages, "result": result,
            "uploaded": storage.exists(UPLOAD.key(job_id, "metadata.json"))}


def print_status(status: dict) -> None:
    print(f"job {status['job_id']}  (upload {'present' if status['uploaded'] else 'absent'} in storage)")
    if status["run"]:
        print(f"latest run {status['run']['run_id']}: {status['run']['status']}")
    for name, s in status["stages"].items():
        line = f"  stage {s['stage']} {name:<18} {s['state']}"
        if s.get("error"):
            line += f": {s['error']}"
        print(line)
    if status["result"]:
        r = status["result"]
        if r.get("note"):
            print(f"note: {r['note']}")
        if r["classification"] == "INDETERMINATE":
            print("result: INDETERMINATE (no screening result) because: " + "; ".join(r["reasons"]))
            print(f"model score {r['score']:.3f}, a number only, not a result")
        else:
            print(f"result: score {r['score']:.3f} -> {r['classification']}")
        print(f"archive: {r['archive']}")


# The demo's one licensed walking clip is a side view in both slots: stage 2 records, rather than refuses, that.
DEMO_RUN_CONFIG = {"ops": {"validation_report": {"config": {"view_check": "warn"}}}}


def run_demo(job_id: str | None = None) -> int:
    """Submit the sample job and materialize the whole graph for it in this process, on $DAGSTER_HOME."""
    import tempfile

    from dagster import AssetMaterialization, DagsterInstance, materialize

    from igait_pipeline import assets, sample
    from igait_pipeline.partitions import job_partitions
    from igait_pipeline.resources import build_resources

    video = sample.fetch_sample()
    # The walker in the sample clip is an adult: outside the reference model's domain, so the demo's prediction
    # is INDETERMINATE with its reasons (as it should be for a real adult's job).
    meta = {"age": 34, "sex": "F", "height": "176 cm", "weight": "72 kg", "ethnicity": "not stated",
            "email": "family@example.org"}
    with tempfile.TemporaryDirectory() as tmp:
        mpath = Path(tmp) / "metadata.json"
        mpath.write_text(json.dumps(meta))
        # The only licensed walking clip is a side view: it stands in for both views. Stage 2 sees that (same
        # view twice) and would refuse the job; the demo runs with view_check=warn, so validation.json records the
        # verdict as a warning instead.
        job_id = submit(video, video, mpath, job_id=job_id, user_id="demo")
    print(f"submitted {job_id} ({sample.SAMPLE_LICENSE}); running the pipeline…", flush=True)
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(job_partitions.name, [job_id])
    # What the uploads sensor records when it finds a job, so the UI shows stage 0 for this one too.
    instance.report_runless_asset_event(AssetMaterialization(
        UPLOAD.asset, partition=job_id, description=f"upload of job {job_id} submitted by `igait demo`"))
    result = materialize([assets.upload, *assets.STAGE_ASSETS], instance=instance, partition_key=job_id,
                         resources=build_resources(), raise_on_error=False, tags={"igait/job_id": job_id},
                         run_config=DEMO_RUN_CONFIG)
    print_status(job_status(job_id, instance))
    return 0 if result.success else 1


def ensure_dagster_home() -> Path:
    """$DAGSTER_HOME, defaulting to ./.dagster_home with this repository's embedded dagster.yaml."""
    import os
    import shutil

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    src = Path(__file__).resolve().parents[1] / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and src.is_file():
        shutil.copyfile(src, home / "dagster.yaml")
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="igait", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("submit", help="put a job into storage (videos first, metadata.json last)")
    p.add_argument("--front", required=True, type=Path)
    p.add_argument("--side", required=True, type=Path)
    p.add_argument("--metadata", required=True, type=Path)
    p.add_argument("--job-id")
    p.add_argument("--user-id", default="local", help="user part of a generated job ID")
    p = sub.add_parser("status", help="each stage's state and the result, from the Dagster instance")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true")
    sub.add_parser("fetch-sample", help="download the public sample walking video once (set-up time)")
    p = sub.add_parser("demo", help="submit the sample and run the whole pipeline here")
    p.add_argument("--job-id")
    args = parser.parse_args(argv)
    if args.cmd in ("status", "demo"):
        ensure_dagster_home()
    try:
        if args.cmd == "submit":
            print(submit(args.front, args.side, args.metadata, args.job_id, args.user_id))
        elif args.cmd == "status":
            st = job_status(args.job_id)
            print(json.dumps(st, indent=1, default=str)) if args.json else print_status(st)
        elif args.cmd == "fetch-sample":
            from igait_pipeline import sample

            print(sample.fetch_sample())
        elif args.cmd == "demo":
            return run_demo(args.job_id)
    except (CliError, JobIdError) as e:
        print(f"igait: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
