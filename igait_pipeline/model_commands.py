"""What `igait model …` and `igait rescore` do, against the Dagster instance ($DAGSTER_HOME) and the code location's
definitions, in this process (no daemon needed, except for `rescore` without --here: that submits a backfill the
daemon runs, submitted through Dagster's GraphQL API as the UI's "Materialize" of stale partitions does).

    promote(version)          materialize screening_model with that version: it becomes the model in use only if
                              every blocking check of candidate_model passed for it
    rollback()                promote again what the model in use replaced
    import_model(directory)   materialize candidate_model from a model trained elsewhere (its checks gate it)
    rescore(jobs, here)       re-run prediction and results_archive of the jobs (default: every job), after a
                              promotion: one asset backfill, or (here=True) one run per job in this process

The backfill goes through the public GraphQL API the UI itself uses (the `launchPartitionBackfill` mutation), sent
with the documented `dagster-graphql` command: in-process against the per-job code location and $DAGSTER_HOME, or
(`url`, `igait rescore --url`) to a running dagster-webserver, as in production. No Dagster-internal class is
imported for it (docs/research.md says why).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, DagsterInstance

from igait_pipeline.layout import ARCHIVE, PREDICTION, SCREENING_MODEL, validate_job_id
from igait_pipeline.partitions import job_partitions

RESCORE_TAG = "igait/rescore"  # run / backfill tag: the model version the jobs are re-scored with


class ModelCommandError(RuntimeError):
    pass


PIPELINE_MODULE = "igait_pipeline.definitions"  # the per-job code location (prediction, results_archive)


def _defs(defs=None):
    """The research code location's definitions, where the model assets are (tests pass their own, with
    resources over their storage)."""
    if defs is not None:
        return defs
    from igait_pipeline.research_definitions import defs

    return defs


def _materialize(instance: DagsterInstance, key: str, run_config: dict, defs=None):
    job = _defs(defs).resolve_implicit_global_asset_job_def().get_subset(asset_selection={AssetKey(key)})
    result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    if not result.success:
        failures = [e.event_specific_data.error.message.strip() for e in result.all_events
                    if e.is_step_failure and e.event_specific_data and e.event_specific_data.error]
        raise ModelCommandError("; ".join(failures) or f"{key} failed (run {result.run_id})")
    return result


def promote(version: str, name: str | None = None, instance: DagsterInstance | None = None, defs=None) -> dict:
    from igait_pipeline.research_assets import DEFAULT_MODEL_NAME

    instance = instance or DagsterInstance.get()
    cfg = {"version": version, "name": name or DEFAULT_MODEL_NAME}
    result = _materialize(instance, SCREENING_MODEL, {"ops": {SCREENING_MODEL: {"config": cfg}}}, defs)
    mat = result.asset_materializations_for_node(SCREENING_MODEL)[0]
    return {k: v.value for k, v in mat.metadata.items()}


def _store(defs=None):
    return _defs(defs).resources["model_store"].store()


def rollback(instance: DagsterInstance | None = None, defs=None) -> dict:
    store = _store(defs)
    replaced = store.in_use().get("replaced")
    if not replaced:
        raise ModelCommandError("nothing to roll back to: no model was promoted yet (the bundled reference model "
                                "is in use)")
    return promote(replaced["version"], replaced["name"], instance, defs)


def import_model(directory: str | Path, instance: DagsterInstance | None = None, defs=None, **config) -> dict:
    """candidate_model from a model trained elsewhere; returns its metadata and whether every check passed."""
    instance = instance or DagsterInstance.get()
    cfg = {"import_dir": str(Path(directory).resolve()), **config}
    job = _defs(defs).resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={AssetKey("candidate_model")})
    result = job.execute_in_process(instance=instance, raise_on_error=False,
                                    run_config={"ops": {"candidate_model": {"config": cfg}}})
    mats = result.asset_materializations_for_node("candidate_model")
    if not mats:
        raise ModelCommandError(f"import of {directory} failed (run {result.run_id})")
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return {**{k: v.value for k, v in mats[0].metadata.items()}, "checks": checks}


BACKFILL_MUTATION = """
mutation Rescore($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""


def submit_backfill(asset_keys: list[AssetKey], partitions: list[str], tags: dict[str, str], title: str,
                    url: str | None = None) -> str:
    """Submit one asset backfill through Dagster's GraphQL API (`launchPartitionBackfill`, the mutation the UI's
    "Materialize" of selected partitions sends), with the `dagster-graphql` command: to the webserver at `url`, or
    in-process against the per-job code location and $DAGSTER_HOME. Returns the backfill ID; the daemon runs it."""
    params = {"partitionNames": partitions, "assetSelection": [{"path": k.path} for k in asset_keys],
              "tags": [{"key": k, "value": v} for k, v in tags.items()], "title": title, "fromFailure": False}
    exe = Path(sys.executable).with_name("dagster-graphql")
    where = ["-r", url] if url else ["-m", PIPELINE_MODULE]
    proc = subprocess.run([str(exe), *where, "-t", BACKFILL_MUTATION, "-v", json.dumps({"params": params})],
                          capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]  # the response: one JSON line
    try:
        response = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise ModelCommandError(f"the backfill was not submitted (dagster-graphql exited {proc.returncode}): "
                                f"{(proc.stderr or proc.stdout).strip()[-1500:]}") from None
    result = (response.get("data") or {}).get("launchPartitionBackfill") or {}
    if result.get("__typename") != "LaunchBackfillSuccess":
        why = result.get("message") or response.get("errors") or result.get("__typename")
        raise ModelCommandError(f"the backfill was refused: {why}")
    return result["backfillId"]


def rescore(jobs: list[str] | None = None, here: bool = False, instance: DagsterInstance | None = None,
            defs=None, url: str | None = None) -> dict:
    """Re-run prediction and results_archive for the jobs (None: every job of the instance): one asset backfill
    submitted through GraphQL (to `url`, or in-process), or (here=True) one run per job in this process."""
    instance = instance or DagsterInstance.get()
    known = instance.get_dynamic_partitions(job_partitions.name)
    jobs = [validate_job_id(j) for j in jobs] if jobs else sorted(known)
    unknown = sorted(set(jobs) - set(known))
    if unknown:
        raise ModelCommandError(f"not jobs of this instance: {', '.join(unknown[:10])}")
    in_use = _store(defs).in_use()
    tags = {RESCORE_TAG: f"{in_use['name']} {in_use['version']}"}
    keys = [AssetKey(PREDICTION.asset), AssetKey(ARCHIVE.asset)]
    if not here:
        backfill_id = submit_backfill(keys, jobs, tags, title=f"re-score with {tags[RESCORE_TAG]}", url=url)
        return {"backfill": backfill_id, "jobs": len(jobs), "model": tags[RESCORE_TAG]}
    from igait_pipeline.jobs import JOB_NAME

    pipeline = defs
    if pipeline is None:
        from igait_pipeline.definitions import defs as pipeline
    job = pipeline.resolve_job_def(JOB_NAME).get_subset(asset_selection=set(keys))
    failed = []
    for job_id in jobs:
        res = job.execute_in_process(instance=instance, partition_key=job_id, raise_on_error=False,
                                     tags=tags)
        if not res.success:
            failed.append(job_id)
    return {"jobs": len(jobs), "failed": failed, "model": tags[RESCORE_TAG]}
