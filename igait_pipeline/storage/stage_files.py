"""A stage's files: stored at their final keys (`jobs/{job_id}/stage_N/<name>`) and read back as local paths.
No Dagster import here; the IO manager (igait_pipeline.resources.io_manager) wraps these two functions.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from igait_pipeline.layout import VIEWS, job_key, stage_prefix, view_of
from igait_pipeline.layout import stage as stage_of
from igait_pipeline.storage.base import Storage, StorageError


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
    - Other backends (GCS): committed with a manifest written last (`_commit_manifest`): a reader that follows the
      manifest (`read_stage`) sees the previous commit whole or this one whole, whatever moment a crash or a
      kill strikes; the final keys are then refreshed for readers that read one file by its key.

    With a view (the asset of one view of a per-view stage, e.g. `keypoints_front`), `stage_N/` is shared with the
    other view's asset, which may be writing at the same moment: the directory is not swapped. Each of the view's
    files is put in place whole (a move or upload to a temporary name, then an atomic rename; on GCS the view has
    its own manifest), then the view's stale files, and files of no view (a per-view stage writes none: an older
    code version's), are removed; the other view's files are never touched.
    """
    try:
        prefix = stage_prefix(job_id, stage)
        files = {name: Path(path) for name, path in sorted(out.files.items())}
        for name in files:  # a scoped handle refuses a stage it may not write before anything moves
            storage.check_write(job_key(job_id, stage, name))
            if name.startswith("."):
                raise ValueError(f"stage file {name!r}: names starting with '.' are the commit's own")
        if storage.swaps_directories:
            movable = out.scratch is not None and all(p.is_relative_to(out.scratch) for p in files.values())
            if view is not None:
                for name, path in files.items():
                    (storage.move_in if movable else storage.upload)(path, job_key(job_id, stage, name))
                keys = {name: job_key(job_id, stage, name) for name in files}
                _drop_stale(storage, prefix, keys, view)
                return keys
            return storage.replace_prefix(prefix, files, shutil.move if movable else shutil.copyfile)
        return _commit_manifest(storage, prefix, files, view)
    finally:
        if out.scratch:
            shutil.rmtree(out.scratch, ignore_errors=True)


def _drop_stale(storage: Storage, prefix: str, keys: dict[str, str], view: str | None) -> None:
    """Delete the files under prefix that are not among keys (with a view: only that view's files and files of no
    view). The commit's own objects (names starting with '.') are left to `_drop_commits`."""
    for obj in list(storage.list(prefix)):
        name = obj.key[len(prefix):]
        if "/" in name or name.startswith("."):
            continue
        if obj.key not in keys.values() and (view is None or view_of(name) in (None, view)):
            storage.delete(obj.key)


# ---------- manifest-last commits (backends without a directory swap: GCS) ----------
#
#   stage_N/.commit.{unit}.{token}/<name>   the files of one commit, each written once and never overwritten
#   stage_N/.manifest.{unit}.json           the commit point: which commit, and each file's key, size and sha256
#   stage_N/<name>                          copies at the final keys, for readers of one file by its key
#
# `unit` is the view for one view's asset of a per-view stage, `all` otherwise: the two views of a stage commit
# side by side, each with its own manifest. A commit (1) uploads its files under a fresh `.commit.` folder, (2)
# writes the manifest (one object, whole or absent), (3) copies the files onto the final keys, drops stale ones,
# and (4) deletes every other `.commit.` folder of its unit: the previous commit's and any a killed run left.
# Killed before (2): the previous manifest and its commit folder are intact (the new folder is an orphan the next
# commit removes). Killed after (2): the new commit is whole. `read_stage` reads only what a manifest names and
# checks each file's size and sha256; a file a newer commit removed meanwhile sends it back to the new manifest.

MANIFEST_VERSION = 1


def _unit(view: str | None) -> str:
    return view or "all"


