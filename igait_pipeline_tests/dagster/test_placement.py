"""Placement of the stages on Kubernetes, checked on the Kubernetes Job objects dagster-k8s itself builds.

No cluster: the K8sRunLauncher (configured as helm/values.yaml renders it) points at a kubeconfig for an
unreachable loopback server, which is only read, never contacted. The step handler is the one `k8s_job_executor`
creates from `executor_from_env()`'s config; the step tags come from the execution plan of assets declared with
`placement.op_tags_for` / `placement.pool_for`; the Job is built by `construct_dagster_k8s_job`, as
`K8sStepHandler.launch_step` does.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes
import pytest
import yaml
from dagster import DagsterRun, Definitions, InitExecutorContext, asset, define_asset_job, instance_for_test
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import create_execution_plan
from dagster_k8s.job import construct_dagster_k8s_job

from igait_pipeline import execution, placement
from igait_pipeline_tests.deploy.test_helm_values import k8s_run_launcher_config, load_values

IMAGE = "europe-docker.pkg.dev/p/igait/igait-pipeline:test"
GPU_ASSETS = {"keypoints"}


def stage_assets() -> list:
    """One asset per stage, declared the way the asset layer does (op tags + pool from placement)."""
    def make(name: str):
        pool = placement.pool_for(name)

        @asset(name=name, op_tags=placement.op_tags_for(name), **({"pool": pool} if pool else {}))
        def _stage() -> None:
            return None

        return _stage

    return [make(n) for n in placement.STAGE_ASSETS]


@pytest.fixture
def kubeconfig(tmp_path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Config
        clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
        users: [{name: none, user: {token: unused}}]
        contexts: [{name: none, context: {cluster: none, user: none, namespace: igait}}]
        current-context: none
        """))
    return str(path)


