"""Which Dagster executor runs a run's steps, chosen by environment so one code location serves laptop and GKE.

`definitions.py` passes `executor=executor_from_env()` to `Definitions`; nothing else needs to know.

    IGAIT_EXECUTOR=multiprocess  (default) each step in its own process on the run's machine, at most
                                 $IGAIT_MAX_CONCURRENT (default 2: this project's machines have 2 cores) at once
                                 (the two views of a per-view stage are two steps: they run side by side). Step
                                 processes are forked from a forkserver that has imported the code location,
                                 MediaPipe, torch and the instance's storages once (`PRELOAD_MODULES`), so a step
                                 starts in a fraction of a second instead of paying the ~3 s of imports a fresh
                                 interpreter does.
    IGAIT_EXECUTOR=in_process    every step in the run process, one after another (debugging, tests).
    IGAIT_EXECUTOR=k8s           `k8s_job_executor`: each step in its own Kubernetes Job/pod, placed by the
                                 `dagster-k8s/config` op tags from igait_pipeline.placement (GPU pool for
                                 keypoints). Needs the instance's K8sRunLauncher (Helm chart), whose image,
                                 namespace, env secrets and runK8sConfig the step pods inherit.
                                 $IGAIT_MAX_CONCURRENT (default 4) caps pods per run; $IGAIT_K8S_NAMESPACE
                                 overrides the run launcher's namespace for step jobs.

The k8s executor also carries defaults for every step pod (`step_k8s_config`): a modest resource request for a
step without placement, and a TTL so finished step Jobs are garbage-collected. A step's own tags are merged
over these (dagster-k8s deep merge), so the placement file always wins. Within one run at most
`pool limit` GPU steps run at once (tag `igait/gpu`); across runs the GPU concurrency pool does the capping.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from igait_pipeline import placement

EXECUTOR_ENV = "IGAIT_EXECUTOR"
MAX_CONCURRENT_ENV = "IGAIT_MAX_CONCURRENT"
K8S_NAMESPACE_ENV = "IGAIT_K8S_NAMESPACE"
DEFAULT_LOCAL_CONCURRENCY = 2
DEFAULT_K8S_CONCURRENCY = 4
STEP_JOB_TTL_SECONDS = 24 * 3600
EXECUTORS = ("multiprocess", "in_process", "k8s")
# What every step process needs besides the code location: the instance's storage classes. A step builds the
# Dagster instance from its ref; the first build in a process imports about 500 modules (SQLAlchemy, alembic, the
# storages, fsspec) and took 0.5 s of every step's start (0.08 s once they are loaded). Both the SQLite (embedded)
# and the PostgreSQL (production) storages are listed; the forkserver skips a module that does not import.
INSTANCE_MODULES = [
    "dagster._core.instance.factory",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.storage.migration.utils",
    "upath",
    "dagster_postgres",
]
# matplotlib's figure: stage 2 (the walk plot) and stage 5 (the cycle plots) draw a figure each; importing it cost
# each of those steps about 0.4 s.
# scipy's submodules are imported on first use by the stages (the run's own process, which only plans and
# coordinates the steps, never pays their second); the step processes have them ready.
PRELOAD_MODULES = ["igait_pipeline.definitions", "mediapipe.python.solutions.pose", "torch", "matplotlib.figure",
                   "scipy.signal", "scipy.stats", "scipy.optimize", *INSTANCE_MODULES]


def _max_concurrent(env: Mapping[str, str], default: int) -> int:
    raw = env.get(MAX_CONCURRENT_ENV, "").strip()
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"${MAX_CONCURRENT_ENV} must be a positive integer, got {raw!r}") from None
    if n < 1:
        raise ValueError(f"${MAX_CONCURRENT_ENV} must be a positive integer, got {raw!r}")
    return n


def k8s_executor_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `k8s_job_executor` config used when IGAIT_EXECUTOR=k8s (exposed for tests and for the docs)."""
    env = os.environ if env is None else env
    gpu_pool = placement.load_placement().concurrency_pools[placement.GPU_POOL]
    config: dict[str, Any] = {
        "max_concurrent": _max_concurrent(env, DEFAULT_K8S_CONCURRENCY),
        "tag_concurrency_limits": [{"key": placement.GPU_TAG, "value": "true", "limit": gpu_pool.limit}],
        "step_k8s_config": {
            "container_config": {"resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}},
            "job_spec_config": {"ttl_seconds_after_finished": STEP_JOB_TTL_SECONDS},
        },
    }
    namespace = env.get(K8S_NAMESPACE_ENV, "").strip()
    if namespace:
        config["job_namespace"] = namespace
    return config


def executor_from_env(env: Mapping[str, str] | None = None) -> ExecutorDefinition:
    """The executor named by $IGAIT_EXECUTOR (multiprocess by default); raises ValueError for an unknown name."""
    env = os.environ if env is None else env
    kind = (env.get(EXECUTOR_ENV) or "multiprocess").strip().lower()
    if kind == "multiprocess":
        return multiprocess_executor.configured(
            {"max_concurrent": _max_concurrent(env, DEFAULT_LOCAL_CONCURRENCY),
             "start_method": {"forkserver": {"preload_modules": PRELOAD_MODULES}}}, name="igait_multiprocess")
    if kind == "in_process":
        return in_process_executor
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor  # imported only when used: keeps local start-up light

        return k8s_job_executor.configured(k8s_executor_config(env), name="igait_k8s")
    raise ValueError(f"${EXECUTOR_ENV}={kind!r}: expected one of {', '.join(EXECUTORS)}")
