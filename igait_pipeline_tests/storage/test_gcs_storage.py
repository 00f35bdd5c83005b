"""GCSStorage against a real gcp-storage-emulator server, through the real google-cloud-storage client.

HTTP traffic is observed (never altered) with a recording `requests.Session` handed to the client, to check that
large files really move in chunks and that an interrupted upload stopped half-way.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
from dagster import SensorResult, build_sensor_context, instance_for_test
from google.cloud import storage as gcs

from igait_pipeline.layout import job_key
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.storage import LocalStorage, StageFiles, StorageError, read_stage, storage_from_uri, write_stage
from igait_pipeline.storage.gcs import GCSStorage, MiB
from igait_pipeline_tests.fixtures.media import GOOD_METADATA

CHUNK = 256 * 1024  # the smallest chunk GCS accepts


@dataclass
class Call:
    method: str
    url: str
    headers: dict
    status: int


class RecordingSession(requests.Session):
    """A plain requests session that remembers each request it sent and the status it got."""

    def __init__(self):
        super().__init__()
        self.calls: list[Call] = []

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        headers = {k.lower(): v for k, v in (kwargs.get("headers") or {}).items()}
        self.calls.append(Call(method, url, headers, response.status_code))
        return response


def _recording_storage(root: str, **kwargs) -> tuple[GCSStorage, RecordingSession]:
    session = RecordingSession()
    return GCSStorage.from_uri(root, client=gcs.Client(_http=session), **kwargs), session


def _names_in_bucket(emulator, prefix: str) -> list[str]:
    return [b.name for b in emulator.client().list_blobs(emulator.bucket, prefix=prefix)]


def test_round_trip_streams_large_files_in_chunks(gcs_root, gcs_emulator, tmp_path):
    storage, session = _recording_storage(gcs_root, upload_chunk_size=CHUNK, download_chunk_size=2 * CHUNK)
    data = os.urandom(9 * MiB + 12345)  # above 8 MiB: the client library switches to a resumable upload
    src = tmp_path / "front.mp4"
    src.write_bytes(data)
    key = job_key("user1_1", 0, "front.mp4")
    before = time.time()
    storage.upload(src, key)

    chunk_puts = [c for c in session.calls if c.method == "PUT" and "upload_id=" in c.url]
    n_chunks = -(-len(data) // CHUNK)
    assert len(chunk_puts) == n_chunks
    assert [c.status for c in chunk_puts] == [308] * (n_chunks - 1) + [200]  # finalized by the last chunk only
    assert chunk_puts[1].headers["content-range"] == f"bytes {CHUNK}-{2 * CHUNK - 1}/{len(data)}"

    # Same key layout as local storage, under the URI's prefix.
    prefix = gcs_root.split("/", 3)[3]
    assert _names_in_bucket(gcs_emulator, prefix + "/") == [f"{prefix}/{key}"]
    (info,) = storage.list("jobs/")
    assert (info.key, info.size) == (key, len(data))
    assert before - 2 <= info.updated <= time.time() + 2

    session.calls.clear()
    dest = tmp_path / "down" / "front.mp4"
    assert storage.download(key, dest) == dest
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(data).digest()
    ranges = [c.headers.get("range") for c in session.calls if c.method == "GET" and "alt=media" in c.url]
    assert len(ranges) == -(-len(data) // (2 * CHUNK)) and ranges[0] == f"bytes=0-{2 * CHUNK - 1}"
    assert [p.name for p in dest.parent.iterdir()] == ["front.mp4"]  # no temporary file left behind

    # Small objects, existence, deletion, missing objects.
    storage.write_bytes("jobs/user1_1/stage_0/metadata.json", b'{"age": 9}')
    assert storage.read_bytes("jobs/user1_1/stage_0/metadata.json") == b'{"age": 9}'
    storage.write_bytes("jobs/user1_1/stage_0/empty.txt", b"")
    assert storage.download("jobs/user1_1/stage_0/empty.txt", tmp_path / "e.txt").read_bytes() == b""
    assert storage.exists(key) and not storage.exists("jobs/user1_1/stage_0/side.mp4")
    storage.delete(key)
    storage.delete(key)  # deleting what is not there is not an error
    assert not storage.exists(key)
    with pytest.raises(FileNotFoundError, match="side.mp4"):
        storage.download("jobs/user1_1/stage_0/side.mp4", tmp_path / "side.mp4")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("jobs/user1_1/stage_0/side.mp4")
    assert not (tmp_path / "side.mp4").exists()
    with pytest.raises(StorageError):
        storage.upload(src, "jobs/../escape")


class FailingReader(io.BytesIO):
    """A file that breaks (like a disk or a network mount going away) once `fail_at` bytes have been read."""

    def __init__(self, data: bytes, fail_at: int):
        super().__init__(data)
        self.fail_at = fail_at

    def read(self, size=-1):
        end = len(self.getbuffer()) if size is None or size < 0 else self.tell() + size
        if end > self.fail_at:
            raise OSError("input/output error: the source went away mid-upload")
        return super().read(size)


def test_interrupted_upload_leaves_no_partial_object(gcs_root, tmp_path):
    storage, session = _recording_storage(gcs_root, upload_chunk_size=CHUNK)
    key = job_key("user1_2", 1, "side.mp4")
    fresh_key = job_key("user1_2", 1, "front.mp4")
    storage.write_bytes(key, b"the previous, complete version")
    data = os.urandom(9 * MiB)

    for k in (key, fresh_key):
        session.calls.clear()
        with pytest.raises(OSError, match="went away mid-upload"):
            storage.upload_stream(FailingReader(data, fail_at=3 * CHUNK + 1000), k, size=len(data))
        # Three chunks reached the server, which kept them as an unfinished upload (308 Resume Incomplete).
        puts = [c for c in session.calls if c.method == "PUT" and "upload_id=" in c.url]
        assert [c.status for c in puts] == [308, 308, 308]
        status = requests.put(puts[0].url, headers={"Content-Range": f"bytes */{len(data)}"})
        assert status.status_code == 308 and status.headers["Range"] == f"bytes=0-{3 * CHUNK - 1}"

    # Nothing at the final key of the new object; the old object is whole.
    assert not storage.exists(fresh_key)
    assert [o.key for o in storage.list("jobs/user1_2/")] == [key]
    assert storage.read_bytes(key) == b"the previous, complete version"

    # The same upload, not interrupted, replaces the object.
    storage.upload_stream(io.BytesIO(data), key, size=len(data))
    assert storage.download(key, tmp_path / "side.mp4").read_bytes() == data


LAYOUT = {
    "jobs/a_1/stage_0/front.mp4": b"f" * 10,
    "jobs/a_1/stage_0/metadata.json": b"{}",
    "jobs/a_1/stage_0/side.mp4": b"s" * 7,
    "jobs/a_1/stage_1/front.mp4": b"F" * 3,
    "jobs/a_10/stage_0/metadata.json": b"{ }",
    "jobs/b_2/stage_0/metadata.json": b"{  }",
    "jobs/b_2/stage_0/notes/extra.txt": b"x",
    "models/ref/1/model.pt": b"m" * 5,
}
LIST_CASES = [
    ("", "", None),
    ("jobs/", "", None),
    ("jobs/a_1", "", None),                     # a_1 and a_10: a prefix, not a directory
    ("jobs/a_1/", "", None),
    ("jobs/", "jobs/a_1/stage_0/metadata.json", None),  # exclusive: the key itself is not repeated
    ("jobs/", "jobs/a_1/stage_0/m", None),      # a start that is no key
    ("jobs/b_2/", "jobs/", None),               # a start before the prefix
    ("jobs/", "jobs/z", None),                  # after everything
    ("jobs/", "", "jobs/*/stage_0/metadata.json"),
    ("jobs/", "jobs/a_10/stage_0/metadata.json", "jobs/*/stage_0/metadata.json"),
    ("jobs/", "", "jobs/*/stage_0/*"),          # `*` does not cross `/`: notes/extra.txt is not matched
    ("models/", "", None),
]


def test_list_agrees_with_local_storage(gcs_root, tmp_path):
    gcs_store = storage_from_uri(gcs_root)
    # A sibling root whose name extends ours must stay invisible ("test-x" vs "test-x2").
    sibling = storage_from_uri(gcs_root + "2")
    sibling.write_bytes("jobs/a_1/stage_0/metadata.json", b"not ours")
    local = LocalStorage(tmp_path / "local")
    for key, data in LAYOUT.items():
        gcs_store.write_bytes(key, data)
        local.write_bytes(key, data)
    for prefix, start_after, glob in LIST_CASES:
        on_gcs = [(o.key, o.size) for o in gcs_store.list(prefix, start_after=start_after, match_glob=glob)]
        on_disk = [(o.key, o.size) for o in local.list(prefix, start_after=start_after, match_glob=glob)]
        assert on_gcs == on_disk, (prefix, start_after, glob)
    assert [o.key for o in gcs_store.list("jobs/", match_glob="jobs/*/stage_0/metadata.json")] == [
        "jobs/a_1/stage_0/metadata.json", "jobs/a_10/stage_0/metadata.json", "jobs/b_2/stage_0/metadata.json"]
    # The emulator pages like GCS (see fixtures/gcs.py): following nextPageToken yields every name once, in order.
    root = gcs_root.split("/", 3)[3] + "/"
    pages = gcs_store.client.list_blobs(gcs_store.bucket, prefix=root, page_size=3).pages
    assert [[b.name[len(root):] for b in page] for page in pages] == [sorted(LAYOUT)[i:i + 3] for i in (0, 3, 6)]

    observed, session = _recording_storage(gcs_root)
    assert [o.key for o in observed.list("jobs/", start_after="jobs/a_10/stage_0/metadata.json")] == [
        "jobs/b_2/stage_0/metadata.json", "jobs/b_2/stage_0/notes/extra.txt"]
    # One page; the server skips what comes before the start (startOffset). (The client may also fetch the
    # bucket's metadata once, for its tracing attributes.)
    (call,) = [c for c in session.calls if "/o?" in c.url]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(call.url).query))
    assert query["startOffset"] == root + "jobs/a_10/stage_0/metadata.json" and query["prefix"] == root + "jobs/"
    assert query["fields"] == "items(name,size,updated),nextPageToken"


def test_storage_from_uri_picks_gcs(gcs_root, tmp_path, monkeypatch):
    s = storage_from_uri("gs://igait-test/some/prefix")
    assert isinstance(s, GCSStorage) and (s.bucket_name, s.prefix) == ("igait-test", "some/prefix")
    bare = storage_from_uri("gs://igait-test")
    assert isinstance(bare, GCSStorage) and bare.prefix == ""
    assert isinstance(storage_from_uri(), GCSStorage)  # $IGAIT_STORAGE_ROOT, set by gcs_root
    assert StorageResource().get().uri == gcs_root
    assert isinstance(StorageResource(root=str(tmp_path)).get(), LocalStorage)
    monkeypatch.delenv("IGAIT_STORAGE_ROOT")
    assert isinstance(storage_from_uri(), LocalStorage)
    for bad in ("gs:///prefix", "gs://bucket/jobs/*", "gs://bucket/a/../b"):
        with pytest.raises(StorageError):
            storage_from_uri(bad)


def test_write_stage_and_read_stage_on_gcs(gcs_root, tmp_path):
    storage = storage_from_uri(gcs_root)
    out = tmp_path / "out1"
    out.mkdir()
    (out / "front.mp4").write_bytes(b"front v1")
    (out / "old.json").write_bytes(b"{}")
    keys = write_stage(storage, "user3_1", 3, StageFiles({"front.mp4": out / "front.mp4",
                                                         "old.json": out / "old.json"}, scratch=out))
    assert keys == {"front.mp4": "jobs/user3_1/stage_3/front.mp4", "old.json": "jobs/user3_1/stage_3/old.json"}
    assert not out.exists()  # the scratch directory is gone once the files are stored

    out2 = tmp_path / "out2"
    out2.mkdir()
    (out2 / "front.mp4").write_bytes(b"front v2")
    (out2 / "crop.json").write_bytes(b'{"x": 1}')
    write_stage(storage, "user3_1", 3, StageFiles({"front.mp4": out2 / "front.mp4",
                                                  "crop.json": out2 / "crop.json"}, scratch=out2))
    assert [o.key for o in storage.list("jobs/user3_1/") if "/." not in o.key] == [
        "jobs/user3_1/stage_3/crop.json", "jobs/user3_1/stage_3/front.mp4"]  # old.json, stale, removed
    hidden = [o.key.split("/")[3] for o in storage.list("jobs/user3_1/") if "/." in o.key]
    assert hidden[-1] == ".manifest.all.json" and len(set(hidden[:-1])) == 1  # one commit folder, the manifest's

    cache = tmp_path / "cache"
    files = read_stage(storage, "user3_1", 3, cache, required=("front.mp4", "crop.json"))
    assert files.names() == ["crop.json", "front.mp4"]
    assert files["front.mp4"].read_bytes() == b"front v2"
    assert files["front.mp4"].is_relative_to(cache)
    with pytest.raises(FileNotFoundError, match="stage 3 has no side.mp4"):
        read_stage(storage, "user3_1", 3, cache, required=("side.mp4",))


def _verify_v4_signature(url: str, public_key) -> None:
    """Recompute the V4 string-to-sign of a signed GET URL and check its RSA signature."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    signature = bytes.fromhex(params.pop("X-Goog-Signature"))
    canonical_query = "&".join(f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}"
                               for k, v in sorted(params.items()))
    signed_headers = params["X-Goog-SignedHeaders"]
    assert signed_headers == "host"
    canonical_request = "\n".join(["GET", parts.path, canonical_query, f"host:{parts.netloc}", "", "host",
                                   "UNSIGNED-PAYLOAD"])
    scope = params["X-Goog-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(["GOOG4-RSA-SHA256", params["X-Goog-Date"], scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    public_key.verify(signature, string_to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())


def test_url_is_signed_when_credentials_can_sign_else_gs(gcs_root):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.oauth2 import service_account

    key = job_key("user4_1", 7, "results.zip")
    anonymous = storage_from_uri(gcs_root)  # the emulator's anonymous credentials cannot sign
    assert anonymous.url(key) == f"{gcs_root}/{key}"

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    creds = service_account.Credentials.from_service_account_info({
        "type": "service_account", "client_email": "igait-links@test-project.iam.gserviceaccount.com",
        "private_key": pem, "private_key_id": "k1", "token_uri": "https://oauth2.googleapis.com/token",
        "project_id": "test-project"})
    signing = GCSStorage.from_uri(gcs_root, client=gcs.Client(project="test-project", credentials=creds),
                                  signed_url_ttl=timedelta(hours=6))
    url = signing.url(key)
    parts = urllib.parse.urlsplit(url)
    params = dict(urllib.parse.parse_qsl(parts.query))
    assert parts.path.endswith(f"/{gcs_root[len('gs://'):]}/{key}")
    assert params["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256" and params["X-Goog-Expires"] == str(6 * 3600)
    assert params["X-Goog-Credential"].startswith("igait-links@test-project.iam.gserviceaccount.com/")
    signed_at = datetime.strptime(params["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 120
    _verify_v4_signature(url, private.public_key())
    with pytest.raises(StorageError):
        GCSStorage.from_uri(gcs_root, signed_url_ttl=timedelta(days=8))


def test_uploads_sensor_tick_on_gcs(gcs_root, tmp_path):
    """The uploads sensor finds complete uploads in the bucket and skips incomplete ones; a second tick with
    its cursor requests nothing."""
    from igait_pipeline.resources.status import JobStatusResource
    from igait_pipeline.sensors import uploads_sensor

    storage = storage_from_uri(gcs_root)
    meta = json.dumps(GOOD_METADATA).encode()
    for job_id, names in {"ann_1": ("front.mp4", "side.mp4"), "ben_2": ("front.mp4",),
                          "cat_3": ("front.mp4", "side.mp4")}.items():
        for name in names:
            storage.write_bytes(job_key(job_id, 0, name), b"\x00\x00\x00\x18ftypmp42 placeholder")
        if job_id != "cat_3":  # cat_3 is still uploading: no metadata.json yet
            storage.write_bytes(job_key(job_id, 0, "metadata.json"), meta)
    with instance_for_test() as instance:
        resources = {"storage": StorageResource(root=gcs_root),
                     "job_status": JobStatusResource(uri=f"sqlite:{tmp_path}/status.sqlite3")}
        result = uploads_sensor(build_sensor_context(instance=instance, resources=resources))
        assert isinstance(result, SensorResult)
        assert [r.run_key for r in result.run_requests] == ["ann_1"]
        instance.add_dynamic_partitions("jobs", ["ann_1"])
        again = uploads_sensor(build_sensor_context(instance=instance, resources=resources, cursor=result.cursor))
        assert not again.run_requests



def test_one_views_files_on_gcs_replace_and_download_only_that_view(gcs_root, tmp_path):
    """A per-view stage's asset (view given): its stale files and files of no view go, the other view's stay, and a
    reader of one view downloads that view's files (and files of no view) only."""
    storage = storage_from_uri(gcs_root)
    for name in ("front.mp4", "front_crop.json", "side.mp4", "side_crop.json", "crop.json"):
        storage.write_bytes(job_key("user4_1", 3, name), name.encode())
    out = tmp_path / "out"
    out.mkdir()
    (out / "front.mp4").write_bytes(b"front v2")
    write_stage(storage, "user4_1", 3, StageFiles({"front.mp4": out / "front.mp4"}, scratch=out), view="front")
    assert [o.key.rsplit("/", 1)[1] for o in storage.list("jobs/user4_1/") if "/." not in o.key] == [
        "front.mp4", "side.mp4", "side_crop.json"]  # front_crop.json (this view's, stale) and crop.json went
    cache = tmp_path / "cache"
    files = read_stage(storage, "user4_1", 3, cache, required=("side.mp4",), view="side")
    assert files.names() == ["side.mp4", "side_crop.json"]
    assert sorted(p.name for p in (cache / "jobs/user4_1/stage_3").iterdir()) == ["side.mp4", "side_crop.json"]
