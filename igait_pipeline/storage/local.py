"""`LocalStorage`: objects as files under a root directory (the embedded default). No Dagster import here.

Every write goes to a temporary file next to its final path and is renamed onto it, so no partial file survives.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator, Optional

from igait_pipeline.storage.base import ObjectInfo, Storage, check_key


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

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

