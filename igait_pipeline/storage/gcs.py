"""`GCSStorage`: the iGait storage layout in a Google Cloud Storage bucket (`gs://bucket/prefix`).

Keys are the same as on local disk (`jobs/{job_id}/stage_N/<file>`, `models/...`), stored as object names under
the URI's prefix: `gs://igait-data/igait` keeps `jobs/a_1/stage_0/front.mp4` at `igait/jobs/a_1/stage_0/front.mp4`.

The client is google-cloud-storage's own: either passed in, or built with Application Default Credentials (on GKE,
Workload Identity). Like every client of that library, it talks to `$STORAGE_EMULATOR_HOST` instead of Google
(anonymously) when that variable is set; the tests rely on this.

Writes are atomic without temporary objects: GCS creates an object only when its upload completes.
- Files up to 8 MiB go up in one multipart request (the library's choice; at most 8 MiB in memory).
- Larger files (videos) use a resumable upload in `upload_chunk_size` chunks, read from the file one chunk at a
  time. The object is finalized only by the last chunk, so an upload that dies half-way (exception, killed pod)
  leaves no object, and an older object at the key stays whole. An abandoned upload session is invisible and
  expires on its own (GCS drops incomplete sessions after a week).
Every upload carries a CRC32C that GCS checks before finalizing. Uploads are retried on transient errors: our
writes are idempotent (a stage writes the same bytes to its own keys).

Transient errors (429, 408, 5xx, a connection reset or timeout) are retried by the client library itself, every
request (each chunk of an upload or download, each page of a listing, copies, deletes, the manifest write), with
google's DEFAULT_RETRY back-off (1 s doubling up to 60 s) for at most `$IGAIT_GCS_RETRY_TIMEOUT_S` (default 120
s) per request. One case the library does not recover from: the reply to a resumable upload's chunk lost after
GCS stored it (the client sends the chunk again, which GCS refuses, or finds the session finalized); the upload
is then started again from the file's first byte (at most twice), which is safe because only a finished upload
creates the object. A request still failing when the retries run out raises `TransientStorageError` naming the
operation, the key and the last error; the step that called it is retried by Dagster (resources.io_manager).

Downloads fetch the object's metadata first (size, CRC32C, generation), then read it in `download_chunk_size`
range requests pinned to that generation (a concurrent overwrite cannot mix two versions), into a temporary file
next to the destination; the CRC32C is computed while writing and checked before the atomic rename.

`url()`: a V4 signed URL (GET, valid `signed_url_ttl`, 7 days at most) when the client's credentials can sign
locally (a service-account key, or impersonated credentials: `google.auth.impersonated_credentials`, which sign
through the IAM API), else `gs://bucket/name`, which works for anyone with read access to the bucket. On GKE the
default Workload Identity credentials cannot sign, so links are `gs://` unless a signing client is passed in.
"""
from __future__ import annotations

import base64
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import google_crc32c
from google.api_core.exceptions import GoogleAPICallError, NotFound, RetryError
from google.api_core.retry import Retry
from google.auth.credentials import Signing
from google.cloud import storage as gcs
from google.cloud.storage.retry import DEFAULT_RETRY
from google.cloud.storage.retry import _should_retry as _client_retries  # the library's own transient test

from igait_pipeline.storage.base import ObjectInfo, Storage, StorageError, TransientStorageError, check_key

MiB = 1024 * 1024
CHUNK_MULTIPLE = 256 * 1024  # GCS resumable chunks (and the library's download chunks) are multiples of this
DEFAULT_UPLOAD_CHUNK = 16 * MiB
DEFAULT_DOWNLOAD_CHUNK = 16 * MiB
MAX_SIGNED_URL_TTL = timedelta(days=7)  # the V4 signing limit
_GLOB_CHARS = set("*?[]{},\\")
# The only fields the listing needs: smaller pages, faster scans of large buckets.
_LIST_FIELDS = "items(name,size,updated),nextPageToken"

RETRY_TIMEOUT_ENV = "IGAIT_GCS_RETRY_TIMEOUT_S"
MAX_UPLOAD_RESTARTS = 2  # a resumable upload whose session broke (see the module doc) starts again at most twice
_FROM_ENV = object()

_clients: dict[tuple[int, str | None], gcs.Client] = {}
_clients_lock = threading.Lock()


def default_client() -> gcs.Client:
    """One client per process (and per emulator setting): built with Application Default Credentials, or
    anonymous against $STORAGE_EMULATOR_HOST. Keyed by PID so a forked worker never shares the parent's
    connections."""
    key = (os.getpid(), os.environ.get("STORAGE_EMULATOR_HOST"))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = gcs.Client()
        return client


