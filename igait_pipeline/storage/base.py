"""The storage interface: a flat key space of immutable objects with atomic writes. No Dagster import here.

`Storage` is the small interface every backend implements (`igait_pipeline.storage.local.LocalStorage`, the embedded
default; `igait_pipeline.storage.gcs.GCSStorage`, production). A reader (or a crash) never sees half an object at
a final key.
"""
from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    updated: float  # seconds since the epoch


class StorageError(RuntimeError):
    pass


class TransientStorageError(StorageError):
    """The store did not answer (overloaded, throttling, connection lost) even after the client's own retries: the
    same request may well succeed later. A step that meets it is retried by Dagster (igait_pipeline.resources.
    io_manager.retry_transient); any other StorageError is a real problem and fails the step for good."""


class Storage(ABC):
    """A flat key space of immutable objects with atomic writes."""

    # Can `replace_prefix` swap a whole directory of files in at once (local disk)? Otherwise a stage is committed
    # object by object from a staging prefix (igait_pipeline.storage.stage_files).
    swaps_directories: bool = False

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str, start_after: str = "", match_glob: str | None = None) -> Iterator[ObjectInfo]:
        """Objects whose key starts with prefix, in key order, after `start_after` if given.

        match_glob (e.g. `jobs/*/stage_0/metadata.json`, `*` never crossing a `/`) keeps only the keys it matches;
        backends filter on the server side where they can (GCS `matchGlob`), so a scan for one file name does
        not enumerate every object.
        """

    @abstractmethod
    def download(self, key: str, dest: Path) -> Path:
        """Stream the object to a local file (written atomically) and return its path."""

    @abstractmethod
    def upload(self, src: Path, key: str) -> None:
        """Stream a local file to key; the object appears whole or not at all."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def url(self, key: str) -> str:
        """Where a person can fetch the object (a path locally, a gs:// or signed URL on GCS)."""

    def copy(self, src_key: str, dst_key: str) -> None:
        """Copy an object to another key (atomically at the destination). Backends override this with a
        server-side copy."""
        with tempfile.TemporaryDirectory() as tmp:
            self.upload(self.download(src_key, Path(tmp) / "obj"), dst_key)

    def check_write(self, key: str) -> None:
        """Raise (a ScopeError) if this handle may not write key; a backend itself may write any clean key."""
        check_key(key)

    def move_in(self, src: Path, key: str) -> None:
        """Like upload, but the local file src may be consumed (moved rather than copied where that is cheaper)."""
        self.upload(src, key)

    def replace_prefix(self, prefix: str, files, transfer=None) -> dict[str, str]:
        """Make a directory prefix hold exactly `files` at once; only backends with `swaps_directories`."""
        raise StorageError(f"{type(self).__name__} cannot swap a directory of files in at once")

    def local_path(self, key: str) -> Path | None:
        """A path to read the object in place, if the backend keeps objects on the local disk."""
        return None

    def read_bytes(self, key: str) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            return self.download(key, Path(tmp) / "obj").read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "obj"
            p.write_bytes(data)
            self.upload(p, key)


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"storage key {key!r} is not a clean relative key")
    return key

