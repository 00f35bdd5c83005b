"""The research flow end to end on a simulated cohort (stage-4 keypoints of synthetic participants) plus one
real-video job, with the real assets, the real Dagster instance APIs, the real SMTP test server:

cohort → labels → feature table → candidate (grouped CV, metrics) → checks → promotion → predictions stale →
re-score → job document updated, no second e-mail → rollback.
"""
import json

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from igait_pipeline import assets, model_commands, research_assets
from igait_pipeline.cli import DEMO_RUN_CONFIG, submit
from igait_pipeline.jobs import igait_job
from igait_pipeline.launch import record_upload
from igait_pipeline.layout import CYCLES, PREDICTION, job_key
from igait_pipeline.research import cohort, labels, table
from igait_pipeline.resources import JobStatusResource, SmtpResource, build_resources
from igait_pipeline.resources.model_store import IN_USE_KEY
from igait_pipeline.sensors import uploads_sensor
from igait_pipeline.status.jobdoc import JobDocument, job_store_from_uri
from igait_pipeline.status.sensors import job_status_sensor
from igait_pipeline_tests.fixtures.processes import PROCESSES, map_in_processes

COHORT = cohort.CohortSettings(participants_per_class=10, jobs_per_participant=2, overlay_width=96)
REAL_META = {"age": 7, "sex": "F", "height": "4'1\"", "weight": "24 kg", "ethnicity": "not stated",
             "email": "family@example.org"}


def _failures(res) -> list[str]:
    return [e.event_specific_data.error.message for e in res.all_events if e.is_step_failure]


def _materialize_each(instance_ref, storage_root: str, key: str, partitions: list[str]) -> list[str]:
    """In a process of its own: one run of asset `key` per partition on the instance (as the daemon runs a
    backfill's runs, each in its own process); returns what failed."""
    instance = DagsterInstance.from_ref(instance_ref)
    defs = Definitions(assets=[assets.upload, *assets.STAGE_ASSETS], resources=build_resources(storage_root))
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={AssetKey(key)})
    failed = []
    for partition in partitions:
        res = job.execute_in_process(instance=instance, partition_key=partition, raise_on_error=False)
        if not res.success:
            failed.append(f"{partition}: {_failures(res)}")
    return failed


class Env:
    def __init__(self, tmp_path, local_storage, smtp_server, instance):
        self.storage, self.instance = local_storage, instance
        self.resources = {**build_resources(str(local_storage.root)),
                          "job_status": JobStatusResource(uri=f"sqlite:{tmp_path}/status.sqlite3"),
                          "smtp": SmtpResource(host=smtp_server.host, port=smtp_server.port, timeout=5)}
        self.defs = Definitions(assets=[assets.upload, *assets.STAGE_ASSETS, *research_assets.RESEARCH_ASSETS],
                                jobs=[igait_job], sensors=[uploads_sensor, job_status_sensor],
                                resources=self.resources)
        self.store = job_store_from_uri(f"sqlite:{tmp_path}/status.sqlite3")
        self.cursor = None

    def materialize(self, key: str, partition: str | None = None, config: dict | None = None, ok: bool = True):
        job = self.defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={AssetKey(key)})
        res = job.execute_in_process(instance=self.instance, partition_key=partition, raise_on_error=False,
                                     run_config={"ops": {key: {"config": config}}} if config else None)
        assert res.success == ok, _failures(res)
        return res

    def materialize_partitions(self, key: str, partitions: list[str], processes: int = PROCESSES) -> None:
        """One run of `key` per partition, `processes` runs at a time (dagster.yaml's max_concurrent_runs is 2), each
        process running its share one after the other; every run must succeed."""
        shares = [partitions[i::processes] for i in range(processes)]
        failed = [f for out in map_in_processes(_materialize_each, [self.instance.get_ref()] * processes,
                                                [str(self.storage.root)] * processes, [key] * processes, shares,
                                                processes=processes) for f in out]
        assert not failed, failed

    def status_tick(self):
        with build_sensor_context(instance=self.instance, cursor=self.cursor, definitions=self.defs,
                                  resources=self.resources) as ctx:
            out = job_status_sensor(ctx)
        self.cursor = out.cursor if hasattr(out, "cursor") else ctx.cursor

    def stale(self, key: str, partition: str | None = None) -> StaleStatus:
        resolver = CachingStaleStatusResolver(self.instance, self.defs.resolve_asset_graph(),
                                              LoadingContextForTest(self.instance))
        return resolver.get_status(AssetKey(key), partition)


@pytest.fixture
def env(tmp_path, local_storage, smtp_server):
    with instance_for_test() as instance:
        yield Env(tmp_path, local_storage, smtp_server, instance)


def _meta(res, key: str) -> dict:
    return {k: v.value for k, v in res.asset_materializations_for_node(key)[0].metadata.items()}