def retry_from_env(env=None) -> Retry:
    """google's DEFAULT_RETRY, its per-request time limit (120 s) replaced by $IGAIT_GCS_RETRY_TIMEOUT_S if set."""
    raw = (os.environ if env is None else env).get(RETRY_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_RETRY
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise StorageError(f"${RETRY_TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return DEFAULT_RETRY.with_timeout(seconds)


def is_transient(exc: BaseException) -> bool:
    """Would the client library retry this error (or has it given up retrying it)?"""
    return isinstance(exc, RetryError) or _client_retries(exc)


def _session_broke(exc: BaseException) -> bool:
    """A resumable upload's chunk refused because the session is not where the client thinks: the reply to an
    earlier chunk was lost after GCS stored it (400 wrong Content-Range), or the session is gone (finalized by
    the lost last chunk, or expired: 404 / 410)."""
    return (isinstance(exc, GoogleAPICallError) and exc.code in (400, 404, 410) and "upload_id=" in str(exc)) or (
        isinstance(exc, ValueError) and "invalid state" in str(exc))


class _Crc32cWriter:
    """A write-only file wrapper that computes the CRC32C of what passes through it."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.crc = google_crc32c.Checksum()
        self.written = 0

    def write(self, data: bytes) -> int:
        self._f.write(data)
        self.crc.update(data)
        self.written += len(data)
        return len(data)

    def b64(self) -> str:
        return base64.b64encode(self.crc.digest()).decode("ascii")


class GCSStorage(Storage):
    def __init__(self, bucket: str, prefix: str = "", client: gcs.Client | None = None, *,
                 upload_chunk_size: int = DEFAULT_UPLOAD_CHUNK, download_chunk_size: int = DEFAULT_DOWNLOAD_CHUNK,
                 signed_url_ttl: timedelta = MAX_SIGNED_URL_TTL, retry: Retry | None = _FROM_ENV):
        if not bucket or "/" in bucket:
            raise StorageError(f"GCS bucket name {bucket!r} is not a bucket name")
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
            if _GLOB_CHARS & set(prefix):
                glob = "".join(sorted(_GLOB_CHARS))
                raise StorageError(f"GCS prefix {prefix!r} may not contain glob characters {glob}")
        for what, size in (("upload_chunk_size", upload_chunk_size), ("download_chunk_size", download_chunk_size)):
            if size <= 0 or size % CHUNK_MULTIPLE:  # the client library's rule for both directions
                raise StorageError(f"{what} must be a positive multiple of 256 KiB, not {size}")
        if not timedelta(0) < signed_url_ttl <= MAX_SIGNED_URL_TTL:
            raise StorageError(f"signed_url_ttl must be within (0, 7 days], not {signed_url_ttl}")
        self.bucket_name = bucket
        self.prefix = prefix
        self._root = f"{prefix}/" if prefix else ""
        self.client = client if client is not None else default_client()
        self.bucket = self.client.bucket(bucket)
        self.upload_chunk_size = upload_chunk_size
        self.download_chunk_size = download_chunk_size
        self.signed_url_ttl = signed_url_ttl
        self.retry = retry_from_env() if retry is _FROM_ENV else retry

    @classmethod
    def from_uri(cls, uri: str, client: gcs.Client | None = None, **kwargs) -> GCSStorage:
        if not uri.startswith("gs://"):
            raise StorageError(f"{uri!r} is not a gs://bucket/prefix URI")
        bucket, _, prefix = uri[len("gs://"):].partition("/")
        return cls(bucket, prefix, client, **kwargs)

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")

    def __repr__(self) -> str:
        return f"GCSStorage({self.uri!r})"

    # ---------- names ----------
    def _name(self, key: str) -> str:
        return self._root + check_key(key)

    def _key(self, name: str) -> str:
        return name[len(self._root):]

    def _blob(self, key: str) -> gcs.Blob:
        return self.bucket.blob(self._name(key))

    @contextmanager
    def _transient(self, what: str, key: str) -> Iterator[None]:
        """A transient error the client's retries did not get past -> TransientStorageError naming the key."""
        try:
            yield
        except Exception as e:
            if not is_transient(e):
                raise
            cause = e.cause if isinstance(e, RetryError) and e.cause is not None else e
            limit = getattr(self.retry, "timeout", None)
            tried = f"retried for up to {limit:g} s" if self.retry is not None and limit else "not retried"
            raise TransientStorageError(f"GCS {what} of {key} failed ({tried}; {self.uri}): "
                                        f"{type(cause).__name__}: {str(cause).splitlines()[0][:300]}") from e

    # ---------- Storage ----------
    def exists(self, key: str) -> bool:
        with self._transient("existence check", key):
            return self._blob(key).exists(retry=self.retry)

    def list(self, prefix: str, start_after: str = "", match_glob: str | None = None) -> Iterator[ObjectInfo]:
        """Pages through `objects.list` (1,000 names a page, only name/size/updated fetched).

        GCS's `startOffset` is inclusive (names >= it); `start_after` is exclusive, so the one name equal to it
        is dropped here. `match_glob` is prefixed with this storage's root and applied by GCS (`matchGlob`).
        """
        kwargs: dict = {"prefix": self._root + prefix, "fields": _LIST_FIELDS, "retry": self.retry}
        if start_after and self._root + start_after > kwargs["prefix"]:
            kwargs["start_offset"] = self._root + start_after
        if match_glob:
            kwargs["match_glob"] = self._root + match_glob
        with self._transient("listing", prefix or "/"):
            for blob in self.client.list_blobs(self.bucket, **kwargs):
                key = self._key(blob.name)
                if start_after and key <= start_after:
                    continue
                yield ObjectInfo(key, int(blob.size or 0), blob.updated.timestamp() if blob.updated else 0.0)

    def download(self, key: str, dest: Path) -> Path:
        with self._transient("download", key):
            return self._download(key, dest)

    def _download(self, key: str, dest: Path) -> Path:
        blob = self.bucket.get_blob(self._name(key), retry=self.retry)
        if blob is None:
            raise FileNotFoundError(f"{key} is not in storage ({self.uri})")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
        try:
            with open(tmp, "wb") as f:
                writer = _Crc32cWriter(f)
                if blob.size:
                    # blob came from get_blob: its media link names this generation, so every range request
                    # reads the same version even if the key is overwritten meanwhile.
                    blob.chunk_size = self.download_chunk_size
                    try:
                        blob.download_to_file(writer, retry=self.retry, checksum=None)
                    except NotFound:
                        raise FileNotFoundError(f"{key} was deleted while it was read ({self.uri})") from None
            if writer.written != (blob.size or 0):
                raise StorageError(f"{key}: downloaded {writer.written} bytes, the object has {blob.size}")
            if blob.crc32c and writer.b64() != blob.crc32c:
                raise StorageError(f"{key}: CRC32C mismatch after download ({writer.b64()} != {blob.crc32c})")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def upload(self, src: Path, key: str) -> None:
        src = Path(src)
        with open(src, "rb") as f:
            self.upload_stream(f, key, size=os.fstat(f.fileno()).st_size)

    def upload_stream(self, stream: BinaryIO, key: str, size: int | None = None) -> None:
        """Upload from an open binary stream, reading at most one chunk at a time (see the module doc).

        With `size` unknown the upload is always resumable. If reading the stream or the network fails
        part-way, nothing appears at `key` and whatever was there before is untouched.
        """
        start = stream.tell() if stream.seekable() else None
        with self._transient("upload", key):
            for restart in range(MAX_UPLOAD_RESTARTS + 1):
                blob = self._blob(key)
                blob.chunk_size = self.upload_chunk_size
                try:
                    blob.upload_from_file(stream, size=size, rewind=False, checksum="auto", retry=self.retry,
                                          content_type=_content_type(key))
                    return
                except (GoogleAPICallError, ValueError) as e:
                    if start is None or restart == MAX_UPLOAD_RESTARTS or not _session_broke(e):
                        raise
                    stream.seek(start)  # a new session, from the first byte (see the module doc)

    def copy(self, src_key: str, dst_key: str) -> None:
        """Server-side copy (no bytes through this process); the destination appears whole or not at all."""
        src = self._blob(src_key)
        with self._transient("copy", f"{src_key} -> {dst_key}"):
            self.bucket.copy_blob(src, self.bucket, self._name(dst_key), retry=self.retry)

    def delete(self, key: str) -> None:
        try:
            with self._transient("delete", key):
                self._blob(key).delete(retry=self.retry)
        except NotFound:
            pass

    def url(self, key: str) -> str:
        name = self._name(key)
        credentials = getattr(self.client, "_credentials", None)
        if isinstance(credentials, Signing):
            return self.bucket.blob(name).generate_signed_url(version="v4", method="GET",
                                                              expiration=self.signed_url_ttl,
                                                              credentials=credentials)
        return f"gs://{self.bucket_name}/{name}"

    # Small objects (metadata.json, reports) in one request each, checksummed by the library.
    def read_bytes(self, key: str) -> bytes:
        try:
            with self._transient("read", key):
                return self._blob(key).download_as_bytes(retry=self.retry)
        except NotFound:
            raise FileNotFoundError(f"{key} is not in storage ({self.uri})") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._transient("write", key):
            self._blob(key).upload_from_string(data, content_type=_content_type(key), retry=self.retry)


_CONTENT_TYPES = {".mp4": "video/mp4", ".json": "application/json", ".zip": "application/zip",
                  ".png": "image/png", ".jpg": "image/jpeg", ".txt": "text/plain; charset=utf-8"}


def _content_type(key: str) -> str:
    return _CONTENT_TYPES.get(os.path.splitext(key)[1].lower(), "application/octet-stream")
