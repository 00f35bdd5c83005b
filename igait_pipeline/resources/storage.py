"""Object storage with the iGait layout: `jobs/{job_id}/stage_N/<file>` and `models/{name}/{version}/<file>`.

`Storage` is the small interface every backend implements; `LocalStorage` keeps objects as files under a root
directory (the embedded default), `igait_pipeline.resources.gcs.GCSStorage` keeps them in a bucket. Every write is
atomic: a reader (or a crash) never sees half an object at a final key. No Dagster import here.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from igait_pipeline.partitions import validate_job_id

STORAGE_ROOT_ENV = "IGAIT_STORAGE_ROOT"
DEFAULT_ROOT = "data/storage"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    updated: float  # seconds since the epoch


class StorageError(RuntimeError):
    pass


class Storage(ABC):
    """A flat key space of immutable objects with atomic writes."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str, start_after: str = "", match_glob: Optional[str] = None) -> Iterator[ObjectInfo]:
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

    def local_path(self, key: str) -> Optional[Path]:
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


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"storage key {key!r} is not a clean relative key")
    return key


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str, start_after: str = "", match_glob: Optional[str] = None) -> Iterator[ObjectInfo]:
        if match_glob:
            found = []
            for p in self.root.glob(match_glob):
                key = p.relative_to(self.root).as_posix()
                if p.is_file() and key.startswith(prefix) and key > start_after:
                    st = p.stat()
                    found.append(ObjectInfo(key, st.st_size, st.st_mtime))
            yield from sorted(found, key=lambda o: o.key)
            return
        # Walk only the directories that can hold the prefix, in key order.
        base_dir, _, _ = prefix.rpartition("/")
        top = self.root / base_dir if base_dir else self.root
        if not top.is_dir():
            return
        found = []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") or name.endswith(".partial"):
                    continue
                p = Path(dirpath) / name
                key = p.relative_to(self.root).as_posix()
                if key.startswith(prefix) and key > start_after:
                    st = p.stat()
                    found.append(ObjectInfo(key, st.st_size, st.st_mtime))
        yield from sorted(found, key=lambda o: o.key)

    def download(self, key: str, dest: Path) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise FileNotFoundError(f"{key} is not in storage ({self.root})")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        return dest

    def _put(self, src: Path, key: str, transfer) -> None:
        """transfer(src, tmp) next to the final key, then an atomic rename onto it; no partial file survives."""
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
        try:
            transfer(src, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def upload(self, src: Path, key: str) -> None:
        self._put(src, key, shutil.copyfile)

    def move_in(self, src: Path, key: str) -> None:
        """Like upload, but moves a scratch file (cheap on one file system)."""
        self._put(src, key, shutil.move)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        return str(self._path(key))

    def local_path(self, key: str) -> Optional[Path]:
        return self._path(key)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{key} is not in storage ({self.root})") from None


def storage_from_uri(uri: Optional[str] = None) -> Storage:
    """`gs://bucket/prefix` chooses GCS; anything else is a local directory. Default: $IGAIT_STORAGE_ROOT."""
    uri = uri or os.environ.get(STORAGE_ROOT_ENV) or DEFAULT_ROOT
    if uri.startswith("gs://"):
        from igait_pipeline.resources.gcs import GCSStorage  # imported only when production storage is asked for

        return GCSStorage.from_uri(uri)
    return LocalStorage(uri)


# ---------- the iGait layout ----------
def stage_prefix(job_id: str, stage: int) -> str:
    return f"jobs/{validate_job_id(job_id)}/stage_{int(stage)}/"


def job_key(job_id: str, stage: int, name: str) -> str:
    if "/" in name or name in ("", ".", ".."):
        raise StorageError(f"file name {name!r} is not a plain name")
    return stage_prefix(job_id, stage) + name


def model_prefix(name: str, version: str) -> str:
    return f"models/{name}/{version}/"


@dataclass
class StageFiles:
    """The files one stage produced or reads, by their name inside `stage_N/`, as local paths."""

    files: dict[str, Path] = field(default_factory=dict)
    scratch: Optional[Path] = None  # a directory the IO manager may delete once the files are stored

    def __getitem__(self, name: str) -> Path:
        try:
            return self.files[name]
        except KeyError:
            raise KeyError(f"no file {name!r} among {sorted(self.files)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def names(self) -> list[str]:
        return sorted(self.files)


def write_stage(storage: Storage, job_id: str, stage: int, out: StageFiles) -> dict[str, str]:
    """Store every file of a stage at its final key, then drop keys a previous materialization left behind.

    Returns name -> key. Each object is written atomically; stale outputs disappear only after all new ones exist.
    """
    keys = {}
    for name, path in sorted(out.files.items()):
        key = job_key(job_id, stage, name)
        if isinstance(storage, LocalStorage) and out.scratch and Path(path).is_relative_to(out.scratch):
            storage.move_in(Path(path), key)
        else:
            storage.upload(Path(path), key)
        keys[name] = key
    for obj in list(storage.list(stage_prefix(job_id, stage))):
        if obj.key not in keys.values():
            storage.delete(obj.key)
    if out.scratch:
        shutil.rmtree(out.scratch, ignore_errors=True)
    return keys


def read_stage(storage: Storage, job_id: str, stage: int, cache_dir: Path,
               required: tuple[str, ...] = ()) -> StageFiles:
    """Local paths of a stage's files: in place for local storage, downloaded into cache_dir otherwise."""
    prefix = stage_prefix(job_id, stage)
    objects = list(storage.list(prefix))
    names = {o.key[len(prefix):]: o.key for o in objects if "/" not in o.key[len(prefix):]}
    missing = [n for n in required if n not in names]
    if missing:
        raise FileNotFoundError(f"job {job_id}: stage {stage} has no {', '.join(missing)} in storage "
                                f"(looked under {prefix})")
    files = {}
    for name, key in names.items():
        local = storage.local_path(key)
        files[name] = local if local is not None else storage.download(key, Path(cache_dir) / key)
    return StageFiles(files)