@pytest.mark.slow
def test_cohort_to_promotion_to_rescore(env, short_clip, mirrored_clip, tmp_path, smtp_server):
    # ---- one real-video job, run whole (e-mailed once, scored by the bundled reference model)
    meta_file = tmp_path / "meta.json"
    meta_file.write_text(json.dumps(REAL_META))
    real = submit(short_clip, mirrored_clip, meta_file, job_id="family-9_1", storage=env.storage)
    record_upload(env.instance, env.storage, real, "test", env.store)
    run = env.defs.resolve_job_def("igait_job").execute_in_process(
        instance=env.instance, partition_key=real, run_config=DEMO_RUN_CONFIG, raise_on_error=False)
    assert run.success
    env.status_tick()
    env.status_tick()
    first = env.store.get(real)
    assert first["status"] == "completed" and first["email_sent"] is True
    assert first["result"]["model"].startswith("igait-reference-mlp ")
    assert len(smtp_server.messages) == 1

    # ---- the simulated cohort: stage-4 keypoints, stage 5 through the real gait_cycles asset
    jobs = cohort.write_cohort(env.storage, COHORT)
    env.instance.add_dynamic_partitions("jobs", [j.job_id for j in jobs])
    env.materialize_partitions(CYCLES.asset, [j.job_id for j in jobs])

    # ---- labels (observed: a data version that is the file's hash), then the feature table
    data = cohort.cohort_labels(jobs, COHORT)
    env.storage.write_bytes(research_assets.LABELS_KEY, data)
    env.materialize("clinical_labels")
    obs = env.instance.fetch_observations(AssetKey("clinical_labels"), limit=1).records[0]
    assert obs.asset_observation.data_version == labels.digest(data)
    res = env.materialize("gait_feature_table")
    m = _meta(res, "gait_feature_table")
    assert m["rows"] == len(jobs) + 1 and m["labelled_rows"] == len(jobs) and m["rows_computed"] == len(jobs) + 1
    assert m["label_balance"] == {"ASD": 20, "NO ASD": 20} and m["participants"] == 21
    tab = table.from_parquet(env.storage.read_bytes(table.TABLE_KEY))
    assert "email" not in " ".join(tab.columns) and "family@example.org" not in tab.to_csv()
    assert not [c for c in tab.columns if "score" in c or "classification" in c]  # never the model's output
    assert tab.loc[tab["job_id"] == real, "label"].isna().all()  # the real job: in the table, unlabelled
    again = _meta(env.materialize("gait_feature_table"), "gait_feature_table")
    assert (again["rows_reused"], again["rows_computed"]) == (len(jobs) + 1, 0)  # incremental

    # ---- a candidate: grouped CV, metrics, card; every blocking check passes
    gate = {"min_participants_per_class": 10, "min_auc_lower_bound": 0.3}
    res = env.materialize("candidate_model", config=gate)
    cand = _meta(res, "candidate_model")
    checks = {e.check_name: e for e in res.get_asset_check_evaluations()}
    assert all(c.passed for c in checks.values()), {k: (c.passed, c.description) for k, c in checks.items()}
    version = cand["model_version"]
    card = json.loads(env.storage.read_bytes(f"models/igait-screening/{version}/model_card.json"))
    cv = card["metrics"]["cross_validated"]
    print("simulated cohort, cross-validated:", json.dumps(cv), "network:",
          json.dumps(card["metrics"]["cross_validated_mlp"]))
    assert cv["participants"] == 20 and cv["n"] == 40 and cv["roc_auc_ci95"][0] <= cv["roc_auc"]
    assert set(cv["confusion"]) == {"tp", "fp", "tn", "fn"} and 0 <= cv["brier"] <= 1
    assert card["training"]["rows"] == 40 and len(card["training"]["job_ids_sha256"]) == 64
    assert card["training"]["label_sources"] == [cohort.LABEL_SOURCE]
    assert card["domain"]["age_years"][0] >= 3 and set(card["domain"]["feature_ranges"]) == set(card["feature_names"])
    assert cand["roc"].startswith("![ROC curve](data:image/png;base64,")
    folds = {}
    for job_id, fold in card["folds"].items():  # every participant's jobs in one fold
        folds.setdefault(job_id.rpartition("_")[0], set()).add(fold)
    assert all(len(f) == 1 for f in folds.values()) and len(folds) == 20

    # ---- promotion: the model in use changes; every prediction is stale
    assert env.stale(PREDICTION.asset, real) == StaleStatus.FRESH
    out = model_commands.promote(version, instance=env.instance, defs=env.defs)
    assert out["model"] == f"igait-screening {version}" and out["replaced"].startswith("igait-reference-mlp ")
    in_use = json.loads(env.storage.read_bytes(IN_USE_KEY))
    assert in_use["version"] == version and in_use["sha256"] == cand["sha256"]
    assert env.stale(PREDICTION.asset, real) == StaleStatus.STALE

    # ---- re-score: prediction and the archive again; the document shows the new model; no second e-mail
    done = model_commands.rescore([real], here=True, instance=env.instance, defs=env.defs)
    assert done["failed"] == [] and done["model"] == f"igait-screening {version}"
    pred = json.loads(env.storage.read_bytes(job_key(real, 6, "prediction.json")))
    assert pred["model"]["version"] == version
    assert env.stale(PREDICTION.asset, real) == StaleStatus.FRESH
    env.status_tick()
    env.status_tick()
    doc = env.store.get(real)
    JobDocument.model_validate(doc)
    assert doc["status"] == "completed" and doc["result"]["model"] == f"igait-screening {version}"
    assert doc["email_sent"] is True and len(smtp_server.messages) == 1

    # ---- rollback: the reference model again, recorded as a promotion that replaced the candidate
    back = model_commands.rollback(instance=env.instance, defs=env.defs)
    assert back["model"].startswith("igait-reference-mlp ") and back["replaced"] == f"igait-screening {version}"
    assert env.stale(PREDICTION.asset, real) == StaleStatus.STALE
    assert len(json.loads(env.storage.read_bytes(IN_USE_KEY))["history"]) == 2
