"""helm/values.yaml: valid for Dagster itself, and in agreement with placement.yaml, the Dockerfile and
deploy/dagster.prod.yaml.

No cluster and no `helm` binary here, so the chart's templates are not run. Instead `render_instance()` maps the
values we set to the dagster.yaml the chart's instance ConfigMap renders from them (the camelCase -> snake_case
mapping of the chart's `_run-launcher.tpl`, `_compute-log-manager.tpl`, `_postgresql.tpl` and
`configmap-instance.yaml`), and Dagster's own config schemas judge the result. The chart's values.schema.json
check runs when the chart's files are present (see igait_pipeline_tests/deploy/data/helm/README.md); they are not
committed here.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config_schema, validate_concurrency_config

from igait_pipeline import placement

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "helm" / "values.yaml"
PROD_INSTANCE = ROOT / "deploy" / "dagster.prod.yaml"
DATA = Path(__file__).with_name("data") / "helm"
RELEASE = "igait"  # release name used to render chart-generated names (instance ConfigMap etc.)
PG_PASSWORD_ENV = "DAGSTER_PG_PASSWORD"  # the chart's fixed env var for the Secret's postgresql-password


def load_values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_keys(d: dict[str, Any]) -> dict[str, Any]:
    """camelCase -> snake_case on the keys of Dagster settings (not on Kubernetes objects inside them)."""
    return {_snake(k): (_snake_keys(v) if isinstance(v, dict) else v) for k, v in d.items()}


def k8s_run_launcher_config(values: dict[str, Any], namespace: str = RELEASE) -> dict[str, Any]:
    """The `run_launcher.config` the chart renders for runLauncher.type K8sRunLauncher."""
    c = values["runLauncher"]["config"]["k8sRunLauncher"]
    cfg: dict[str, Any] = {
        "load_incluster_config": c.get("loadInclusterConfig", True),
        "job_namespace": c.get("jobNamespace") or namespace,
        "image_pull_policy": c.get("imagePullPolicy", "Always"),
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": values.get("global", {}).get("dagsterHome", "/opt/dagster/dagster_home"),
        "instance_config_map": f"{RELEASE}-dagster-instance",
        "postgres_password_secret": "dagster-postgresql-secret",
        "env_config_maps": [f"{RELEASE}-dagster-pipeline-env", *c.get("envConfigMaps", [])],
        "env_secrets": list(c.get("envSecrets", [])),
        "env_vars": list(c.get("envVars", [])),
        "volume_mounts": list(c.get("volumeMounts", [])),
        "volumes": list(c.get("volumes", [])),
        "labels": dict(c.get("labels", {})),
        "fail_pod_on_run_failure": c.get("failPodOnRunFailure", False),
        "run_k8s_config": {_snake(k): v for k, v in c.get("runK8sConfig", {}).items()},
    }
    if c.get("kubeconfigFile"):
        cfg["kubeconfig_file"] = c["kubeconfigFile"]
    return cfg


def render_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The parts of dagster.yaml that the chart renders from the values this project sets."""
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["computeLogManager"]["type"] == "GCSComputeLogManager"
    pg = values["postgresql"]
    daemon = values["dagsterDaemon"]
    storage_cfg = {"postgres_db": {
        "username": pg["postgresqlUsername"],
        "password": {"env": PG_PASSWORD_ENV},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams", {}),
        **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
    }}
    inst: dict[str, Any] = {
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher",
                         "config": k8s_run_launcher_config(values)},
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage",
                        "config": storage_cfg},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": storage_cfg},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": storage_cfg},
        "compute_logs": {"module": "dagster_gcp.gcs.compute_log_manager", "class": "GCSComputeLogManager",
                         "config": _snake_keys(values["computeLogManager"]["config"]["gcsComputeLogManager"])},
        "telemetry": {"enabled": values.get("telemetry", {}).get("enabled", True)},
    }
    rc = daemon["runCoordinator"]
    if daemon["enabled"] and rc["enabled"]:
        assert rc["type"] == "QueuedRunCoordinator"
        inst["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                                   "config": _snake_keys(rc["config"].get("queuedRunCoordinator", {}))}
    if daemon["enabled"] and daemon["runMonitoring"]["enabled"]:
        inst["run_monitoring"] = _snake_keys(daemon["runMonitoring"])
    if daemon["enabled"] and daemon["runRetries"]["enabled"]:
        inst["run_retries"] = _snake_keys(daemon["runRetries"])
    if values.get("pythonLogs"):  # configmap-instance.yaml: the handler config verbatim, the rest snake_cased
        logs = dict(values["pythonLogs"])
        handlers = logs.pop("dagsterHandlerConfig", None)
        inst["python_logs"] = {**_snake_keys(logs), **({"dagster_handler_config": handlers} if handlers else {})}
    if values.get("concurrency", {}).get("enabled"):
        conc = values["concurrency"]
        pools = {"default_limit" if k == "defaultLimit" else _snake(k): v for k, v in conc["pools"].items()}
        inst["concurrency"] = {"pools": pools, "runs": _snake_keys(conc.get("runs", {}))}
    return inst


def _class_config_errors(entry: dict[str, Any]) -> list[str]:
    """Validate a {module, class, config} entry against that class's own config schema."""
    import importlib

    module = importlib.import_module(entry["module"])
    cls = getattr(module, entry["class"])
    result = validate_config(cls.config_type(), entry["config"])
    return [e.message for e in result.errors or []]


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return load_values()


@pytest.fixture(scope="module")
def instance_yaml(values) -> dict[str, Any]:
    return render_instance(values)


def test_rendered_instance_is_valid_dagster_config(instance_yaml):
    validate_concurrency_config(instance_yaml)  # raises on conflicts (e.g. run limits in two places)
    result = validate_config(dagster_instance_config_schema(), instance_yaml)
    assert result.success, [e.message for e in result.errors]
    for key in ("run_launcher", "compute_logs", "run_storage", "event_log_storage", "schedule_storage",
                "run_coordinator"):
        assert _class_config_errors(instance_yaml[key]) == [], key


def test_production_settings_present(instance_yaml, values):
    assert instance_yaml["run_launcher"]["class"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False, "Dagster's state is in Cloud SQL, not the chart's postgres"
    assert values["generatePostgresqlPasswordSecret"] is False, "the password Secret is created by the operator"
    assert instance_yaml["compute_logs"]["class"] == "GCSComputeLogManager"
    assert instance_yaml["compute_logs"]["config"]["bucket"]
    mon = instance_yaml["run_monitoring"]
    assert mon["enabled"] is True and mon["start_timeout_seconds"] >= 300, "GPU nodes scale from zero"
    retries = instance_yaml["run_retries"]
    assert retries["enabled"] is True and retries["max_retries"] >= 1
    assert retries["retry_on_asset_or_op_failure"] is False, "retry dead pods, not rejected videos"


def test_gpu_concurrency_pool_limit_matches_placement(instance_yaml):
    pools = instance_yaml["concurrency"]["pools"]
    gpu_pool = placement.load_placement().concurrency_pools[placement.GPU_POOL]
    assert pools["default_limit"] == gpu_pool.limit == placement.pool_limits()[gpu_pool.name]
    assert pools["granularity"] == "op", "the limit must count GPU steps, not whole runs"
    # default_limit caps every pool; it is the GPU cap only while GPU assets are the only pooled ones.
    pooled = {a for a in placement.STAGE_ASSETS if placement.pool_for(a)}
    assert pooled and all(placement.pool_for(a) == gpu_pool.name for a in pooled)


def test_cluster_pods_use_the_placement_cpu_pool(values):
    cpu_selector = placement.load_placement().node_pools["cpu"].node_selector
    run_cfg = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    assert run_cfg["podSpecConfig"]["nodeSelector"] == cpu_selector
    assert values["dagsterWebserver"]["nodeSelector"] == cpu_selector
    assert values["dagsterDaemon"]["nodeSelector"] == cpu_selector
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert deployment["nodeSelector"] == cpu_selector, deployment["name"]
    # A step pod inherits the run pod's selector; a GPU step can only override it if the label key is shared.
    gpu_selector = placement.load_placement().node_pools["gpu"].node_selector
    assert set(run_cfg["podSpecConfig"]["nodeSelector"]) == set(gpu_selector)


def test_code_location_deployments(values):
    """Two code servers, one per code location of workspace.yaml (the per-job pipeline and the cohort research
    assets), the same image and env: only the module differs."""
    ud = values["dagster-user-deployments"]
    assert ud["enabled"] and ud["enableSubchart"]
    by_name = {d["name"]: d for d in ud["deployments"]}
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    modules = sorted(loc["python_module"]["module_name"] for loc in workspace)
    assert sorted(d["codeServerArgs"][1] for d in by_name.values()) == modules
    deployment, research = by_name["igait-pipeline"], by_name["igait-research"]
    assert deployment["codeServerArgs"] == ["-m", "igait_pipeline.definitions"]
    assert research["codeServerArgs"] == ["-m", "igait_pipeline.research_definitions"]
    assert {k: v for k, v in research.items() if k not in ("name", "codeServerArgs")} == \
        {k: v for k, v in deployment.items() if k not in ("name", "codeServerArgs")}
    assert "dagsterApiGrpcArgs" not in deployment
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True, "runs need the code server's env"
    env = deployment["env"]
    assert env["IGAIT_EXECUTOR"] == "k8s"
    assert env["IGAIT_STORAGE_ROOT"].startswith("gs://")
    sec = deployment["podSecurityContext"]
    assert sec["runAsNonRoot"] is True and sec["runAsUser"] != 0
    assert values["serviceAccount"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"), "Workload Identity binding"
    assert values["serviceAccount"]["name"] == values["global"]["serviceAccountName"]


# --- agreement with deploy/dagster.prod.yaml -------------------------------------------------------------------

def _source(v: Any) -> tuple[str, Any]:
    """A StringSource/IntSource as ("env", NAME) or ("value", v)."""
    if isinstance(v, dict) and set(v) == {"env"}:
        return ("env", v["env"])
    return ("value", v)


def _agree(a: Any, b: Any) -> bool:
    """Equal, or both taken from the same env var; a literal on one side and an env var on the other can't be
    compared here (the value is an install-time choice), so that counts as agreement."""
    sa, sb = _source(a), _source(b)
    return sa == sb or sa[0] != sb[0]


SHARED_SETTINGS = [
    # (path in dagster.yaml, must exist in both)
    (("run_launcher", "module"), True),
    (("run_launcher", "class"), True),
    (("compute_logs", "module"), True),
    (("compute_logs", "class"), True),
    (("compute_logs", "config", "bucket"), True),
    (("compute_logs", "config", "prefix"), False),
    (("run_monitoring", "enabled"), True),
    (("run_monitoring", "start_timeout_seconds"), False),
    (("run_monitoring", "poll_interval_seconds"), False),
    (("run_monitoring", "max_resume_run_attempts"), False),
    (("run_retries", "enabled"), True),
    (("run_retries", "max_retries"), False),
    (("run_retries", "retry_on_asset_or_op_failure"), False),
    (("concurrency", "pools", "default_limit"), False),
    (("concurrency", "pools", "granularity"), False),
    (("python_logs", "dagster_handler_config"), True),  # JSON lines and spans (igait_pipeline.observability)
]
_MISSING = object()


def _get(d: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return _MISSING
        d = d[k]
    return d


def _module_root(entry: Any) -> Any:
    return entry.split(".")[0] if isinstance(entry, str) else entry


def _postgres_kind(inst: dict[str, Any]) -> set[str]:
    kinds = set()
    if "postgres" in inst.get("storage", {}):
        kinds.add("postgres")
    for key in ("run_storage", "event_log_storage", "schedule_storage"):
        if "postgres" in str(inst.get(key, {}).get("module", "")):
            kinds.add("postgres")
    return kinds


def _find_key(tree: Any, key: str) -> list:
    """Every value stored under `key` anywhere in a nested dict/list."""
    if isinstance(tree, dict):
        return [v for k, v in tree.items() if k == key] + [x for v in tree.values() for x in _find_key(v, key)]
    if isinstance(tree, list):
        return [x for v in tree for x in _find_key(v, key)]
    return []


def test_values_agree_with_prod_dagster_yaml(instance_yaml):
    if not PROD_INSTANCE.exists():
        pytest.skip("deploy/dagster.prod.yaml not written yet (another part of issue 4)")
    prod = yaml.safe_load(PROD_INSTANCE.read_text())
    assert _postgres_kind(prod) == _postgres_kind(instance_yaml) == {"postgres"}
    pg_text = json.dumps({k: prod.get(k) for k in ("storage", "run_storage", "event_log_storage")})
    assert PG_PASSWORD_ENV in pg_text, f"dagster.prod.yaml must read the password from ${PG_PASSWORD_ENV}"
    schemes = {json.dumps(s) for tree in (prod, instance_yaml) for s in _find_key(tree, "scheme")}
    assert schemes == {'"postgresql+psycopg2"'}, f"both must name the psycopg2 driver: {schemes}"
    disagreements = []
    for path, required in SHARED_SETTINGS:
        ours, theirs = _get(instance_yaml, path), _get(prod, path)
        if ours is _MISSING or theirs is _MISSING:
            if required:
                disagreements.append(f"{'.'.join(path)}: values={ours!r} prod={theirs!r}")
            continue
        if path[-1] == "module":  # "dagster_k8s" vs "dagster_k8s.launcher" name the same class
            ours, theirs = _module_root(ours), _module_root(theirs)
        if not _agree(ours, theirs):
            disagreements.append(f"{'.'.join(path)}: values={ours!r} prod={theirs!r}")
    assert not disagreements, disagreements


# --- the chart's own values schema -----------------------------------------------------------------------------

def chart_dir() -> Path | None:
    """Where the unpacked chart (values.yaml + values.schema.json) is, if anywhere: $IGAIT_DAGSTER_CHART_DIR,
    then igait_pipeline_tests/deploy/data/helm/dagster (git-ignored)."""
    for cand in (os.environ.get("IGAIT_DAGSTER_CHART_DIR"), DATA / "dagster"):
        if cand and (Path(cand) / "values.schema.json").exists():
            return Path(cand)
    return None


def deep_merge(base: Any, override: Any) -> Any:
    """Helm's values coalescing: maps merge key by key, everything else (lists too) is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = deep_merge(base.get(k), v) if k in base else v
        return out
    return override


def _remote_refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if isinstance(node.get("$ref"), str) and "://" in node["$ref"] else set()
        return own.union(*(_remote_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_remote_refs(v) for v in node))
    return set()


def chart_validator(schema: dict[str, Any]):
    """A jsonschema validator for a chart schema. Its Kubernetes object definitions point at
    kubernetesjsonschema.dev; with no network those resolve to the chart's bundled `kubernetes/_definitions.json`
    if present, else to empty (permissive) schemas at the same pointers, so the chart's own structure is still
    checked."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    bundled = None
    cdir = chart_dir()
    if cdir and (cdir / "kubernetes" / "_definitions.json").exists():
        bundled = json.loads((cdir / "kubernetes" / "_definitions.json").read_text())
    stubs: dict[str, dict[str, Any]] = {}
    for ref in _remote_refs(schema):
        url, _, pointer = ref.partition("#")
        node = stubs.setdefault(url, {})
        for part in [p for p in pointer.split("/") if p]:
            node = node.setdefault(part.replace("~1", "/").replace("~0", "~"), {})

    def retrieve(uri: str):
        if bundled is not None and uri.endswith("_definitions.json"):
            return Resource.from_contents(bundled, default_specification=DRAFT7)
        return Resource.from_contents(stubs.get(uri, {}), default_specification=DRAFT7)

    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=Registry(retrieve=retrieve))


def _pinned_chart_version() -> str:
    return (DATA / "VERSION").read_text().split()[0]


def test_chart_version_matches_dagster_pin():
    pins = dict(d.split("==") for d in _pyproject_deps())
    assert _pinned_chart_version() == pins["dagster"], "chart and dagster versions go 1:1"
    assert f"--version {pins['dagster']}" in VALUES.read_text()


def _pyproject_deps() -> list[str]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_values_validate_against_chart_schema(values):
    cdir = chart_dir()
    if cdir is None:
        pytest.skip("chart files absent: see igait_pipeline_tests/deploy/data/helm/README.md")
    chart = yaml.safe_load((cdir / "Chart.yaml").read_text()) if (cdir / "Chart.yaml").exists() else {}
    if chart:
        assert str(chart["version"]) == _pinned_chart_version(), f"chart in {cdir} is {chart['version']}"
    schema = json.loads((cdir / "values.schema.json").read_text())
    defaults = yaml.safe_load((cdir / "values.yaml").read_text())
    merged = deep_merge(defaults, values)
    assert _schema_errors(schema, merged) == []
    sub = cdir / "charts" / "dagster-user-deployments"
    if (sub / "values.schema.json").exists():  # Helm validates each subchart's values with its own schema
        sub_values = deep_merge(yaml.safe_load((sub / "values.yaml").read_text()), merged["dagster-user-deployments"])
        sub_values["global"] = deep_merge(sub_values.get("global", {}), merged.get("global", {}))
        assert _schema_errors(json.loads((sub / "values.schema.json").read_text()), sub_values) == []


def _schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    errors = sorted(chart_validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return ["/".join(map(str, e.absolute_path)) + ": " + e.message for e in errors]


def test_chart_schema_machinery_offline():
    """The helpers above on a small schema of the chart's shape: remote Kubernetes $refs resolve offline,
    Helm-style merging keeps defaults, and a wrong type or a missing required key is reported."""
    k8s_ref = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json#/definitions/io.k8s.api.core.v1.Affinity"
    schema = {
        "$defs": {"Affinity": {"$ref": k8s_ref, "type": "object"},
                  "UserDeployment": {"type": "object", "required": ["name", "port"],
                                     "properties": {"name": {"type": "string"}, "port": {"type": "integer"},
                                                    "affinity": {"$ref": "#/$defs/Affinity"}}}},
        "type": "object", "required": ["deployments", "dagsterHome"],
        "properties": {"deployments": {"type": "array", "items": {"$ref": "#/$defs/UserDeployment"}},
                       "dagsterHome": {"type": "string"}},
    }
    defaults = {"dagsterHome": "/opt/dagster/dagster_home", "deployments": [{"name": "example", "port": 1}]}
    ok = deep_merge(defaults, {"deployments": [{"name": "igait", "port": 3030, "affinity": {}}]})
    assert ok["dagsterHome"] == "/opt/dagster/dagster_home" and ok["deployments"][0]["name"] == "igait"
    assert _schema_errors(schema, ok) == []
    bad = deep_merge(defaults, {"deployments": [{"name": "igait", "port": "3030"}]})
    assert _schema_errors(schema, bad) == ["deployments/0/port: '3030' is not of type 'integer'"]
    assert _schema_errors(schema, {"deployments": []}) == [": 'dagsterHome' is a required property"]
