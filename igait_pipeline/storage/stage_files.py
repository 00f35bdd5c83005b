"""A stage's files: stored at their final keys (`jobs/{job_id}/stage_N/<name>`) and read back as local paths.
No Dagster import here; the IO manager (igait_pipeline.resources.io_manager) wraps these two functions.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from igait_pipeline.layout import job_key, stage_prefix
from igait_pipeline.storage.base import Storage
from igait_pipeline.storage.local import LocalStorage


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
