"""`igait`: submit a job the way the web back end does, see its state, and run the sample.

    igait submit --front FRONT --side SIDE --metadata META.json [--job-id ID]
    igait run [--front FRONT --side SIDE --metadata META.json] [--job-id ID]
                          # (submit, then) record the upload as the sensor does and run the whole job here
    igait register ID     # record an upload already in storage as the sensor does (no run)
    igait status ID
    igait fetch-sample
    igait demo            # `igait run` on the public sample clip
    igait deploy iam --project P --bucket B   # the per-stage identities and bucket IAM bindings, as a script
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
    VIEWS,
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
    """Check the inputs, then store videos first and metadata.json last (the sensor's signal). Returns the ID.
    Storage is reached as the uploads path (`Scope.uploads()`): it may only create objects in a job's stage_0/."""
    from igait_pipeline.stages import media
    from igait_pipeline.storage.scope import Scope, scoped

    storage = scoped(storage or storage_from_uri(), Scope.uploads())
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

    from igait_pipeline.partitions import PARTITION_TAG

    validate_job_id(job_id)
    instance = instance or DagsterInstance.get()
    stages = {}
    step_stage = {}  # step key (`keypoints_front`) -> stage asset name
    step_run = {}  # step key -> the run of its asset's latest materialization
    for st in PIPELINE_STAGES:
        latest = []  # one stage: materialized once every view is
        for view in VIEWS if st.per_view else (None,):
            # the latest materialization under the asset's key, else under its key of older releases
            for asset_key in dict.fromkeys([AssetKey(st.asset_key(view)), AssetKey(list(st.former_asset_key(view)))]):
                step = asset_key.to_python_identifier()
                step_stage[step] = st.asset
                recs = instance.fetch_materializations(
                    AssetRecordsFilter(asset_key=asset_key, asset_partitions=[job_id]), limit=1).records
                if recs:
                    latest.append(recs[0])
                    step_run[step] = recs[0].run_id
                    break
        if len(latest) == len(st.asset_keys):  # every view
            last = max(latest, key=lambda r: r.timestamp)
            stages[st.asset] = {"stage": st.number, "state": "materialized", "at": last.timestamp,
                                "run_id": last.run_id}
        else:
            stages[st.asset] = {"stage": st.number, "state": "not materialized"}
    runs = instance.get_runs(filters=RunsFilter(tags={PARTITION_TAG: job_id}), limit=1)
    run_info = None
    if runs:
        run = runs[0]
        run_info = {"run_id": run.run_id, "status": run.status.value}
        for rec in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE):
            step = rec.dagster_event.step_key
            err = rec.dagster_event.event_specific_data.error
            if step in step_stage and step_run.get(step) != run.run_id:
                stages[step_stage[step]].update(state="failed", error=err.message.strip() if err else "")
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


def register(job_id: str, how: str = "registered by `igait register`", instance=None):
    """Record a job's upload (already in storage) as the uploads sensor does: its partition and its stage 0.
    Returns (the checked upload, whether it was recorded now)."""
    from dagster import DagsterInstance

    from igait_pipeline import launch
    from igait_pipeline.schemas import MetadataError
    from igait_pipeline.status.jobdoc import job_store_from_uri

    instance = instance or DagsterInstance.get()
    store = job_store_from_uri()  # the job-status sensor's store ($IGAIT_STATUS_URI, as its resource by default)
    try:
        return launch.record_upload(instance, storage_from_uri(), job_id, how, store)
    except (MetadataError, FileNotFoundError) as e:
        raise CliError(f"job {job_id}: upload refused: {e}") from None
    finally:
        store.close()


def view_check_config(view_check: str) -> dict:
    """Run config of stage 2's view check: `refuse` (the default, as the daemon runs jobs) or `warn`."""
    return {"ops": {"validation_report": {"config": {"view_check": view_check}}}}


def run(job_id: str, how: str = "run by `igait run`", run_config: dict | None = None) -> int:
    """Record the job's upload as the sensor would and run the whole job in this process, as the daemon would
    (the code location's executor: one process per step, both views at once); then print its status."""
    from dagster import DagsterInstance

    from igait_pipeline import launch

    instance = DagsterInstance.get()
    job, recorded = register(job_id, how, instance)
    if not recorded:
        print(f"job {job_id} is already a partition of this instance: running it again", flush=True)
    print(f"running job {job_id} (Dagster instance {instance.root_directory})…", flush=True)
    result = launch.run_job(instance, job, run_config)
    print_status(job_status(job_id, instance))
    return 0 if result.success else 1


