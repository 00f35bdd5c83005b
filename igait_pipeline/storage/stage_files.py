"""A stage's files: stored at their final keys (`jobs/{job_id}/stage_N/<name>`) and read back as local paths.
No Dagster import here; the IO manager (igait_pipeline.resources.io_manager) wraps these two functions.
"""
from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from igait_pipeline.layout import job_key, stage_prefix, staging_prefix, view_of
from igait_pipeline.storage.base import Storage


@dataclass
class StageFiles:
    """The files one stage produced or reads, by their name inside `stage_N/`, as local paths."""

    files: dict[str, Path] = field(default_factory=dict)
    scratch: Path | None = None  # a directory the IO manager may delete once the files are stored

    def __getitem__(self, name: str) -> Path:
        try:
            return self.files[name]
        except KeyError:
            raise KeyError(f"no file {name!r} among {sorted(self.files)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def names(self) -> list[str]:
        return sorted(self.files)

    @classmethod
    def merged(cls, *parts: StageFiles) -> StageFiles:
        """One stage's files from several parts (the views of a per-view stage), as a per-job reader sees them."""
        return cls({name: path for part in parts for name, path in part.files.items()})


def write_stage(storage: Storage, job_id: str, stage: int, out: StageFiles,
                view: str | None = None) -> dict[str, str]:
    """Store a stage's files at their final keys, all or nothing, and remove the scratch directory either way.

    Returns name -> key. Files a previous materialization left behind disappear in the same commit.
    - Local storage (`swaps_directories`): the files go into a hidden staging directory beside `stage_N/`, swapped
      in at once (`LocalStorage.replace_prefix`); scratch files are moved, not copied.
    - Other backends (GCS): every file is first uploaded under a staging prefix (`jobs/{job_id}/.staging/...`),
      where a failure (network, disk, a killed pod) leaves the stage as it was; only then are the staged objects
      copied server-side onto the final keys (no upload can fail half-way there), stale keys deleted, and the
      staging removed.

    With a view (the asset of one view of a per-view stage, e.g. `keypoints_front`), `stage_N/` is shared with the
    other view's asset, which may be writing at the same moment: the directory is not swapped. Each of the view's
    files is put in place whole (a move or upload to a temporary name, then an atomic rename; on GCS the staged
    copy as above), then the view's stale files, and files of no view (a per-view stage writes none: an older
    code version's), are removed; the other view's files are never touched.
    """
    try:
        prefix = stage_prefix(job_id, stage)
        files = {name: Path(path) for name, path in sorted(out.files.items())}
        for name in files:  # a scoped handle refuses a stage it may not write before anything moves
            storage.check_write(job_key(job_id, stage, name))
        if storage.swaps_directories:
            movable = out.scratch is not None and all(p.is_relative_to(out.scratch) for p in files.values())
            if view is not None:
                for name, path in files.items():
                    (storage.move_in if movable else storage.upload)(path, job_key(job_id, stage, name))
                keys = {name: job_key(job_id, stage, name) for name in files}
                _drop_stale(storage, prefix, keys, view)
                return keys
            return storage.replace_prefix(prefix, files, shutil.move if movable else shutil.copyfile)
        return _commit_staged(storage, job_id, stage, prefix, files, view)
    finally:
        if out.scratch:
            shutil.rmtree(out.scratch, ignore_errors=True)


def _drop_stale(storage: Storage, prefix: str, keys: dict[str, str], view: str | None) -> None:
    """Delete what is under prefix and not among keys (with a view: only that view's files and files of no view)."""
    for obj in list(storage.list(prefix)):
        if obj.key not in keys.values() and (view is None or view_of(obj.key[len(prefix):]) in (None, view)):
            storage.delete(obj.key)


def _commit_staged(storage: Storage, job_id: str, stage: int, prefix: str, files: dict[str, Path],
                   view: str | None = None) -> dict[str, str]:
    staging = staging_prefix(job_id, stage, uuid.uuid4().hex)
    try:
        for name, path in files.items():
            storage.upload(path, staging + name)
        keys = {}
        for name in files:
            key = job_key(job_id, stage, name)
            storage.copy(staging + name, key)
            keys[name] = key
        _drop_stale(storage, prefix, keys, view)
        return keys
    finally:
        for obj in list(storage.list(staging)):
            storage.delete(obj.key)


def read_stage(storage: Storage, job_id: str, stage: int, cache_dir: Path,
               required: tuple[str, ...] = (), view: str | None = None) -> StageFiles:
    """Local paths of a stage's files: in place for local storage, downloaded into cache_dir otherwise. Given a
    view, only that view's files and the files of no view (`metadata.json`, `validation.json`) are read."""
    prefix = stage_prefix(job_id, stage)
    objects = list(storage.list(prefix))
    names = {o.key[len(prefix):]: o.key for o in objects if "/" not in o.key[len(prefix):]
             and (view is None or view_of(o.key[len(prefix):]) in (None, view))}
    missing = [n for n in required if n not in names]
    if missing:
        raise FileNotFoundError(f"job {job_id}: stage {stage} has no {', '.join(missing)} in storage "
                                f"(looked under {prefix})")
    files = {}
    for name, key in names.items():
        local = storage.local_path(key)
        files[name] = local if local is not None else storage.download(key, Path(cache_dir) / key)
    return StageFiles(files)
