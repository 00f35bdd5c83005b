"""Kubernetes placement of the iGait stages: resources, node pool and concurrency pool per asset, from configuration.

The numbers and names live in `placement.yaml` next to this module (or in the file $IGAIT_PLACEMENT_FILE names);
this module only validates them and turns them into what Dagster needs. The asset layer calls two functions:

    from igait_pipeline import placement

    @asset(op_tags=placement.op_tags_for("keypoints"), pool=placement.pool_for("keypoints"), ...)

- `op_tags_for(asset_name) -> dict`: op tags for the asset's step. Always `dagster-k8s/config` (container resources
  requests/limits, pod node selector and tolerations, and the pod's service account: the stage's own identity,
  `Identity.name`, when `identity.per_stage`), read by `k8s_job_executor` when it builds the step's
  Kubernetes Job; GPU assets also carry `igait/gpu: "true"` (used by the executor's per-run tag limit and
  handy in the UI). Outside Kubernetes (local multiprocess/in-process executors) the tags are inert.
- `pool_for(asset_name) -> str | None`: the Dagster concurrency pool of the asset (the GPU pool for GPU assets),
  or None. Dagster caps the steps holding a slot in a pool across all runs at the pool's limit; the limit is
  `pool_limits()[name]`, applied by the instance (Helm `concurrency.pools.defaultLimit`, or
  `dagster instance concurrency set <pool> <limit>`).

Both raise `UnknownAssetError` for a name the configuration does not list, so a new asset cannot silently run
unplaced. `load_placement()` returns the validated configuration (pydantic); `pool_limits()` the pool limits.
The file is read when first asked for and cached per path and modification time; set $IGAIT_PLACEMENT_FILE
before the code location is loaded (the assets read their tags at import time).
"""
from __future__ import annotations

import os
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from igait_pipeline.layout import ACCESS, PIPELINE_STAGES, Access, stage_of_asset

PLACEMENT_FILE_ENV = "IGAIT_PLACEMENT_FILE"
DEFAULT_PLACEMENT_FILE = Path(__file__).with_name("placement.yaml")
K8S_CONFIG_TAG = "dagster-k8s/config"
GPU_TAG = "igait/gpu"
GPU_POOL = "gpu"
STAGE_ASSETS = tuple(s.asset for s in PIPELINE_STAGES)  # every asset a run materializes needs a placement

_QUANTITY = re.compile(r"^(?P<num>\d+(\.\d+)?)(?P<unit>m|k|Ki|M|Mi|G|Gi|T|Ti|)$")
_UNITS = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
    "T": Decimal(10**12), "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
}


class PlacementError(ValueError):
    """The placement file is missing or invalid."""


class UnknownAssetError(KeyError):
    """An asset name the placement configuration does not list."""


def quantity(value: str) -> Decimal:
    """A Kubernetes quantity ("500m", "2", "4Gi") as a number of base units (cores or bytes)."""
    m = _QUANTITY.match(str(value))
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {value!r} (e.g. '2', '500m', '4Gi')")
    return Decimal(m["num"]) * _UNITS[m["unit"]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Strict):
    cpu: str
    memory: str

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _quantity(cls, v: Any) -> str:
        v = str(v)
        quantity(v)
        return v


class Toleration(_Strict):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    def to_k8s(self) -> dict[str, str]:
        return self.model_dump(exclude_none=True)


class NodePool(_Strict):
    node_selector: dict[str, str] = Field(min_length=1)
    tolerations: list[Toleration] = []


class ConcurrencyPool(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:/-]+$")
    limit: int = Field(ge=1)


class Gpu(_Strict):
    count: int = Field(ge=1)
    enabled: bool


class AssetPlacement(_Strict):
    node_pool: str = "cpu"
    requests: Resources
    limits: Resources
    gpu: Gpu | None = None
    env: dict[str, str] = {}

    @property
    def uses_gpu(self) -> bool:
        return bool(self.gpu and self.gpu.enabled)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> AssetPlacement:
        for res in ("cpu", "memory"):
            if quantity(getattr(self.requests, res)) > quantity(getattr(self.limits, res)):
                raise ValueError(f"{res} request {getattr(self.requests, res)} exceeds its limit "
                                 f"{getattr(self.limits, res)}")
        return self


class Identity(_Strict):
    """Who each stage's step pod is: with `per_stage`, the Kubernetes service account `{prefix}-{stage}` (the
    stage's asset name in kebab case: `igait-keypoints`), bound by Workload Identity to the Google service account
    of the same name, which the bucket's IAM lets touch only what `layout.ACCESS` grants the stage (see
    `igait deploy iam`). Without it every step runs as the run's service account (the chart's)."""

    per_stage: bool = True
    prefix: str = Field(default="igait", pattern=r"^[a-z][a-z0-9-]{0,9}$")

    def name(self, access: Access) -> str:
        """The service account name (Kubernetes, and the Google account ID) of one identity of `layout.ACCESS`
        (`stage_4` -> `igait-keypoints`, `uploads` -> `igait-uploads`)."""
        part = access.stage.asset if access.stage is not None else access.name
        return f"{self.prefix}-{part.replace('_', '-')}"

    def for_asset(self, asset_name: str) -> str | None:
        """The service account a stage asset's step runs as, or None (the run's)."""
        if not self.per_stage:
            return None
        return self.name(ACCESS[f"stage_{stage_of_asset(asset_name).number}"])


