"""Storage handles scoped to what one identity may touch (defence in depth beside the bucket's IAM). No Dagster.

    from igait_pipeline.storage.scope import Scope, ScopedStorage
    st = ScopedStorage(storage_from_uri(), Scope.for_stage(KEYPOINTS, "user1_3", view="front"))
    st.write_bytes("jobs/user1_3/stage_5/cycles.json", b"...")   # ScopeError: stage 4 ... may not write ...

`Scope` pairs an `layout.Access` (what an identity may read and write: derived from the stage table, the same
table the IAM bindings are generated from) with the job it works for (None: any job, for the uploads path).
`ScopedStorage` wraps any `Storage` (local or GCS) and refuses, before the backend is asked, every read, listing,
write, copy or deletion outside the scope with a `ScopeError` that names the identity (stage and step), the job
and the key.

A stage's step runs inside `within(scope)`: every handle `scoped()` hands out meanwhile (the Dagster storage
resource calls it) is scoped to that step, including the model store's.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from igait_pipeline.layout import UPLOADS_ACCESS, Access, Stage, stage_access, validate_job_id
from igait_pipeline.storage.base import ObjectInfo, Storage, StorageError


class ScopeError(StorageError, PermissionError):
    """A storage access outside what the identity may touch."""


@dataclass(frozen=True)
class Scope:
    access: Access
    job_id: str | None  # the job the identity works for; None: any job (the uploads path)
    step: str = ""  # the step's asset key, for messages (`keypoints_front`)

    @classmethod
    def for_stage(cls, stage: Stage, job_id: str, view: str | None = None) -> Scope:
        return cls(stage_access(stage), validate_job_id(job_id), f"{stage.asset}_{view}" if view else stage.asset)

    @classmethod
    def uploads(cls) -> Scope:
        return cls(UPLOADS_ACCESS, None)

    @property
    def who(self) -> str:
        step = f", step {self.step}" if self.step else ""
        job = f"job {self.job_id}" if self.job_id else "any job"
        return f"{self.access.label}{step}, {job}"

    def refuse(self, verb: str, key: str, allowed: tuple[str, ...]) -> ScopeError:
        shown = ", ".join(p.replace("{job}", self.job_id or "{job}") for p in allowed) or "nothing"
        return ScopeError(f"{self.who}: may not {verb} {key!r}; it may {verb.split()[0]} only under {shown}")

    def check_read(self, key: str) -> str:
        if not self.access.can_read(key, self.job_id):
            raise self.refuse("read", key, self.access.readable)
        return key

    def check_write(self, key: str, verb: str = "write") -> str:
        if not self.access.can_write(key, self.job_id):
            raise self.refuse(verb, key, self.access.writes)
        return key

    def check_list(self, prefix: str, match_glob: str | None) -> None:
        if not self.access.can_list(prefix, match_glob, self.job_id):
            what = prefix + (f" (glob {match_glob})" if match_glob else "")
            raise self.refuse("list", what, self.access.readable)


class ScopedStorage(Storage):
    """A `Storage` that passes to `inner` only what `scope` allows (see the module doc)."""

    def __init__(self, inner: Storage, scope: Scope):
        if isinstance(inner, ScopedStorage):
            raise StorageError(f"{inner!r} is already scoped; scope the backend itself")
        self.inner = inner
        self.scope = scope

    def __repr__(self) -> str:
        return f"ScopedStorage({self.inner!r}, {self.scope.who})"

    @property
    def swaps_directories(self) -> bool:
        return self.inner.swaps_directories

    def _creating(self, key: str) -> str:
        self.scope.check_write(key)
        if self.scope.access.create_only and self.inner.exists(key):
            raise ScopeError(f"{self.scope.who}: may not overwrite {key!r}; it may only create new objects")
        return key

    def check_write(self, key: str) -> None:
        self.scope.check_write(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(self.scope.check_read(key))

    def list(self, prefix: str, start_after: str = "", match_glob: str | None = None) -> Iterator[ObjectInfo]:
        self.scope.check_list(prefix, match_glob)
        return self.inner.list(prefix, start_after, match_glob)

    def download(self, key: str, dest: Path) -> Path:
        return self.inner.download(self.scope.check_read(key), dest)

    def read_bytes(self, key: str) -> bytes:
        return self.inner.read_bytes(self.scope.check_read(key))

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(self.scope.check_read(key))

    def url(self, key: str) -> str:
        return self.inner.url(self.scope.check_read(key))

    def upload(self, src: Path, key: str) -> None:
        self.inner.upload(src, self._creating(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        self.inner.write_bytes(self._creating(key), data)

    def move_in(self, src: Path, key: str) -> None:
        self.inner.move_in(src, self._creating(key))

    def copy(self, src_key: str, dst_key: str) -> None:
        self.inner.copy(self.scope.check_read(src_key), self._creating(dst_key))

    def delete(self, key: str) -> None:
        self.scope.check_write(key, "delete")
        if self.scope.access.create_only:
            raise ScopeError(f"{self.scope.who}: may not delete {key!r}; it may only create new objects")
        self.inner.delete(key)

    def replace_prefix(self, prefix: str, files: Mapping[str, Path],
                       transfer: Callable[[Path, Path], object] | None = None) -> dict[str, str]:
        for name in files:
            self.scope.check_write(prefix + name)
        if self.scope.access.create_only:
            raise ScopeError(f"{self.scope.who}: may not replace {prefix!r}; it may only create new objects")
        return self.inner.replace_prefix(prefix, files, *([transfer] if transfer else []))


_CURRENT: ContextVar[Scope | None] = ContextVar("igait_storage_scope", default=None)


@contextmanager
def within(scope: Scope) -> Iterator[Scope]:
    """Every handle `scoped()` gives out in this context (this thread or task) is limited to scope."""
    token = _CURRENT.set(scope)
    try:
        yield scope
    finally:
        _CURRENT.reset(token)


def current() -> Scope | None:
    return _CURRENT.get()


def scoped(storage: Storage, scope: Scope | None = None) -> Storage:
    """storage limited to scope (default: the scope in force, if any; else storage itself)."""
    scope = scope or current()
    if isinstance(storage, ScopedStorage):
        if scope is not None and storage.scope != scope:
            raise ScopeError(f"{storage!r} is scoped to {storage.scope.who}; it cannot be re-scoped to {scope.who}")
        return storage
    return storage if scope is None else ScopedStorage(storage, scope)
