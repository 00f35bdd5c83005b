"""The storage library's local backend and a stage's files at their keys."""
from pathlib import Path

import pytest

from igait_pipeline.layout import job_key
from igait_pipeline.storage import LocalStorage, StageFiles, StorageError, read_stage, write_stage


def test_local_storage_is_atomic_and_lists_in_order(tmp_path, monkeypatch):
    st = LocalStorage(tmp_path / "root")
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    st.upload(src, "jobs/u_2/stage_1/b.mp4")
    st.upload(src, "jobs/u_1/stage_1/a.mp4")
    assert [o.key for o in st.list("jobs/")] == ["jobs/u_1/stage_1/a.mp4", "jobs/u_2/stage_1/b.mp4"]
    assert [o.key for o in st.list("jobs/", start_after="jobs/u_1/stage_1/a.mp4")] == ["jobs/u_2/stage_1/b.mp4"]
    assert [o.key for o in st.list("jobs/", match_glob="jobs/*/stage_1/a.mp4")] == ["jobs/u_1/stage_1/a.mp4"]

    class Boom(Exception):
        pass

    def half_copy(src, dst):  # the copy dies half-way, after writing part of the object
        Path(dst).write_bytes(b"half")
        raise Boom()

    monkeypatch.setattr("shutil.copyfile", half_copy)
    with pytest.raises(Boom):
        st.upload(src, "jobs/u_3/stage_1/c.mp4")
    monkeypatch.undo()
    assert not st.exists("jobs/u_3/stage_1/c.mp4")
    assert list(st.list("jobs/u_3/")) == []
    with pytest.raises(StorageError):
        st.upload(src, "jobs/../etc/passwd")


def test_write_stage_replaces_outputs_cleanly(tmp_path):
    st = LocalStorage(tmp_path / "root")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "a.json").write_text("1")
    (scratch / "old.json").write_text("old")
    write_stage(st, "u_1", 5, StageFiles({"a.json": scratch / "a.json", "old.json": scratch / "old.json"}))
    (scratch / "a.json").write_text("2")
    keys = write_stage(st, "u_1", 5, StageFiles({"a.json": scratch / "a.json"}, scratch=scratch))
    assert keys == {"a.json": job_key("u_1", 5, "a.json")}
    assert [o.key for o in st.list("jobs/u_1/")] == ["jobs/u_1/stage_5/a.json"]
    assert not scratch.exists()
    files = read_stage(st, "u_1", 5, tmp_path / "cache", required=("a.json",))
    assert files["a.json"].read_text() == "2"
    with pytest.raises(FileNotFoundError, match="job u_1: stage 5 has no b.json"):
        read_stage(st, "u_1", 5, tmp_path / "cache", required=("a.json", "b.json"))