@pytest.fixture
def k8s_instance(kubeconfig):
    launcher = k8s_run_launcher_config(load_values())
    launcher.update(load_incluster_config=False, kubeconfig_file=kubeconfig)
    with instance_for_test(overrides={"run_launcher": {
            "module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher}}) as instance:
        yield instance


def build_step_jobs(instance, env: dict[str, str] | None = None,
                    asset_defs: list | None = None) -> dict[str, kubernetes.client.V1Job]:
    """The Kubernetes Job of every stage's step (of the given assets; default one stand-in per stage), as the k8s
    executor would submit it."""
    from igait_pipeline.resources import build_resources

    job_def = Definitions(assets=asset_defs or stage_assets(), jobs=[define_asset_job("igait_job")],
                          resources=build_resources() if asset_defs else None).resolve_job_def("igait_job")
    plan = create_execution_plan(job_def)

    executor_def = execution.executor_from_env({"IGAIT_EXECUTOR": "k8s", **(env or {})})
    resolved = executor_def.config_schema.resolve_config({})
    assert resolved.success, resolved.errors
    executor = executor_def.executor_creation_fn(InitExecutorContext(
        job=InMemoryJob(job_def), executor_def=executor_def, executor_config=resolved.value["config"],
        instance=instance))
    handler = executor._step_handler  # the K8sStepHandler k8s_job_executor builds
    assert type(handler).__name__ == "K8sStepHandler"

    run = DagsterRun(job_name="igait_job", run_id="5f1e2c3a-0000-4000-8000-000000000001")
    jobs = {}
    for step in plan.get_all_steps_in_topo_order():
        ctx = SimpleNamespace(
            execute_step_args=SimpleNamespace(step_keys_to_execute=[step.key], run_id=run.run_id, known_state=None),
            dagster_run=run, instance=instance, step_tags={step.key: step.tags},
            get_step_context=lambda key, _op=step.op_name: SimpleNamespace(step=SimpleNamespace(op_name=_op)),
        )
        container_context = handler._get_container_context(ctx)
        job_config = container_context.get_k8s_job_config(None, instance.run_launcher).with_image(IMAGE)
        name = handler._get_k8s_step_job_name(ctx)
        jobs[step.key] = construct_dagster_k8s_job(
            job_config=job_config, args=["dagster", "api", "execute_step"], job_name=name, pod_name=name,
            component="step_worker", user_defined_k8s_config=container_context.run_k8s_config,
            labels={"dagster/job": run.job_name, "dagster/op": step.key, "dagster/run-id": run.run_id},
        )
    return jobs


def _pod(job: kubernetes.client.V1Job):
    return job.spec.template.spec


def _resources(job) -> tuple[dict[str, str], dict[str, str]]:
    res = _pod(job).containers[0].resources
    return dict(res.requests or {}), dict(res.limits or {})


def test_step_jobs_carry_placement(k8s_instance):
    p = placement.load_placement()
    jobs = build_step_jobs(k8s_instance)
    assert set(jobs) == set(placement.STAGE_ASSETS)
    gpu_pool, cpu_pool = p.node_pools["gpu"], p.node_pools["cpu"]
    for name, job in jobs.items():
        pod = _pod(job)
        requests, limits = _resources(job)
        plan = p.assets[name]
        assert requests["cpu"] == plan.requests.cpu and requests["memory"] == plan.requests.memory, name
        assert limits["cpu"] == plan.limits.cpu and limits["memory"] == plan.limits.memory, name
        tolerations = [(t.key, t.operator, t.effect) for t in (pod.tolerations or [])]
        if name in GPU_ASSETS:
            assert limits["nvidia.com/gpu"] == "1"
            # exactly the GPU pool's selector: the run pod's CPU-pool selector is replaced, not added to
            assert pod.node_selector == gpu_pool.node_selector == {"cloud.google.com/gke-nodepool": "igait-gpu"}
            assert ("nvidia.com/gpu", "Exists", "NoSchedule") in tolerations
        else:
            assert "nvidia.com/gpu" not in limits and "nvidia.com/gpu" not in requests, name
            assert pod.node_selector == cpu_pool.node_selector, name
            assert not any(key == "nvidia.com/gpu" for key, _, _ in tolerations), name
    # The requests/limits from the service plan, spelled out once.
    assert _resources(jobs["converted_video"]) == ({"cpu": "2", "memory": "2Gi"}, {"cpu": "4", "memory": "4Gi"})
    assert _resources(jobs["validation_report"]) == ({"cpu": "2", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"})
    assert _resources(jobs["keypoints"]) == ({"cpu": "4", "memory": "8Gi"},
                                             {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"})
    assert _resources(jobs["gait_cycles"]) == ({"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "1Gi"})
    assert _resources(jobs["prediction"]) == ({"cpu": "2", "memory": "4Gi"}, {"cpu": "4", "memory": "4Gi"})
    assert _resources(jobs["results_archive"]) == ({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})


def test_every_step_of_the_real_assets_is_placed_both_views_of_pose_on_the_gpu_pool(k8s_instance):
    """The real asset layer: one step per view of stages 1, 3 and 4, each placed as its stage (keypoints_front and
    keypoints_side both on the GPU pool, with a GPU and a slot in the GPU concurrency pool)."""
    from igait_pipeline import assets
    from igait_pipeline.layout import PIPELINE_STAGES

    jobs = build_step_jobs(k8s_instance, asset_defs=[assets.upload, *assets.STAGE_ASSETS])
    expected = {key: s.asset for s in PIPELINE_STAGES for key in s.asset_keys}  # one-part keys: step key = key
    assert set(jobs) == set(expected) and {"keypoints_front", "keypoints_side"} <= set(jobs)
    gpu_selector = placement.load_placement().node_pools["gpu"].node_selector
    for step, stage_asset in expected.items():
        requests, limits = _resources(jobs[step])
        plan = placement.load_placement().assets[stage_asset]
        assert (requests["cpu"], limits["memory"]) == (plan.requests.cpu, plan.limits.memory), step
        on_gpu = _pod(jobs[step]).node_selector == gpu_selector
        assert on_gpu == (stage_asset in GPU_ASSETS) == (limits.get("nvidia.com/gpu") == "1"), step
    pools = {a.key.to_user_string(): a.op.pool for a in assets.STAGE_ASSETS}
    assert pools["keypoints_front"] == pools["keypoints_side"] == "igait-gpu"
    assert {k for k, v in pools.items() if v} == {"keypoints_front", "keypoints_side"}


def test_step_jobs_are_complete_manifests(k8s_instance):
    job = build_step_jobs(k8s_instance)["keypoints"]
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    assert manifest["kind"] == "Job" and manifest["apiVersion"] == "batch/v1"
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert manifest["spec"]["ttlSecondsAfterFinished"] == execution.STEP_JOB_TTL_SECONDS  # executor default
    # Workload Identity: the pose stage's own account (igait_pipeline_tests/deploy/test_iam.py checks every stage)
    assert manifest["spec"]["template"]["spec"]["serviceAccountName"] == "igait-keypoints"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_concurrency_pool_only_on_gpu_assets():
    job_def = Definitions(assets=stage_assets(), jobs=[define_asset_job("igait_job")]).resolve_job_def("igait_job")
    pools = {node.name: node.definition.pool for node in job_def.graph.nodes}
    assert pools == {n: ("igait-gpu" if n in GPU_ASSETS else None) for n in placement.STAGE_ASSETS}
    assert placement.pool_limits() == {"igait-gpu": 2}
    assert placement.op_tags_for("keypoints")[placement.GPU_TAG] == "true"
    assert placement.GPU_TAG not in placement.op_tags_for("prediction")


def test_executor_caps_gpu_steps_per_run_at_the_pool_limit():
    cfg = execution.k8s_executor_config({})
    assert cfg["tag_concurrency_limits"] == [{"key": "igait/gpu", "value": "true", "limit": 2}]
    assert cfg["max_concurrent"] == execution.DEFAULT_K8S_CONCURRENCY
    assert execution.k8s_executor_config({"IGAIT_MAX_CONCURRENT": "7", "IGAIT_K8S_NAMESPACE": "jobs"}) == {
        **cfg, "max_concurrent": 7, "job_namespace": "jobs"}


# --- configuration, not code -----------------------------------------------------------------------------------

def _override(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(placement.DEFAULT_PLACEMENT_FILE.read_text())
    edit(data)
    path = tmp_path / "placement.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_override_file_changes_pools_without_code_change(tmp_path, monkeypatch, k8s_instance):
    def edit(d: dict[str, Any]) -> None:
        d["node_pools"]["gpu"]["node_selector"] = {"cloud.google.com/gke-nodepool": "a100-pool"}
        d["node_pools"]["gpu"]["tolerations"].append({"key": "dedicated", "operator": "Equal", "value": "gait",
                                                      "effect": "NoSchedule"})
        d["concurrency_pools"]["gpu"] = {"name": "gait-gpus", "limit": 5}
        d["assets"]["prediction"]["gpu"]["enabled"] = True
        d["assets"]["keypoints"]["env"] = {"IGAIT_POSE_DEVICE": "gpu"}

    monkeypatch.setenv(placement.PLACEMENT_FILE_ENV, str(_override(tmp_path, edit)))
    assert placement.pool_for("keypoints") == placement.pool_for("prediction") == "gait-gpus"
    assert placement.pool_for("converted_video") is None
    assert placement.pool_limits() == {"gait-gpus": 5}
    assert execution.k8s_executor_config({})["tag_concurrency_limits"][0]["limit"] == 5

    jobs = build_step_jobs(k8s_instance)
    for name in ("keypoints", "prediction"):
        pod = _pod(jobs[name])
        assert pod.node_selector == {"cloud.google.com/gke-nodepool": "a100-pool"}
        assert ("dedicated", "gait", "NoSchedule") in [(t.key, t.value, t.effect) for t in pod.tolerations]
        assert _resources(jobs[name])[1]["nvidia.com/gpu"] == "1"
    env = {e.name: e.value for e in _pod(jobs["keypoints"]).containers[0].env}
    assert env["IGAIT_POSE_DEVICE"] == "gpu"
    assert _pod(jobs["gait_cycles"]).node_selector == {"cloud.google.com/gke-nodepool": "igait-cpu"}

    monkeypatch.delenv(placement.PLACEMENT_FILE_ENV)
    assert placement.pool_for("keypoints") == "igait-gpu" and placement.pool_for("prediction") is None


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["node_pools"]["gpu"].update(node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"}),
     "same label keys"),
    (lambda d: d["assets"].pop("gait_cycles"), "assets without placement: ['gait_cycles']"),
    (lambda d: d["assets"]["results_archive"].update(node_pool="gpu-spot"), "node_pool 'gpu-spot'"),
    (lambda d: d["assets"]["converted_video"]["requests"].update(cpu="8"), "cpu request 8 exceeds its limit 4"),
    (lambda d: d["assets"]["keypoints"]["limits"].update(memory="8 GB"), "not a Kubernetes quantity"),
    (lambda d: d["concurrency_pools"]["gpu"].update(limit=0), "greater than or equal to 1"),
    (lambda d: d["assets"]["keypoints"].update(gpus=1), "Extra inputs are not permitted"),
    (lambda d: d["node_pools"]["gpu"]["tolerations"][0].update(effect="NoScheduel"), "NoSchedule"),
])
def test_invalid_placement_is_rejected_at_load(tmp_path, edit, message):
    with pytest.raises(placement.PlacementError, match=message.replace("(", r"\(").replace("[", r"\[")):
        placement.load_placement(_override(tmp_path, edit))


def test_unknown_asset_and_missing_file(monkeypatch, tmp_path):
    with pytest.raises(placement.UnknownAssetError, match="keypoint"):
        placement.op_tags_for("keypoint")
    monkeypatch.setenv(placement.PLACEMENT_FILE_ENV, str(tmp_path / "nowhere.yaml"))
    with pytest.raises(placement.PlacementError, match="nowhere.yaml"):
        placement.pool_for("keypoints")


def test_quantities():
    assert placement.quantity("500m") == placement.quantity("0.5")
    assert placement.quantity("1Gi") == 1024 ** 3 and placement.quantity("1G") == 10 ** 9
    with pytest.raises(ValueError):
        placement.quantity("1gb")


# --- executor choice -------------------------------------------------------------------------------------------

def test_executor_from_env():
    assert execution.executor_from_env({}).name == "igait_multiprocess"
    local = execution.executor_from_env({}).config_schema.resolve_config({})
    assert local.value["config"]["max_concurrent"] == 2  # the 2-core machines
    assert execution.executor_from_env({"IGAIT_EXECUTOR": "in_process"}).name == "in_process"
    assert execution.executor_from_env({"IGAIT_EXECUTOR": "k8s"}).name == "igait_k8s"
    with pytest.raises(ValueError, match="celery"):
        execution.executor_from_env({"IGAIT_EXECUTOR": "celery"})
    with pytest.raises(ValueError, match="positive integer"):
        execution.executor_from_env({"IGAIT_MAX_CONCURRENT": "0"})
