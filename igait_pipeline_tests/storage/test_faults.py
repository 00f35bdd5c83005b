"""Issue 12: storage under bad input and faults. Links never lead out of the root; a stage's files are committed
all or nothing (disk full on a real small tmpfs where this machine allows mounting one, and ENOSPC raised at the
write boundary everywhere); scratch directories go away when a stage fails."""
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from igait_pipeline.layout import job_key
from igait_pipeline.storage import LocalStorage, StageFiles, StorageError, read_stage, write_stage
from igait_pipeline.uploads import scan_uploads
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, put_job


@pytest.fixture
def outside(tmp_path):
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text("not yours")
    return d


def _snapshot(d: Path) -> dict:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_a_linked_file_in_stage_0_is_refused_not_read(local_storage, outside, short_clip):
    """Was: followed: an outside file landed in results.zip."""
    put_job(local_storage, "link_1", short_clip, short_clip, GOOD_METADATA)
    meta = local_storage.local_path(job_key("link_1", 0, "metadata.json"))
    meta.unlink()
    meta.symlink_to(outside / "secret.txt")
    with pytest.raises(StorageError, match="stage_0/metadata.json is a symbolic link"):
        local_storage.read_bytes(job_key("link_1", 0, "metadata.json"))
    with pytest.raises(StorageError, match="symbolic link"):
        read_stage(local_storage, "link_1", 0, local_storage.root / "cache")
    (bad,) = scan_uploads(local_storage).bad
    assert bad.job_id == "link_1" and "symbolic link" in bad.reason


def test_a_linked_job_folder_is_refused_and_nothing_is_written_outside(local_storage, outside, short_clip,
                                                                      tmp_path):
    """Was: stages 1–7 written outside the storage root."""
    put_job(local_storage, "real_1", short_clip, short_clip, GOOD_METADATA)
    shutil.copytree(local_storage.root / "jobs" / "real_1", outside / "evil")
    (local_storage.root / "jobs" / "evil_1").symlink_to(outside / "evil")
    before = _snapshot(outside)
    scan = scan_uploads(local_storage)
    assert [j.job_id for j in scan.ready] == ["real_1"]
    (bad,) = scan.bad
    assert bad.job_id == "evil_1" and "jobs/evil_1 is a symbolic link" in bad.reason
    out = tmp_path / "scratch"
    out.mkdir()
    (out / "front.mp4").write_bytes(b"new")
    with pytest.raises(StorageError, match="symbolic link"):
        write_stage(local_storage, "evil_1", 1, StageFiles({"front.mp4": out / "front.mp4"}, scratch=out))
    with pytest.raises(StorageError, match="symbolic link"):
        local_storage.write_bytes(job_key("evil_1", 7, "results.zip"), b"zip")
    assert _snapshot(outside) == before
    assert not out.exists()  # the scratch directory went anyway


def test_a_linked_stage_folder_inside_the_root_is_refused_too(local_storage, tmp_path):
    (local_storage.root / "jobs" / "a_1").mkdir(parents=True)
    (local_storage.root / "jobs" / "b_1" / "stage_4").mkdir(parents=True)
    (local_storage.root / "jobs" / "a_1" / "stage_4").symlink_to(local_storage.root / "jobs" / "b_1" / "stage_4")
    with pytest.raises(StorageError, match="jobs/a_1/stage_4 is a symbolic link"):
        list(local_storage.list("jobs/a_1/stage_4/"))


class DiskFullAfter(LocalStorage):
    """The local backend on a disk that fills up after `room` files (ENOSPC raised where the bytes are written)."""

    def __init__(self, root, room: int):
        super().__init__(root)
        self.room = room

    def replace_prefix(self, prefix, files, transfer=shutil.copyfile):
        def filling(src, dst):
            if self.room <= 0:
                Path(dst).write_bytes(b"\0" * 10)  # part of the file made it to disk
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
            self.room -= 1
            return transfer(src, dst)
        return super().replace_prefix(prefix, files, filling)


def _stage_files(tmp_path, names, content=b"v2"):
    out = tmp_path / f"scratch-{content.decode()}"
    out.mkdir()
    for n in names:
        (out / n).write_bytes(content * 100)
    return StageFiles({n: out / n for n in names}, scratch=out)


