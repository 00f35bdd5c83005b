"""Uploads-sensor tick times on a bucket of 1,000 and 10,000 complete uploads, GCS (emulator) against local disk.

Each job is `jobs/{job_id}/stage_0/` with front.mp4 and side.mp4 holding a few placeholder bytes (not videos:
the sensor only checks that they exist and are not empty) and a valid metadata.json (written last, as the web
back end does). The GCS side is a real gcp-storage-emulator server in a subprocess (the test fixture's, with its
documented paging/startOffset patches), reached through the real google-cloud-storage client; local is
LocalStorage in a temporary directory. Each case times, on a fresh ephemeral Dagster instance and through
`build_sensor_context`:

- tick 1: no cursor (a new deployment, or a lost cursor): every job is new;
- tick 2: with tick 1's cursor, after the partitions were added (as the daemon does): nothing new;
- tick 3: with tick 2's cursor after one more upload arrived: the steady state.

and counts the HTTP requests each GCS tick sent. The emulator answers on localhost in ~1-3 ms a request; GCS
answers in tens of ms, so on GCS the request counts matter more than the seconds here (see the estimate column,
REMOTE_LATENCY_S per request, sequential as the sensor issues them).

    .venv/bin/python -m bench.sensor_tick [--sizes 1000 10000] [--workers 8]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLACEHOLDER = b"\x00\x00\x00\x18ftypmp42 placeholder, not a video"
METADATA = json.dumps({"age": 9, "sex": "F", "height": "4'2\"", "weight": "28 kg", "ethnicity": "not stated",
                       "email": "family@example.org"}).encode()
REMOTE_LATENCY_S = 0.03  # a typical GCS JSON API round trip from GKE in the same region (assumption, not measured)


def job_ids(n: int, offset: int = 0) -> list[str]:
    return [f"user{i:06d}_{i % 7 + 1}" for i in range(offset, offset + n)]


def fill(storage, ids: list[str], workers: int) -> float:
    from igait_pipeline.layout import UPLOAD

    def put(job_id: str) -> None:
        storage.write_bytes(UPLOAD.key(job_id, "front.mp4"), PLACEHOLDER)
        storage.write_bytes(UPLOAD.key(job_id, "side.mp4"), PLACEHOLDER)
        storage.write_bytes(UPLOAD.key(job_id, "metadata.json"), METADATA)

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, ids))
    return time.perf_counter() - t


class RequestCounter:
    """Counts HTTP requests sent through the process's shared GCS client (observes; changes nothing)."""

    def __init__(self):
        import requests.adapters

        self.count = 0
        self._lock = threading.Lock()
        counter = self

        class Counting(requests.adapters.HTTPAdapter):
            def send(self, request, **kwargs):
                with counter._lock:
                    counter.count += 1
                return super().send(request, **kwargs)

        from igait_pipeline.storage.gcs import default_client

        session = default_client()._http
        session.mount("http://", Counting())
        session.mount("https://", Counting())


def tick(instance, root: str, cursor):
    from dagster import build_sensor_context

    from igait_pipeline.resources.io_manager import StorageResource
    from igait_pipeline.resources.status import JobStatusResource
    from igait_pipeline.sensors import uploads_sensor

    status = JobStatusResource(uri=f"sqlite:{tempfile.gettempdir()}/igait-bench-status.sqlite3")
    ctx = build_sensor_context(instance=instance, cursor=cursor,
                               resources={"storage": StorageResource(root=root), "job_status": status})
    t = time.perf_counter()
    result = uploads_sensor(ctx)
    return time.perf_counter() - t, result