class Placement(_Strict):
    node_pools: dict[str, NodePool]
    gpu_resource: str = "nvidia.com/gpu"
    concurrency_pools: dict[str, ConcurrencyPool]
    assets: dict[str, AssetPlacement]
    identity: Identity = Identity()

    @model_validator(mode="after")
    def _consistent(self) -> Placement:
        keys = {name: sorted(pool.node_selector) for name, pool in self.node_pools.items()}
        if len({tuple(k) for k in keys.values()}) > 1:
            # Step pods inherit the run pod's (CPU pool) selector, deep-merged: a step can replace the value of a
            # label key but not remove a key, so a second key would demand a node in both pools.
            raise ValueError(f"node_pools must select on the same label keys, got {keys}")
        missing = [a for a in STAGE_ASSETS if a not in self.assets]
        if missing:
            raise ValueError(f"assets without placement: {missing}")
        for name, a in self.assets.items():
            if a.node_pool not in self.node_pools:
                raise ValueError(f"{name}: node_pool {a.node_pool!r} is not one of {sorted(self.node_pools)}")
            if a.uses_gpu and (GPU_POOL not in self.node_pools or GPU_POOL not in self.concurrency_pools):
                raise ValueError(f"{name} uses a GPU: node_pools and concurrency_pools need a {GPU_POOL!r} entry")
        return self

    def asset(self, asset_name: str) -> AssetPlacement:
        try:
            return self.assets[asset_name]
        except KeyError:
            raise UnknownAssetError(f"no placement for asset {asset_name!r}; known: {sorted(self.assets)}") from None

    def k8s_config(self, asset_name: str) -> dict[str, Any]:
        """The `dagster-k8s/config` value (UserDefinedDagsterK8sConfig layout, snake_case) for one asset."""
        a = self.asset(asset_name)
        pool = self.node_pools[GPU_POOL if a.uses_gpu else a.node_pool]
        limits: dict[str, Any] = a.limits.model_dump()
        if a.uses_gpu:
            assert a.gpu is not None
            limits[self.gpu_resource] = str(a.gpu.count)
        container: dict[str, Any] = {"resources": {"requests": a.requests.model_dump(), "limits": limits}}
        if a.env:
            container["env"] = [{"name": k, "value": v} for k, v in a.env.items()]
        pod: dict[str, Any] = {"node_selector": dict(pool.node_selector),
                               "tolerations": [t.to_k8s() for t in pool.tolerations]}
        account = self.identity.for_asset(asset_name)
        if account:
            pod["service_account_name"] = account
        return {"container_config": container, "pod_spec_config": pod}

    def pool(self, asset_name: str) -> str | None:
        return self.concurrency_pools[GPU_POOL].name if self.asset(asset_name).uses_gpu else None


def placement_file() -> Path:
    """The configuration in force: $IGAIT_PLACEMENT_FILE if set, else the packaged placement.yaml."""
    return Path(os.environ.get(PLACEMENT_FILE_ENV) or DEFAULT_PLACEMENT_FILE)


def load_placement(path: str | os.PathLike | None = None) -> Placement:
    """Read and validate a placement file (default: `placement_file()`); raises PlacementError if invalid."""
    p = Path(path) if path is not None else placement_file()
    try:
        st = p.stat()
    except OSError as e:
        raise PlacementError(f"placement file {p} (from ${PLACEMENT_FILE_ENV} or the package): {e}") from e
    return _load(str(p.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int, _size: int) -> Placement:
    try:
        data = yaml.safe_load(Path(path).read_text())
        return Placement.model_validate(data)
    except (yaml.YAMLError, ValidationError) as e:
        raise PlacementError(f"invalid placement file {path}: {e}") from e


def op_tags_for(asset_name: str) -> dict[str, Any]:
    """Op tags placing the asset's step: `dagster-k8s/config`, plus `igait/gpu: "true"` for GPU assets."""
    p = load_placement()
    tags: dict[str, Any] = {K8S_CONFIG_TAG: p.k8s_config(asset_name)}
    if p.asset(asset_name).uses_gpu:
        tags[GPU_TAG] = "true"
    return tags


def pool_for(asset_name: str) -> str | None:
    """The Dagster concurrency pool of the asset (the GPU pool for GPU assets), or None."""
    return load_placement().pool(asset_name)


def pool_limits() -> dict[str, int]:
    """Configured limit of each concurrency pool, by Dagster pool name."""
    return {cp.name: cp.limit for cp in load_placement().concurrency_pools.values()}
