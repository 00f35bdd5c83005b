"""`LocalStorage`: objects as files under a root directory (the embedded default). No Dagster import here.

Every write goes to a temporary file next to its final path and is renamed onto it, so no partial file survives.
`replace_prefix` commits a whole directory of files at once (a stage's outputs): they are written into a hidden
staging directory next to it, which is then swapped in with one atomic rename (Linux `renameat2` EXCHANGE).

Symbolic links are never followed: a key whose path passes through a link (a linked job folder, a linked file in
`stage_0/`) is refused with a StorageError, so nothing is read from or written to outside the root.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from igait_pipeline.storage.base import ObjectInfo, Storage, StorageError, check_key

_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE); False where the system cannot."""
    fn = getattr(_libc, "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported by this file system / kernel
        return False
    raise OSError(err, os.strerror(err), str(a))


class LocalStorage(Storage):
    swaps_directories = True

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str, allow_final_link: bool = False) -> Path:
        """The path of key under the root; StorageError if any part of it is a symbolic link (followed, a link
        could lead outside the root), or if it resolves outside the root anyway."""
        p = self.root / check_key(key)
        cur = self.root
        parts = p.relative_to(self.root).parts
        for i, part in enumerate(parts):
            cur = cur / part
            if cur.is_symlink() and not (allow_final_link and i == len(parts) - 1):
                raise StorageError(f"{cur.relative_to(self.root).as_posix()} is a symbolic link; storage never "
                                   f"follows links (one could lead outside the storage root)")
            if not cur.exists():
                break
        if not allow_final_link and not p.resolve().is_relative_to(self.root):
            raise StorageError(f"{key} resolves outside the storage root {self.root}")
        return p

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str, start_after: str = "", match_glob: str | None = None) -> Iterator[ObjectInfo]:
        if match_glob:
            found = []
            for p in self.root.glob(match_glob):
                key = p.relative_to(self.root).as_posix()
                if p.is_file() and key.startswith(prefix) and key > start_after:
                    st = p.stat()
                    found.append(ObjectInfo(key, st.st_size, st.st_mtime))
            yield from sorted(found, key=lambda o: o.key)
            return
        # Walk only the directories that can hold the prefix, in key order (never into a linked directory).
        base_dir, _, _ = prefix.rpartition("/")
        top = self._path(base_dir) if base_dir else self.root
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
        """Like upload, but moves src (a scratch file) instead of copying it: no second copy of a large video."""
        self._put(src, key, shutil.move)

    def delete(self, key: str) -> None:
        self._path(key, allow_final_link=True).unlink(missing_ok=True)  # a link itself may go, never its target

    def replace_prefix(self, prefix: str, files: Mapping[str, Path],
                       transfer: Callable[[Path, Path], object] = shutil.copyfile) -> dict[str, str]:
        """Make `prefix` (a directory key ending in '/') hold exactly `files` (name -> local path), all or nothing.

        The files are transferred into a hidden staging directory beside the final one; only when all of them are
        there is it swapped in (one atomic exchange; two renames where the file system cannot exchange). A
        failure on the way (disk full, a bad file) leaves the previous contents untouched and no staging behind.
        """
        if not prefix.endswith("/"):
            raise StorageError(f"{prefix!r} is not a directory prefix")
        final = self._path(prefix.rstrip("/"))
        final.parent.mkdir(parents=True, exist_ok=True)
        for stale in final.parent.glob(f".{final.name}.*.partial"):  # left by a crash of an earlier commit
            shutil.rmtree(stale, ignore_errors=True)
        staging = final.parent / f".{final.name}.{uuid.uuid4().hex}.partial"
        staging.mkdir()
        try:
            for name, src in files.items():
                check_key(name)
                if "/" in name:
                    raise StorageError(f"{name!r} is not a plain file name")
                transfer(Path(src), staging / name)
            if final.is_dir() and _exchange(staging, final):
                pass  # staging now holds the previous contents, removed below
            else:
                old = staging.with_name(staging.name + ".old.partial")
                moved = final.exists()
                if moved:
                    final.rename(old)
                try:
                    staging.rename(final)
                except BaseException:
                    if moved:
                        old.rename(final)
                    raise
                staging = old
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {name: prefix + name for name in files}

    def url(self, key: str) -> str:
        return str(self.root / check_key(key))

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{key} is not in storage ({self.root})") from None