def manifest_key(prefix: str, view: str | None) -> str:
    return f"{prefix}.manifest.{_unit(view)}.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _commit_manifest(storage: Storage, prefix: str, files: dict[str, Path], view: str | None) -> dict[str, str]:
    unit = _unit(view)
    folder = f"{prefix}.commit.{unit}.{uuid.uuid4().hex}/"
    entries = {}
    try:
        for name, path in files.items():  # (1)
            storage.upload(path, folder + name)
            entries[name] = {"key": folder + name, "size": path.stat().st_size, "sha256": _sha256(path)}
        manifest = {"version": MANIFEST_VERSION, "unit": unit, "commit": folder, "files": entries}
        storage.write_bytes(manifest_key(prefix, view), json.dumps(manifest, indent=1).encode())  # (2)
    except BaseException:
        for e in entries.values():  # an error (not a kill): the stage stays as it was, nothing left behind
            storage.delete(e["key"])
        raise
    keys = {}
    for name in files:  # (3)
        storage.copy(folder + name, prefix + name)
        keys[name] = prefix + name
    _drop_stale(storage, prefix, keys, view)
    _drop_commits(storage, prefix, unit, keep=folder)  # (4)
    return keys


def _drop_commits(storage: Storage, prefix: str, unit: str, keep: str) -> int:
    """Delete the objects of every commit folder of unit but `keep`; returns how many."""
    n = 0
    for obj in list(storage.list(f"{prefix}.commit.{unit}.")):
        if not obj.key.startswith(keep):
            storage.delete(obj.key)
            n += 1
    return n


def _manifest(storage: Storage, prefix: str, view: str | None) -> dict | None:
    try:
        data = json.loads(storage.read_bytes(manifest_key(prefix, view)))
    except FileNotFoundError:
        return None
    if data.get("version") != MANIFEST_VERSION or not data.get("commit", "").startswith(prefix + ".commit."):
        raise StorageError(f"{manifest_key(prefix, view)} is not a stage manifest this code reads")
    return data


def _from_manifest(storage: Storage, prefix: str, view: str | None, cache_dir: Path) -> dict[str, Path] | None:
    """The files one manifest names, downloaded and checked (size, sha256); None if there is no manifest. A file
    gone or changed (a newer commit replaced this one meanwhile) means: read the newest manifest again."""
    for _attempt in range(3):
        manifest = _manifest(storage, prefix, view)
        if manifest is None:
            return None
        out: dict[str, Path] = {}
        try:
            for name, e in manifest["files"].items():
                local = storage.local_path(e["key"]) or storage.download(e["key"], Path(cache_dir) / e["key"])
                if local.stat().st_size != e["size"] or _sha256(local) != e["sha256"]:
                    raise FileNotFoundError(f"{e['key']} is not the file the manifest names")
                out[name] = local
            return out
        except FileNotFoundError:
            continue
    raise StorageError(f"{manifest_key(prefix, view)}: its files kept changing while read (3 attempts)")


def read_stage(storage: Storage, job_id: str, stage: int, cache_dir: Path,
               required: tuple[str, ...] = (), view: str | None = None) -> StageFiles:
    """Local paths of a stage's files: in place for local storage, downloaded into cache_dir otherwise. Given a
    view, only that view's files and the files of no view (`metadata.json`, `validation.json`) are read.

    Where a stage was committed with manifests (GCS), only the files the manifest(s) name are read: one per view
    of a per-view stage (both, for a reader of the whole stage), else one for the stage. A stage (or view) without
    a manifest is read by listing its folder: the upload (stage 0, written by the back end), a stage written
    before manifests, or local storage."""
    prefix = stage_prefix(job_id, stage)
    st = stage_of(stage)
    units = ([view] if view else list(VIEWS)) if st.per_view else [None]
    files: dict[str, Path] = {}
    listed = None
    for unit in units:
        wanted = view if unit is None else unit  # the view whose files (and files of no view) are read
        named = None if storage.swaps_directories else _from_manifest(storage, prefix, unit, cache_dir)
        if named is None:
            if listed is None:
                listed = {o.key[len(prefix):]: o.key for o in storage.list(prefix)
                          if "/" not in o.key[len(prefix):] and not o.key[len(prefix):].startswith(".")}
            named = {}
            for name, key in listed.items():
                if wanted is None or view_of(name) in (None, wanted):
                    local = storage.local_path(key)
                    named[name] = local if local is not None else storage.download(key, Path(cache_dir) / key)
        files.update({n: p for n, p in named.items() if wanted is None or view_of(n) in (None, wanted)})
    missing = [n for n in required if n not in files]
    if missing:
        raise FileNotFoundError(f"job {job_id}: stage {stage} has no {', '.join(missing)} in storage "
                                f"(looked under {prefix})")
    return StageFiles(files)
