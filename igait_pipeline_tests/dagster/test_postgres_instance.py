"""deploy/dagster.prod.yaml on a real PostgreSQL server, and its Kubernetes run launcher built without a cluster.

The instance test loads the production file as it is, swapping only what needs a cluster: the K8sRunLauncher
becomes Dagster's DefaultRunLauncher and the GCS compute log manager a local one. PostgreSQL is reached through
the same DAGSTER_PG_* variables production sets (the `postgres_db` fixture points them at a fresh database), job
data lives in GCS (the emulator) as in production, and a real stage (`converted_video`, ffmpeg) is materialized
for one job partition: the IO manager downloads stage_0 from the bucket and uploads stage_1 back.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterRun, DagsterRunStatus, instance_for_test, materialize
from dagster._config import process_config, validate_config
from dagster._core.instance.config import dagster_instance_config_schema, validate_concurrency_config

from igait_pipeline import assets
from igait_pipeline.layout import CONVERTED, job_key
from igait_pipeline.resources.io_manager import StageFilesIOManager, StorageResource
from igait_pipeline.stages import media
from igait_pipeline.storage import storage_from_uri
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, put_job

PROD = Path(__file__).resolve().parents[2] / "deploy" / "dagster.prod.yaml"

# What the daemon's environment holds in production (besides DAGSTER_PG_*, set by the postgres_db fixture).
K8S_ENV = {
    "DAGSTER_K8S_JOB_NAMESPACE": "igait",
    "DAGSTER_K8S_SERVICE_ACCOUNT": "igait-dagster",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "igait-dagster-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
    "DAGSTER_HOME": "/opt/dagster/dagster_home",
    "DAGSTER_COMPUTE_LOG_BUCKET": "igait-data",
}
PG_ENV_EXAMPLE = {"DAGSTER_PG_USERNAME": "dagster", "DAGSTER_PG_PASSWORD": "secret", "DAGSTER_PG_HOST": "10.0.0.5",
                  "DAGSTER_PG_DB": "dagster", "DAGSTER_PG_PORT": "5432"}


def load_prod() -> dict:
    return yaml.safe_load(PROD.read_text())


def _class(entry: dict):
    import importlib

    return getattr(importlib.import_module(entry["module"]), entry["class"])


def test_prod_yaml_is_valid_for_dagster_and_each_class(monkeypatch):
    for k, v in {**K8S_ENV, **PG_ENV_EXAMPLE}.items():
        monkeypatch.setenv(k, v)
    prod = load_prod()
    validate_concurrency_config(prod)
    result = validate_config(dagster_instance_config_schema(), prod)
    assert result.success, [e.message for e in result.errors]
    for section in ("run_storage", "event_log_storage", "schedule_storage", "run_launcher", "run_coordinator",
                    "compute_logs"):
        processed = process_config(_class(prod[section]).config_type(), prod[section]["config"])
        assert processed.success, (section, [e.message for e in processed.errors])
    # Credentials come from the environment, nowhere else.
    pg = process_config(_class(prod["run_storage"]).config_type(), prod["run_storage"]["config"]).value
    assert pg["postgres_db"] == {"username": "dagster", "password": "secret", "hostname": "10.0.0.5",
                                 "db_name": "dagster", "port": 5432, "params": {},
                                 "scheme": "postgresql+psycopg2"}
    assert prod["event_log_storage"]["config"] == prod["schedule_storage"]["config"] == prod["run_storage"]["config"]
    assert {k: v for k, v in prod["run_storage"]["config"]["postgres_db"].items()} == {
        "username": {"env": "DAGSTER_PG_USERNAME"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": {"env": "DAGSTER_PG_HOST"}, "db_name": {"env": "DAGSTER_PG_DB"}, "port": {"env": "DAGSTER_PG_PORT"},
        "scheme": "postgresql+psycopg2"}  # SQLAlchemy 2.1 would pick psycopg 3 (not installed) for plain postgresql://
    # Retries only for runs whose worker died, and the monitoring that detects them.
    assert prod["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}
    assert prod["run_monitoring"]["enabled"] is True and prod["run_monitoring"]["start_timeout_seconds"] >= 300
    # A missing variable is an error, not a silent default.
    monkeypatch.delenv("DAGSTER_PG_HOST")
    missing = process_config(_class(prod["run_storage"]).config_type(), prod["run_storage"]["config"])
    assert not missing.success and "DAGSTER_PG_HOST" in str([e.message for e in missing.errors])


def instance_overrides(prod: dict, compute_log_dir: Path) -> dict:
    """The production config with the in-process run launcher and local compute logs; nothing else changed."""
    cfg = copy.deepcopy(prod)
    cfg["run_launcher"] = {"module": "dagster._core.launcher", "class": "DefaultRunLauncher"}
    cfg["compute_logs"] = {"module": "dagster._core.storage.local_compute_log_manager",
                           "class": "LocalComputeLogManager", "config": {"base_dir": str(compute_log_dir)}}
    return cfg


@pytest.mark.timeout(120)
def test_materialize_a_partition_on_the_postgres_instance(postgres_db, gcs_root, short_clip, tmp_path,
                                                          monkeypatch):
    for k, v in K8S_ENV.items():
        monkeypatch.setenv(k, v)
    prod = load_prod()
    job_id = "pgtest_1"
    storage = storage_from_uri(gcs_root)
    put_job(storage, job_id, short_clip, short_clip, GOOD_METADATA)
    cfg = instance_overrides(prod, tmp_path / "compute_logs")
    resource = StorageResource(root=gcs_root)
    resources = {"io_manager": StageFilesIOManager(storage=resource), "storage": resource}

    with instance_for_test(overrides=cfg) as instance:
        from dagster._core.run_coordinator import QueuedRunCoordinator
        from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_monitoring_enabled and instance.run_monitoring_start_timeout_seconds == 600
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        runs_cfg = instance.get_concurrency_config().run_queue_config
        assert runs_cfg.max_concurrent_runs == 20
        assert runs_cfg.tag_concurrency_limits[0]["key"] == "igait/job_id"

        instance.add_dynamic_partitions("jobs", [job_id])
        result = materialize([assets.upload, *assets.converted_video], partition_key=job_id, instance=instance,
                             resources=resources)
        assert result.success
        run_id = result.run_id

    # The stage's files are in the bucket (the inputs came down from it into the cache)...
    stage1 = [job_key(job_id, 1, "front.mp4"), job_key(job_id, 1, "side.mp4")]
    assert [o.key for o in storage.list(f"jobs/{job_id}/stage_1/") if "/." not in o.key] == stage1
    # each view committed with its manifest (storage.stage_files)
    assert {o.key.split("/")[3] for o in storage.list(f"jobs/{job_id}/stage_1/.manifest.")} == {
        ".manifest.front.json", ".manifest.side.json"}
    cached = tmp_path / "cache" / job_id / "jobs" / job_id / "stage_0" / "front.mp4"
    assert cached.read_bytes() == short_clip.read_bytes()
    info = media.probe(storage.download(stage1[1], tmp_path / "side.mp4"))
    assert (info.width, info.height, info.codec) == (1920, 1080, "h264") and round(info.fps) == 60
    # ...and everything Dagster recorded is in PostgreSQL: a new instance loaded from the same file (new
    # connections) sees the run, its partition and its materialization.
    with instance_for_test(overrides=cfg) as again:
        run = again.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
        assert again.get_dynamic_partitions("jobs") == [job_id]
        for view, key in zip(("front", "side"), stage1):  # one asset per view, each with its own file
            event = again.get_latest_materialization_event(AssetKey(CONVERTED.asset_key(view)))
            assert event is not None and event.asset_materialization.partition == job_id
            assert event.asset_materialization.metadata["storage_keys"].value == [key]
    conn = postgres_db.connect()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchall() == [("SUCCESS",)]
        cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
                    (run_id, "ASSET_MATERIALIZATION"))
        assert cur.fetchone()[0] == 2  # converted_video_front and _side
    conn.close()


def _env_names_read(node) -> set[str]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(_env_names_read(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_names_read(v) for v in node))
    return set()


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: not-used}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def test_k8s_run_launcher_section_builds_the_run_worker_job(monkeypatch, tmp_path):
    """The run_launcher section through dagster_k8s's own config schema and classes: the launcher is
    constructed (with a kubeconfig that names no reachable cluster instead of the in-cluster config; nothing
    is contacted) and builds the Kubernetes Job of a run worker the way `launch_run` does."""
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.job import construct_dagster_k8s_job, get_job_name_from_run_id

    for k, v in {**K8S_ENV, **PG_ENV_EXAMPLE}.items():
        monkeypatch.setenv(k, v)
    section = load_prod()["run_launcher"]
    assert (section["module"], section["class"]) == ("dagster_k8s", "K8sRunLauncher")
    processed = process_config(K8sRunLauncher.config_type(), section["config"])
    assert processed.success, [e.message for e in processed.errors]
    config = dict(processed.value)
    assert config["load_incluster_config"] is True and config["job_namespace"] == "igait"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    launcher = K8sRunLauncher.from_config_value(None, {**config, "load_incluster_config": False,
                                                       "kubeconfig_file": str(kubeconfig)})

    run = DagsterRun(job_name="igait_job", tags={"igait/job_id": "user1_1"})
    context = launcher.get_container_context_for_run(run)
    assert context.namespace == "igait"
    image = "europe-west4-docker.pkg.dev/p/igait/igait-pipeline:abc123"
    job_name = get_job_name_from_run_id(run.run_id)
    job = construct_dagster_k8s_job(job_config=context.get_k8s_job_config(job_image=image, run_launcher=launcher),
                                    args=["dagster", "api", "execute_run", "{}"], job_name=job_name,
                                    pod_name=job_name, component="run_worker",
                                    user_defined_k8s_config=context.run_k8s_config,
                                    labels={"dagster/job": run.job_name, "dagster/run-id": run.run_id})
    pod = job.spec.template.spec
    (container,) = pod.containers
    env = {e.name: e for e in container.env}
    # The run worker rebuilds the instance from this config (its `env:` references unresolved): every variable
    # the file reads must reach the pod, the password through the Secret only.
    assert env["DAGSTER_HOME"].value == "/opt/dagster/dagster_home"
    for name, value in {**PG_ENV_EXAMPLE, **K8S_ENV}.items():
        if name not in ("DAGSTER_PG_PASSWORD", "DAGSTER_HOME"):
            assert env[name].value == value, name
    assert _env_names_read(load_prod()) == set(PG_ENV_EXAMPLE) | set(K8S_ENV)
    secret = env["DAGSTER_PG_PASSWORD"].value_from.secret_key_ref
    assert (secret.name, secret.key) == ("dagster-postgresql-secret", "postgresql-password")
    assert env["DAGSTER_PG_PASSWORD"].value is None  # never the password itself
    # Placement and identity.
    assert container.image == image and container.image_pull_policy == "IfNotPresent"
    assert pod.service_account_name == "igait-dagster"
    assert pod.node_selector == {"cloud.google.com/gke-nodepool": "igait-cpu"}
    assert container.resources.requests == {"cpu": "250m", "memory": "512Mi"}
    assert job.spec.ttl_seconds_after_finished == 86400
    assert job.metadata.labels["app.kubernetes.io/part-of"] == "igait"
