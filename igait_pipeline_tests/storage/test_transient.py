"""Transient GCS errors on the wire: the real google-cloud-storage client, the real emulator, and between them a real
proxy (fixtures/gcs_faults.py) that answers chosen requests with 503 / 429 or resets the connection, before or
after the emulator acted. Each storage operation must still do its work (the client's retries, and the restart of
a resumable upload whose session broke), the faults must really have happened (the proxy's counter), and when the
store keeps failing past the retry time limit the error must be a TransientStorageError naming the key.
"""
from __future__ import annotations

import json
import os
import time

import pytest
from google.cloud import storage as gcs

from igait_pipeline.layout import job_key, stage_prefix
from igait_pipeline.storage import StageFiles, StorageError, TransientStorageError, read_stage, write_stage
from igait_pipeline.storage.gcs import RETRY_TIMEOUT_ENV, GCSStorage, MiB, retry_from_env
from igait_pipeline_tests.fixtures.gcs_faults import Fault
from igait_pipeline_tests.fixtures.media import GOOD_METADATA

BIG = 8 * MiB + 17  # above the library's 8 MiB multipart limit: a resumable upload, in chunks
CHUNK = 2 * MiB


def _storage(root: str) -> GCSStorage:
    # a client made now, so it talks to $STORAGE_EMULATOR_HOST = the faulty front
    return GCSStorage.from_uri(root, client=gcs.Client(), upload_chunk_size=CHUNK, download_chunk_size=CHUNK)


@pytest.fixture
def big_file(tmp_path):
    p = tmp_path / "big.bin"
    p.write_bytes(os.urandom(BIG))
    return p


@pytest.mark.parametrize("fault", [
    Fault("upload_start", action="503"),
    Fault("upload_start", action="reset_after"),  # a session made, its URL lost: a second session
    Fault("upload_chunk", action="503", skip=1, times=2),
    Fault("upload_chunk", action="429", skip=2),
    Fault("upload_chunk", action="reset", skip=1, times=2),
    Fault("upload_chunk", action="reset_after", skip=1),  # chunk 2 stored, its reply lost: 400 on the resend
    Fault("upload_chunk", action="reset_after", skip=4),  # the last chunk: the object made, its reply lost
    Fault("download", action="503", skip=2, times=2),
    Fault("download", action="reset", skip=1),
    Fault("get", action="503"),
], ids=lambda f: f"{f.kinds[0]}-{f.action}-after{f.skip}")
def test_a_large_file_goes_up_and_down_whole_through_transient_faults(gcs_root, faulty_gcs, big_file, tmp_path, fault):
    st = _storage(gcs_root)
    faulty_gcs.fail(fault)
    st.upload(big_file, "jobs/t_1/stage_1/side.mp4")
    back = st.download("jobs/t_1/stage_1/side.mp4", tmp_path / "back.bin")
    assert back.read_bytes() == big_file.read_bytes()
    assert fault.injected >= 1 and len(faulty_gcs.failed) == fault.injected  # the faults really happened
    assert [o.key for o in st.list("jobs/t_1/")] == ["jobs/t_1/stage_1/side.mp4"]  # one object, no leftover


@pytest.mark.parametrize("fault", [
    Fault("upload", action="503"), Fault("upload", action="reset_after"), Fault("copy", action="503"),
    Fault("copy", action="reset_after"), Fault("list", action="503"), Fault("list", action="reset"),
    Fault("delete", action="503"), Fault("delete", action="reset_after"), Fault("download", action="500"),
], ids=lambda f: f"{f.kinds[0]}-{f.action}")
def test_small_objects_copy_list_delete_get_past_one_fault(gcs_root, faulty_gcs, fault):
    st = _storage(gcs_root)
    faulty_gcs.fail(fault)
    st.write_bytes("jobs/t_1/stage_5/cycles.json", b'{"a": 1}')
    st.copy("jobs/t_1/stage_5/cycles.json", "jobs/t_1/stage_5/copy.json")
    assert st.read_bytes("jobs/t_1/stage_5/copy.json") == b'{"a": 1}'
    assert [o.key for o in st.list("jobs/t_1/")] == ["jobs/t_1/stage_5/copy.json", "jobs/t_1/stage_5/cycles.json"]
    st.delete("jobs/t_1/stage_5/copy.json")
    assert not st.exists("jobs/t_1/stage_5/copy.json")
    assert fault.injected == 1 and len(faulty_gcs.failed) == 1