def run_demo(job_id: str | None = None) -> int:
    """`igait run` on the sample clip: submit it and run the whole graph in this process, on $DAGSTER_HOME."""
    import tempfile

    from igait_pipeline import sample

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
    print(f"submitted {job_id} ({sample.SAMPLE_LICENSE})", flush=True)
    return run(job_id, "submitted by `igait demo`", DEMO_RUN_CONFIG)


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
    p = sub.add_parser("run", help="(submit, then) record the upload as the sensor does and run the whole job here, "
                                   "without a daemon")
    p.add_argument("--front", type=Path)
    p.add_argument("--side", type=Path)
    p.add_argument("--metadata", type=Path)
    p.add_argument("--job-id", help="the job to run; with --front/--side/--metadata, the ID to submit it as")
    p.add_argument("--user-id", default="local", help="user part of a generated job ID")
    p.add_argument("--view-check", choices=("refuse", "warn"), default="refuse",
                   help="stage 2's check that the videos show a front and a side view: refuse the job (default, as "
                        "the daemon runs it) or only warn (e.g. one clip in both slots)")
    p = sub.add_parser("register", help="record a job already in storage as the uploads sensor does (partition "
                                        "and stage 0), so `dagster asset materialize --partition ID` accepts it")
    p.add_argument("job_id")
    sub.add_parser("fetch-sample", help="download the public sample walking video once (set-up time)")
    p = sub.add_parser("demo", help="submit the sample and run the whole pipeline here")
    p.add_argument("--job-id")
    p = sub.add_parser("model", help="the screening model in use: promote a candidate, roll back, import one")
    msub = p.add_subparsers(dest="model_cmd", required=True)
    m = msub.add_parser("promote", help="make a candidate the model in use (only if its checks passed)")
    m.add_argument("version")
    m.add_argument("--name", help="the model's name (default igait-screening)")
    msub.add_parser("rollback", help="put back the model the last promotion replaced")
    msub.add_parser("show", help="the model in use and its promotion history")
    m = msub.add_parser("import", help="a model trained elsewhere (model.pt + model_card.json; TorchScript or an "
                                       "igait checkpoint) as a candidate, validated on the labelled jobs")
    m.add_argument("directory", type=Path)
    m.add_argument("--min-participants-per-class", type=int)
    m.add_argument("--min-auc-lower-bound", type=float)
    p = sub.add_parser("rescore", help="re-run prediction and the archive of jobs with the model in use (after a "
                                       "promotion): one backfill the daemon runs, or --here")
    p.add_argument("jobs", nargs="*", help="job IDs (default: every job)")
    p.add_argument("--here", action="store_true", help="run them in this process, one run per job, no daemon")
    p.add_argument("--url", help="submit the backfill to this dagster-webserver (its GraphQL API, as the UI does); "
                                 "default: in-process against $DAGSTER_HOME")
    p = sub.add_parser("deploy", help="deployment artefacts generated from the stage table")
    dsub = p.add_subparsers(dest="deploy_cmd", required=True)
    d = dsub.add_parser("iam", help="print a script (gcloud, kubectl) creating each stage's identity and the "
                                    "bucket's conditional IAM bindings (docs/deploy.md)")
    d.add_argument("--project", required=True)
    d.add_argument("--bucket", required=True)
    d.add_argument("--prefix", default="igait", help="the storage root under the bucket (gs://BUCKET/PREFIX)")
    d.add_argument("--namespace", default="igait")
    d.add_argument("--compute-log-prefix", default="dagster-compute-logs")
    d.add_argument("--control-ksa", default="igait-dagster", help="the chart's service account (control plane)")
    d.add_argument("--control-gsa", default="igait-pipeline", help="its Google service account ID")
    args = parser.parse_args(argv)
    if args.cmd in ("status", "demo", "run", "register", "model", "rescore"):
        ensure_dagster_home()
    if args.cmd in ("demo", "run"):
        from igait_pipeline import launch

        launch.start_step_server()  # the step processes' forkserver imports while we check and submit
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
        elif args.cmd == "run":
            files = [args.front, args.side, args.metadata]
            if any(files) and not all(files):
                raise CliError("run: give all of --front, --side and --metadata, or none of them (with --job-id)")
            if all(files):
                job_id = submit(args.front, args.side, args.metadata, args.job_id, args.user_id)
                print(f"submitted {job_id}", flush=True)
            elif args.job_id:
                job_id = validate_job_id(args.job_id)
            else:
                raise CliError("run: give --front, --side and --metadata, or the --job-id of a job in storage")
            return run(job_id, run_config=view_check_config(args.view_check))
        elif args.cmd == "register":
            print(f"job {args.job_id}: " + ("registered" if register(args.job_id)[1] else "already registered"))
        elif args.cmd in ("model", "rescore"):
            return _model_command(args)
        elif args.cmd == "deploy":
            from igait_pipeline import deploy_iam

            try:
                settings = deploy_iam.Settings(**{k: getattr(args, k) for k in (
                    "project", "bucket", "prefix", "namespace", "compute_log_prefix", "control_ksa", "control_gsa")})
            except deploy_iam.IamError as e:
                raise CliError(str(e)) from None
            print(deploy_iam.script(settings), end="")
    except (CliError, JobIdError) as e:
        print(f"igait: {e}", file=sys.stderr)
        return 2
    return 0


def _model_command(args) -> int:
    from igait_pipeline import model_commands

    try:
        if args.cmd == "rescore":
            out = model_commands.rescore(args.jobs or None, here=args.here, url=args.url)
        elif args.model_cmd == "promote":
            out = model_commands.promote(args.version, args.name)
        elif args.model_cmd == "rollback":
            out = model_commands.rollback()
        elif args.model_cmd == "show":
            from igait_pipeline.resources import build_resources

            out = build_resources()["model_store"].store().in_use()
        else:
            extra = {k: v for k, v in (("min_participants_per_class", args.min_participants_per_class),
                                       ("min_auc_lower_bound", args.min_auc_lower_bound)) if v is not None}
            out = model_commands.import_model(args.directory, **extra)
    except model_commands.ModelCommandError as e:
        print(f"igait: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=1, default=str))
    if args.cmd == "model" and args.model_cmd == "import" and not all(out["checks"].values()):
        print("igait: the imported model failed its checks: it cannot be promoted", file=sys.stderr)
        return 1
    if args.cmd == "rescore" and out.get("failed"):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