def test_disk_full_half_way_through_a_stage_leaves_the_previous_stage_whole(tmp_path):
    """Was: stage_1/ with front.mp4 and no side.mp4."""
    st = LocalStorage(tmp_path / "root")
    write_stage(st, "u_1", 1, _stage_files(tmp_path, ["front.mp4", "side.mp4"], b"v1"))
    full = DiskFullAfter(st.root, room=1)
    files = _stage_files(tmp_path, ["front.mp4", "side.mp4"], b"v2")
    with pytest.raises(OSError) as e:
        write_stage(full, "u_1", 1, files)
    assert e.value.errno == errno.ENOSPC
    assert {o.key: st.read_bytes(o.key) for o in st.list("jobs/u_1/")} == {
        "jobs/u_1/stage_1/front.mp4": b"v1" * 100, "jobs/u_1/stage_1/side.mp4": b"v1" * 100}
    assert sorted(p.name for p in (st.root / "jobs" / "u_1").iterdir()) == ["stage_1"]  # no staging left
    assert not files.scratch.exists()
    # a first materialization that fails leaves no stage at all
    with pytest.raises(OSError):
        write_stage(DiskFullAfter(st.root, room=1), "u_2", 1, _stage_files(tmp_path, ["front.mp4", "side.mp4"],
                                                                           b"v3"))
    assert list(st.list("jobs/u_2/")) == [] and not (st.root / "jobs" / "u_2" / "stage_1").exists()


def test_a_new_commit_replaces_every_file_and_drops_stale_ones(tmp_path):
    st = LocalStorage(tmp_path / "root")
    write_stage(st, "u_1", 5, _stage_files(tmp_path, ["cycles.json", "cycles.png", "old.txt"], b"v1"))
    write_stage(st, "u_1", 5, _stage_files(tmp_path, ["cycles.json", "cycles.png"], b"v2"))
    assert {o.key: st.read_bytes(o.key) for o in st.list("jobs/u_1/")} == {
        job_key("u_1", 5, "cycles.json"): b"v2" * 100, job_key("u_1", 5, "cycles.png"): b"v2" * 100}


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 1 MiB tmpfs (needs root and mount rights: skipped where the machine does not allow it)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the ENOSPC case above covers the logic")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_on_a_real_small_tmpfs(small_tmpfs, tmp_path):
    st = LocalStorage(small_tmpfs / "root")
    write_stage(st, "u_1", 1, _stage_files(tmp_path, ["front.mp4", "side.mp4"], b"v1"))
    big = tmp_path / "big"
    big.mkdir()
    (big / "front.mp4").write_bytes(b"f" * 300_000)
    (big / "side.mp4").write_bytes(b"s" * 900_000)  # together more than the disk holds
    with pytest.raises(OSError) as e:
        write_stage(st, "u_1", 1, StageFiles({n: big / n for n in ("front.mp4", "side.mp4")}))
    assert e.value.errno == errno.ENOSPC
    assert {o.key: len(st.read_bytes(o.key)) for o in st.list("jobs/u_1/")} == {
        "jobs/u_1/stage_1/front.mp4": 200, "jobs/u_1/stage_1/side.mp4": 200}
    assert sorted(p.name for p in (st.root / "jobs" / "u_1").iterdir()) == ["stage_1"]


def test_on_gcs_a_failed_upload_changes_nothing_and_leaves_nothing(gcs_root, tmp_path):
    from igait_pipeline.storage import storage_from_uri
    from igait_pipeline.storage.gcs import GCSStorage

    st = storage_from_uri(gcs_root)
    write_stage(st, "g_1", 1, _stage_files(tmp_path, ["front.mp4", "side.mp4"], b"v1"))

    class FailsOnSecondUpload(GCSStorage):
        uploads = 0

        def upload(self, src, key):
            FailsOnSecondUpload.uploads += 1
            if FailsOnSecondUpload.uploads == 2:
                raise OSError(errno.ENOSPC, "no space left while reading the scratch file")
            return super().upload(src, key)

    failing = FailsOnSecondUpload(st.bucket_name, st.prefix, st.client)

    def visible_and_commits():
        objects = {o.key: st.read_bytes(o.key) for o in st.list("jobs/g_1/")}
        commits = {k.split("/")[3] for k in objects if "/.commit." in k}
        return {k: v for k, v in objects.items() if "/." not in k}, commits

    before = {o.key: st.read_bytes(o.key) for o in st.list("jobs/g_1/")}
    with pytest.raises(OSError):
        write_stage(failing, "g_1", 1, _stage_files(tmp_path, ["front.mp4", "side.mp4"], b"v2"))
    assert {o.key: st.read_bytes(o.key) for o in st.list("jobs/g_1/")} == before  # manifest, files: untouched
    visible, commits = visible_and_commits()
    assert visible == {"jobs/g_1/stage_1/front.mp4": b"v1" * 100, "jobs/g_1/stage_1/side.mp4": b"v1" * 100}
    assert len(commits) == 1  # the first commit's folder; the failed one's upload was removed
    write_stage(st, "g_1", 1, _stage_files(tmp_path, ["front.mp4"], b"v4"))
    visible, commits = visible_and_commits()
    assert visible == {"jobs/g_1/stage_1/front.mp4": b"v4" * 100} and len(commits) == 1