def test_a_stage_commit_and_its_read_get_through_a_fault_on_every_kind_of_request(gcs_root, faulty_gcs, tmp_path):
    """write_stage (uploads, the manifest write, copies, listing, deletes) then read_stage (manifest read,
    downloads), each kind of request failing the first time it is made for this stage."""
    st = _storage(gcs_root)
    out = tmp_path / "out"
    out.mkdir()
    files = {"side_keypoints.json": out / "side_keypoints.json", "side_overlay.mp4": out / "side_overlay.mp4"}
    files["side_keypoints.json"].write_text(json.dumps({"frames": list(range(1000))}))
    files["side_overlay.mp4"].write_bytes(os.urandom(300_000))
    want = {n: p.read_bytes() for n, p in files.items()}
    write_stage(st, "t_1", 4, StageFiles(dict(files)), view="side")  # an old commit to replace
    faulty_gcs.fail(Fault("upload", "stage_4/.commit."), Fault("upload", "stage_4/.manifest.", action="reset_after"),
                    Fault("copy", "stage_4/"), Fault("list", "stage_4/", action="reset"), Fault("delete", "stage_4/"),
                    Fault("download", "stage_4/", action="429"), Fault("get", "stage_4/"))
    write_stage(st, "t_1", 4, StageFiles(dict(files)), view="side")
    got = read_stage(st, "t_1", 4, tmp_path / "cache", view="side")
    assert {n: p.read_bytes() for n, p in got.files.items()} == want
    kinds = {s.kind for s in faulty_gcs.failed}
    assert kinds == {"upload", "copy", "list", "delete", "download", "get"}, kinds
    # the stage is whole: one manifest, its one commit folder, the final files; nothing of the replaced commit
    keys = sorted(o.key for o in st.list(stage_prefix("t_1", 4)))
    manifest = json.loads(st.read_bytes(stage_prefix("t_1", 4) + ".manifest.side.json"))
    assert keys == sorted([stage_prefix("t_1", 4) + ".manifest.side.json", *(e["key"] for e in
                          manifest["files"].values()), *(job_key("t_1", 4, n) for n in files)])


def test_a_store_that_keeps_failing_raises_a_transient_error_naming_the_key(gcs_root, faulty_gcs, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv(RETRY_TIMEOUT_ENV, "2")
    st = _storage(gcs_root)
    assert st.retry.timeout == 2
    key = job_key("t_1", 3, "side.mp4")
    st.write_bytes(key, b"x" * 1000)
    faulty_gcs.fail(Fault(("download", "get"), "stage_3/", times=-1), Fault("upload", "stage_3/", times=-1))
    for what, call in [("read", lambda: st.read_bytes(key)), ("download", lambda: st.download(key, tmp_path / "x")),
                       ("write", lambda: st.write_bytes(key, b"y"))]:
        t0 = time.monotonic()
        with pytest.raises(TransientStorageError) as err:
            call()
        assert time.monotonic() - t0 < 15  # the client's retries gave up after the limit, not after 120 s
        assert f"GCS {what} of {key} failed (retried for up to 2 s" in str(err.value)
        assert "503" in str(err.value)
    assert len(faulty_gcs.failed) >= 6  # each call was retried at least once before giving up
    faulty_gcs.fail()
    assert st.read_bytes(key) == b"x" * 1000  # the store answers again: the old object is untouched


def test_a_missing_object_is_not_transient(gcs_root, faulty_gcs):
    st = _storage(gcs_root)
    with pytest.raises(FileNotFoundError):
        st.read_bytes("jobs/t_1/stage_6/prediction.json")
    assert not faulty_gcs.failed


def test_retry_time_limit_comes_from_the_environment():
    assert retry_from_env({}).timeout == 120  # google's DEFAULT_RETRY
    assert retry_from_env({RETRY_TIMEOUT_ENV: "30"}).timeout == 30
    with pytest.raises(StorageError, match=RETRY_TIMEOUT_ENV):
        retry_from_env({RETRY_TIMEOUT_ENV: "0"})


def test_the_uploads_scan_never_refuses_an_upload_because_the_store_did_not_answer(gcs_root, faulty_gcs,
                                                                                    monkeypatch):
    """Was a hazard: check_upload's StorageError means "refuse the upload" (and e-mail the family); the store
    being unavailable is not the upload's fault. The scan raises (the sensor tick fails, its cursor is not saved)
    and the next scan accepts the job."""
    from igait_pipeline.uploads import scan_uploads

    monkeypatch.setenv(RETRY_TIMEOUT_ENV, "1")
    st = _storage(gcs_root)
    for name in ("front.mp4", "side.mp4"):
        st.write_bytes(job_key("ann_1", 0, name), b"\x00\x00\x00\x18ftypmp42 placeholder")
    st.write_bytes(job_key("bob_2", 0, "front.mp4"), b"\x00\x00\x00\x18ftypmp42 placeholder")  # no side.mp4
    for job_id in ("ann_1", "bob_2"):
        st.write_bytes(job_key(job_id, 0, "metadata.json"), json.dumps(GOOD_METADATA).encode())
    faulty_gcs.fail(Fault(("download", "get"), "ann_1/stage_0/metadata.json", times=-1))
    with pytest.raises(TransientStorageError, match="ann_1/stage_0/metadata.json"):
        scan_uploads(st)
    faulty_gcs.fail()
    first = scan_uploads(st)
    assert [j.job_id for j in first.ready] == ["ann_1"] and [b.job_id for b in first.bad] == ["bob_2"]
    # bob_2 is remembered as refused; its re-check listing failing past the retries is not "the upload is gone"
    st.write_bytes(job_key("bob_2", 0, "side.mp4"), b"\x00\x00\x00\x18ftypmp42 placeholder")
    faulty_gcs.fail(Fault("list", "bob_2/stage_0/", times=-1))
    with pytest.raises(TransientStorageError, match="bob_2/stage_0/"):
        scan_uploads(st, first.cursor)
    faulty_gcs.fail()
    assert [j.job_id for j in scan_uploads(st, first.cursor).ready] == ["bob_2"]
    assert len([s for s in faulty_gcs.failed if "ann_1" in s.name]) >= 2  # retried by the client before