def run_case(backend: str, root: str, storage, n: int, counter) -> list[tuple]:
    from dagster import DagsterInstance

    rows = []
    with DagsterInstance.ephemeral() as instance:
        # A backlog of n new uploads (first start, lost cursor) is worked off over ticks of at most
        # MAX_JOBS_PER_TICK jobs each; report the slowest tick and how many it took.
        cursor, requested, times, reqs = None, 0, [], []
        while True:
            before = counter.count if counter else 0
            t1, r1 = tick(instance, root, cursor)
            reqs.append(counter.count - before if counter else None)
            times.append(t1)
            if not r1.run_requests:
                break
            requested += len(r1.run_requests)
            instance.add_dynamic_partitions("jobs", [r.partition_key for r in r1.run_requests])
            cursor = r1.cursor
        assert requested == n, (backend, n, requested)
        rows.append((backend, n, f"1: backlog of {n}, slowest of {len(times)} ticks", max(times),
                     max(reqs) if counter else None, n))
        before = counter.count if counter else 0
        t2, r2 = tick(instance, root, r1.cursor)
        req2 = counter.count - before if counter else None
        assert not r2.run_requests
        rows.append((backend, n, "2: cursor, nothing new", t2, req2, 0))

        (new_id,) = job_ids(1, offset=10_000_000 + n)
        time.sleep(0.01)  # a later upload time than everything before
        fill(storage, [new_id], 1)
        before = counter.count if counter else 0
        t3, r3 = tick(instance, root, r2.cursor)
        req3 = counter.count - before if counter else None
        assert [r.run_key for r in r3.run_requests] == [new_id]
        rows.append((backend, n, "3: cursor, 1 new upload", t3, req3, 1))

    # For comparison: one listing of every stage_0 object (what a one-pass scan would need instead of two
    # listings per job), and the listing the sensor does now (metadata.json only).
    for what, glob in (("list jobs/*/stage_0/*", "jobs/*/stage_0/*"),
                       ("list */metadata.json", "jobs/*/stage_0/metadata.json")):
        before = counter.count if counter else 0
        t = time.perf_counter()
        listed = sum(1 for _ in storage.list("jobs/", match_glob=glob))
        rows.append((backend, n, what, time.perf_counter() - t, counter.count - before if counter else None,
                     f"{listed} objects"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--workers", type=int, default=8, help="parallel uploads while filling (setup only)")
    args = ap.parse_args()

    from igait_pipeline.storage import LocalStorage, storage_from_uri
    from igait_pipeline_tests.fixtures.gcs import start_emulator

    rows, fills = [], []
    tmp = Path(tempfile.mkdtemp(prefix="igait-bench-sensor-"))
    try:
        with start_emulator(bucket="igait-bench") as emulator:
            os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
            counter = RequestCounter()
            for n in args.sizes:
                uri = f"gs://igait-bench/n{n}"
                gcs_storage = storage_from_uri(uri)
                fills.append(("gcs", n, fill(gcs_storage, job_ids(n), args.workers)))
                rows += run_case("gcs", uri, gcs_storage, n, counter)

                local_root = tmp / f"n{n}"
                local = LocalStorage(local_root)
                fills.append(("local", n, fill(local, job_ids(n), args.workers)))
                rows += run_case("local", str(local_root), local, n, None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nuploads_sensor ticks, {os.cpu_count()} cores; placeholder videos, valid metadata.json; "
          f"GCS = gcp-storage-emulator on localhost")
    print(f"{'backend':<7}{'jobs':>7}  {'tick':<26}{'seconds':>9}{'requests':>10}{'runs|listed':>15}"
          f"  {'est. on GCS @' + str(int(REMOTE_LATENCY_S * 1000)) + ' ms/req':>22}")
    for backend, n, what, sec, req, runs in rows:
        est = f"{req * REMOTE_LATENCY_S:,.1f} s" if req is not None else ""
        print(f"{backend:<7}{n:>7}  {what:<26}{sec:>9.2f}{'' if req is None else req:>10}{runs:>15}  {est:>22}")
    print("\nfill (setup, not part of the ticks): " + ", ".join(f"{b} {n}: {s:.1f} s" for b, n, s in fills))


if __name__ == "__main__":
    main()
