"""Job IDs, metadata parsing and the storage layer (local backend)."""
from pathlib import Path

import pytest

from igait_pipeline.partitions import JobIdError, user_id_of, validate_job_id
from igait_pipeline.resources.storage import (
    LocalStorage,
    StageFiles,
    StorageError,
    job_key,
    read_stage,
    write_stage,
)
from igait_pipeline.schemas import JobMetadata, MetadataError, parse_height_cm, parse_weight_kg


@pytest.mark.parametrize("job_id", ["user123_5", "a_1", "Xy-9z_120"])
def test_good_job_ids(job_id):
    assert validate_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id,why", [
    ("user/1_5", "path separator"), ("../x_1", r"'\.\.'"), ("user 1_5", "white space"), ("_5", "empty user ID"),
    ("user123_", "empty index"), ("user123", "no '_'"), ("user_x", "not a number"), ("", "empty"),
    ("us$er_1", "characters outside"),
])
def test_malformed_job_ids_say_why(job_id, why):
    with pytest.raises(JobIdError, match=why):
        validate_job_id(job_id)


def test_user_id_of():
    assert user_id_of("user123_5") == "user123"


@pytest.mark.parametrize("raw,cm", [("4'2\"", 127.0), ("4 ft 2 in", 127.0), ("127 cm", 127.0), ("1.27 m", 127.0),
                                    ("50 in", 127.0), (127, 127.0), ("4'", 121.9), ("4' 2''", 127.0)])
def test_height_as_the_web_app_sends_it(raw, cm):
    assert parse_height_cm(raw) == pytest.approx(cm, abs=0.1)


@pytest.mark.parametrize("raw", ["tall", "12 ft", "4'2\" and a bit", "", None, True])
def test_bad_heights(raw):
    with pytest.raises(MetadataError, match="height"):
        parse_height_cm(raw)


def test_weight_units():
    assert parse_weight_kg("55 lb") == pytest.approx(24.9, abs=0.1)
    assert parse_weight_kg(28) == 28.0
    with pytest.raises(MetadataError, match="weight"):
        parse_weight_kg("heavy")


def test_metadata_parse_and_errors():
    m = JobMetadata.parse({"age": 9, "sex": "female", "height": "4'2\"", "weight": "28 kg",
                           "ethnicity": "Asian", "email": "a@b.org"})
    assert (m.sex, m.height_cm, m.weight_kg) == ("F", 127.0, 28.0)
    assert m.patient() == {"age": 9, "sex": "F", "height": 127.0, "weight": 28.0, "ethnicity": "Asian"}
    with pytest.raises(MetadataError, match="lacks height, email"):
        JobMetadata.parse({"age": 9, "sex": "F", "weight": 28, "ethnicity": "x"})
    with pytest.raises(MetadataError, match="email"):
        JobMetadata.parse({"age": 9, "sex": "F", "height": 120, "weight": 28, "ethnicity": "x", "email": "nope"})
    with pytest.raises(MetadataError, match="age"):
        JobMetadata.parse({"age": -3, "sex": "F", "height": 120, "weight": 28, "ethnicity": "x", "email": "a@b.c"})
    with pytest.raises(MetadataError, match="not a JSON object"):
        JobMetadata.parse([1, 2])


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
