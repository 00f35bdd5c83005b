"""Load: N jobs uploaded within a minute into a fresh instance served by a real `dagster-daemon`, the daemon
SIGKILLed and restarted once in the middle, a real SMTP server catching the e-mails.

    .venv/bin/python -m bench.load [--n 20] [--clip short|full] [--postgres] [--gcs] [--rescore] [--keep DIR]

What runs, all real and all fresh (a temporary directory):
- the instance: `dagster.yaml` of this repository (SQLite, QueuedRunCoordinator with its run limits, run
  monitoring, run retries, the MonitoredRunLauncher); with --postgres its storages are replaced by the PostgreSQL
  ones of deploy/dagster.prod.yaml on a throwaway cluster (igait_pipeline_tests/fixtures/postgres.py); the run
  queue, launcher, monitoring and retries stay the local ones;
- storage: a local directory, or with --gcs a bucket of the GCS emulator (igait_pipeline_tests/fixtures/gcs.py);
- `dagster-daemon run -w workspace.yaml` (uploads sensor, status sensor, run queue, run monitoring, retries), and
  `igait-metrics` beside it, scraped every few seconds for the queue depth (`jobs_in_queue`);
- an aiosmtpd server (igait_pipeline_tests/fixtures/smtp.py) that every job's one e-mail goes to.

Steps: one job alone first (upload to e-mail: the "one job" time), then N jobs uploaded the way the web back end
uploads (videos, metadata.json last) at even intervals within 60 s, each with its own e-mail address. When half
of them have finished their runs the daemon is killed with SIGKILL (only the daemon: its code server and run
workers live on, as when the daemon's container dies) and started again 15 s later. The bench waits until every
job has its e-mail (plus two status-sensor ticks, to catch a second e-mail), then prints:

    throughput (jobs per hour) under load against one job at a time (N x the one job's time),
    the queue depth over time (the exporter's jobs_in_queue), the most runs running at once against the run
    queue's max_concurrent_runs, and runs of one job overlapping (the per-job tag limit is 1),
    upload-to-e-mail latency (median, p95), peak memory (summed PSS of every process the bench started, the
    daemon's run workers and step processes included), runs retried, orphaned processes at the end,

and last `load: N jobs, C completed, L lost, D duplicate runs, E e-mails`: completed = job document `completed`;
lost = a job without a final document (completed or failed) or without a run at the end; duplicate runs = runs of
a job beyond its first that are not Dagster run retries (tag dagster/parent_run_id) of it; E = e-mails the server
accepted for the N jobs. The bench exits non-zero unless L = D = 0 and E = N with one e-mail per job.

With --rescore, once every job is e-mailed the bench types `igait rescore JOB…` (one asset backfill of
prediction + results_archive, as after a model promotion) and waits for the daemon to run it and for two more
status-sensor ticks: it prints `rescore: backfill … COMPLETED_SUCCESS …, K of N jobs re-scored by exactly one
successful run; K documents updated` and fails unless the backfill succeeded, each job had exactly one backfill
run, each document shows stages 6-7 re-done with result.model, and E (counted after) is still one per job.

The clips (both real walkers, a job that runs to results.zip with the view check on): front = the vtest.avi man
walking toward the camera (4.4 s, 540x960, 10 fps; igait_pipeline_tests/fixtures/walkers.py
`vtest_approaching_front`); side = the Sports2D sample's walker crossing, 960x540: `full` = 6.4 s (the fixture
`side_walk`), `short` (default) = its first 3.0 s, to keep 20 jobs affordable on 2 cores.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BIN = Path(sys.executable).parent
METADATA = {"age": 8, "sex": "M", "height": "4'1\"", "weight": "26 kg", "ethnicity": "not stated"}
QUIET = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
MARK_ENV = "IGAIT_LOAD_MARK"  # set in the daemon's environment: every process it starts inherits it
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")


# ---------- the clips ----------
def clips(kind: str) -> tuple[Path, Path]:
    """(front, side) videos; made once from the public clips and cached with the test media."""
    from igait_pipeline_tests.fixtures.media import _cached, sample_path
    from igait_pipeline_tests.fixtures.walkers import VTEST_APPROACH, _follow_path, side_walk_cut, vtest_path

    front = _cached("vtest_approach.mp4", lambda p: _follow_path(vtest_path(), p, VTEST_APPROACH, 150))
    side = side_walk_cut(sample_path(), {"full": 6.4, "short": 3.0}[kind])
    return front, side


# ---------- processes ----------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def marked_processes(mark: str) -> list[int]:
    """PIDs of live processes whose environment holds MARK_ENV=mark (the daemon and everything it started)."""
    needle = f"{MARK_ENV}={mark}".encode()
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if needle in (d / "environ").read_bytes().split(b"\0"):
                    stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
                    if stat[0] not in ("Z", "X"):
                        out.append(int(d.name))
            except OSError:
                continue
    return out


def lingering(mark: str, grace: float = 30.0, exclude: tuple[int, ...] = ()) -> list[int]:
    """The marked processes still alive `grace` seconds after the daemon stopped (checked every 0.5 s, returns as
    soon as there are none). The daemon's code servers (`dagster api grpc --heartbeat`) end by themselves once
    their heartbeat stops, a few seconds after the daemon; on a loaded machine more than the 2 s this bench used
    to wait, which it then counted as orphans. What is alive after the grace period is an orphan."""
    deadline = time.time() + grace
    while True:
        left = [p for p in marked_processes(mark) if p not in exclude]
        if not left or time.time() >= deadline:
            return left
        time.sleep(0.5)


class MemorySampler(threading.Thread):
    """Peak summed PSS of the marked processes (shared pages counted once, pro rata), sampled every 0.5 s."""

    def __init__(self, mark: str, every: float = 0.5):
        super().__init__(daemon=True)
        self.mark, self.every, self.peak_kib, self.peak_procs, self.stop = mark, every, 0, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            total, pids = 0, marked_processes(self.mark)
            for p in pids:
                try:
                    for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
                except OSError:
                    pass
            if total > self.peak_kib:
                self.peak_kib, self.peak_procs = total, len(pids)
            self.stop.wait(self.every)


class Daemon:
    """`dagster-daemon run` as a subprocess of its own session; kill() is a SIGKILL of the daemon process only."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log, self.proc = env, log, None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
                                         env=self.env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def scrape_queue(port: int) -> float | None:
    """`jobs_in_queue` from the metrics exporter, or None if it does not answer (yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("jobs_in_queue "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


# ---------- the environment ----------
@dataclass
class Setup:
    work: Path
    home: Path
    storage_uri: str
    status_uri: str
    env: dict[str, str]
    smtp: object
    mark: str
    max_concurrent_runs: int | None = None
    tag_limits: list = field(default_factory=list)


def write_instance(home: Path, postgres: bool) -> dict:
    """$DAGSTER_HOME/dagster.yaml: this repository's; with PostgreSQL storages from deploy/dagster.prod.yaml."""
    cfg = yaml.safe_load((REPO / "dagster.yaml").read_text())
    if postgres:
        prod = yaml.safe_load((REPO / "deploy" / "dagster.prod.yaml").read_text())
        cfg.pop("storage", None)
        for k in ("run_storage", "event_log_storage", "schedule_storage"):
            cfg[k] = prod[k]
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


def run_limits(cfg: dict) -> tuple[int | None, list]:
    rc = (cfg.get("run_coordinator") or {}).get("config") or {}
    runs = ((cfg.get("concurrency") or {}).get("runs")) or {}
    return (rc.get("max_concurrent_runs", runs.get("max_concurrent_runs")),
            rc.get("tag_concurrency_limits", runs.get("tag_concurrency_limits", [])))


@contextmanager
def environment(work: Path, postgres: bool, gcs: bool):
    from igait_pipeline_tests.fixtures.smtp import _serve

    with ExitStack() as stack:
        home = work / "dagster_home"
        cfg = write_instance(home, postgres)
        env = {**os.environ, **QUIET, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               "DAGSTER_HOME": str(home), "IGAIT_STATUS_URI": f"sqlite:{work}/status.sqlite3",
               "IGAIT_CACHE_DIR": str(work / "cache"), "IGAIT_EXECUTOR": "multiprocess"}
        if postgres:
            from igait_pipeline_tests.fixtures.postgres import create_database, start_postgres

            server = stack.enter_context(start_postgres())
            env.update(create_database(server).env)
        if gcs:
            from igait_pipeline_tests.fixtures.gcs import start_emulator

            emulator = stack.enter_context(start_emulator(log_path=work / "gcs-emulator.log"))
            env["STORAGE_EMULATOR_HOST"] = emulator.host
            storage_uri = f"gs://{emulator.bucket}/load-{uuid.uuid4().hex[:8]}"
        else:
            storage_uri = str(work / "storage")
        env["IGAIT_STORAGE_ROOT"] = storage_uri
        smtp = stack.enter_context(contextmanager(_serve)())
        env.update({"IGAIT_SMTP_HOST": smtp.host, "IGAIT_SMTP_PORT": str(smtp.port), "IGAIT_SMTP_SECURITY": "none"})
        mark = uuid.uuid4().hex
        env[MARK_ENV] = mark
        # this process reads the same instance, storage and job store
        for k in ("DAGSTER_HOME", "IGAIT_STORAGE_ROOT", "IGAIT_STATUS_URI", "IGAIT_CACHE_DIR", "STORAGE_EMULATOR_HOST",
                  *(k for k in env if k.startswith("DAGSTER_PG_"))):
            if k in env:
                os.environ[k] = env[k]
        limit, tags = run_limits(cfg)
        yield Setup(work, home, storage_uri, env["IGAIT_STATUS_URI"], env, smtp, mark, limit, tags)


# ---------- the run ----------
@dataclass
class Observed:
    uploaded: dict[str, float] = field(default_factory=dict)  # job ID -> when metadata.json was written
    queue: list[tuple[float, float]] = field(default_factory=list)  # (t, jobs_in_queue)
    running: list[tuple[float, int]] = field(default_factory=list)  # (t, runs STARTING or STARTED)
    killed_at: float | None = None
    restarted_at: float | None = None
    t0: float = 0.0


def upload(storage, job_id: str, front: Path, side: Path, email: str) -> float:
    from igait_pipeline_tests.fixtures.media import put_job

    put_job(storage, job_id, front, side, {**METADATA, "email": email})
    return time.time()


def email_of(job_id: str) -> str:
    return f"family-{job_id.replace('_', '-')}@example.org"


def mails_by_job(smtp, jobs) -> dict[str, list[float]]:
    by_addr = {email_of(j): j for j in jobs}
    out: dict[str, list[float]] = defaultdict(list)
    for m in list(smtp.messages):
        for rcpt in m.rcpt_tos:
            if rcpt in by_addr:
                out[by_addr[rcpt]].append(m.at)
    return out


def runs_of(instance, job_id: str):
    from dagster import RunsFilter

    from igait_pipeline.launch import JOB_TAG

    return instance.get_run_records(RunsFilter(tags={JOB_TAG: job_id}))


def status_ticks_after(instance, since: float) -> int:
    """Ticks of the status sensor that started after `since` (epoch seconds) and have ended (skipped or
    successful: each read the instance and sent what was due), from the instance's tick records."""
    from dagster._core.scheduler.instigation import InstigatorType, TickStatus

    from igait_pipeline.status.sensors import SENSOR_NAME

    return sum(len(instance.get_ticks(state.instigator_origin_id, state.selector_id, after=since,
                                      statuses=[TickStatus.SKIPPED, TickStatus.SUCCESS]))
               for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
               if state.name == SENSOR_NAME)


def settle(instance, since: float, sample=None, ticks: int = 2, timeout: float = 180.0) -> int:
    """Wait (sampling) until `ticks` status-sensor ticks that started after `since` have ended: a second e-mail for
    a job, or a document not yet updated, would show by then. Returns the ticks seen (fewer only at the timeout,
    which the caller's checks then catch)."""
    deadline = time.time() + timeout
    while (seen := status_ticks_after(instance, since)) < ticks and time.time() < deadline:
        if sample:
            sample()
        time.sleep(1.0)
    return seen


def wait_for_emails(setup: Setup, jobs: list[str], timeout: float, on_tick=None) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if on_tick:
            on_tick()
        if len(mails_by_job(setup.smtp, jobs)) == len(jobs):
            return True
        time.sleep(1.0)
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="jobs uploaded within the minute (default 20)")
    ap.add_argument("--clip", choices=("short", "full"), default="short", help="side clip: 3.0 s or 6.4 s")
    ap.add_argument("--postgres", action="store_true", help="PostgreSQL run/event/schedule storage")
    ap.add_argument("--gcs", action="store_true", help="storage in the GCS emulator")
    ap.add_argument("--spread", type=float, default=60.0, help="seconds over which the N uploads are spread")
    ap.add_argument("--down", type=float, default=15.0, help="seconds the killed daemon stays down")
    ap.add_argument("--no-kill", action="store_true", help="do not kill the daemon")
    ap.add_argument("--status-interval", type=int, default=None,
                    help="the status sensor's minimum interval, s (default: the sensor's, 15; tests use 5)")
    ap.add_argument("--kill-all", action="store_true",
                    help="SIGKILL every process the daemon started too (code servers, run workers, steps): a crash of "
                         "the whole machine or container, not only of the daemon")
    ap.add_argument("--no-solo", action="store_true", help="skip the one-job-alone measurement")
    ap.add_argument("--rescore", action="store_true",
                    help="after every job is e-mailed, re-score the N jobs with `igait rescore` (one asset backfill "
                         "the daemon runs) and check it: every job re-scored once, no second e-mail")
    ap.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (default: 900 + 600 N)")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it (default: a temporary one)")
    args = ap.parse_args(argv)
    timeout = args.timeout or 900 + 600 * args.n
    work = args.keep or Path(tempfile.mkdtemp(prefix="igait-load-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, work, timeout)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _run(args, work: Path, timeout: float) -> int:
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    from igait_pipeline.status.jobdoc import job_store_from_uri
    from igait_pipeline.storage import storage_from_uri

    front, side = clips(args.clip)
    mode = f"{'PostgreSQL' if args.postgres else 'SQLite'} instance, {'GCS emulator' if args.gcs else 'local'} storage"
    print(f"load: {args.n} jobs, {mode}, clips front {front.name} side {side.name}; work {work}", flush=True)
    with environment(work, args.postgres, args.gcs) as setup:
        if args.status_interval:
            from igait_pipeline.status.sensors import INTERVAL_ENV

            setup.env[INTERVAL_ENV] = str(args.status_interval)
        storage = storage_from_uri(setup.storage_uri)
        # The instance's storage is created here, before the daemon and the exporter start: processes that open a
        # fresh SQLite instance at the same moment race to create its tables and one of them crashes
        # ("table alembic_version already exists"). scripts/setup.sh does the same for .dagster_home.
        instance = DagsterInstance.get()
        daemon = Daemon(setup.env, work / "daemon.log")
        metrics_port = _free_port()
        with open(work / "metrics.log", "wb") as mlog:
            exporter = subprocess.Popen([str(BIN / "igait-metrics"), "--port", str(metrics_port)], env=setup.env,
                                        cwd=REPO, stdin=subprocess.DEVNULL, stdout=mlog, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        sampler = MemorySampler(setup.mark)
        obs = Observed()
        rescored = None
        try:
            daemon.start()
            sampler.start()
            running_statuses = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
            last_sample = [0.0]

            def sample() -> None:
                now = time.time()
                if now - last_sample[0] < 5.0:
                    return
                last_sample[0] = now
                q = scrape_queue(metrics_port)
                if q is not None:
                    obs.queue.append((now, q))
                obs.running.append((now, instance.get_runs_count(RunsFilter(statuses=running_statuses))))

            # 1. one job alone
            solo = None
            if not args.no_solo:
                t = upload(storage, "solo_1", front, side, email_of("solo_1"))
                obs.uploaded["solo_1"] = t
                if not wait_for_emails(setup, ["solo_1"], timeout, sample):
                    print("load: the one job alone got no e-mail in time; see daemon.log", flush=True)
                    return 2
                solo = mails_by_job(setup.smtp, ["solo_1"])["solo_1"][0] - t
                print(f"one job alone: {solo:.1f} s upload to e-mail", flush=True)

            # 2. N jobs within the spread, the daemon killed once in the middle
            jobs = [f"load{i:03d}_1" for i in range(args.n)]
            kill_after = max(1, args.n // 2)
            obs.t0 = time.time()
            for i, job in enumerate(jobs):
                due = obs.t0 + i * args.spread / args.n
                while time.time() < due:
                    sample()
                    time.sleep(min(0.5, max(0.0, due - time.time())))
                obs.uploaded[job] = upload(storage, job, front, side, email_of(job))
            print(f"uploaded {args.n} jobs in {time.time() - obs.t0:.1f} s", flush=True)

            def tick() -> None:
                sample()
                if args.no_kill or obs.killed_at is not None:
                    return
                statuses = [r.dagster_run.status.value for j in jobs for r in runs_of(instance, j)]
                ended = sum(1 for s in statuses if s in TERMINAL)
                if ended >= kill_after:
                    daemon.kill()
                    if args.kill_all:
                        for pid in marked_processes(setup.mark):
                            if pid != exporter.pid:
                                try:
                                    os.kill(pid, signal.SIGKILL)
                                except ProcessLookupError:
                                    pass
                    obs.killed_at = time.time()
                    print(f"daemon SIGKILLed at +{obs.killed_at - obs.t0:.0f} s ({ended} runs ended, "
                          f"{sum(1 for s in statuses if s in ('STARTING', 'STARTED'))} running, "
                          f"{sum(1 for s in statuses if s in ('QUEUED', 'NOT_STARTED'))} queued, "
                          f"{len(jobs) - len({j for j in jobs if runs_of(instance, j)})} jobs without a run yet)"
                          + (", with every process it started" if args.kill_all else ""), flush=True)
                    time.sleep(args.down)
                    daemon.start()
                    obs.restarted_at = time.time()
                    print(f"daemon restarted at +{obs.restarted_at - obs.t0:.0f} s", flush=True)

            all_mailed = wait_for_emails(setup, jobs, timeout, tick)
            end = time.time()
            # two more status-sensor ticks: a second e-mail for a job would come now (with --rescore, the ticks
            # after the backfill serve for both)
            if not (args.rescore and all_mailed):
                settle(instance, end, sample)
            if args.rescore and all_mailed:
                try:
                    rescored = rescore(setup, instance, jobs, timeout, sample)
                except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
                    print(f"rescore: {e}", flush=True)
        finally:
            daemon.stop()
            exporter.terminate()
            try:
                exporter.wait(30)
            except subprocess.TimeoutExpired:
                exporter.kill()
                exporter.wait()
            time.sleep(2.0)
            sampler.stop.set()
            sampler.join()
        orphans = lingering(setup.mark)
        for pid in orphans:  # only processes this bench started (they carry its mark)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        # ---- what happened ----
        store = job_store_from_uri(setup.status_uri)
        mails = mails_by_job(setup.smtp, jobs)
        docs = {j: store.get(j) for j in jobs}
        completed = sum(1 for d in docs.values() if d and d["status"] == "completed")
        failed = sum(1 for d in docs.values() if d and d["status"] == "failed")
        records = {j: runs_of(instance, j) for j in jobs}
        lost = sum(1 for j in jobs if not records[j] or not docs[j] or docs[j]["status"] not in ("completed", "failed"))
        originals = {j: [r for r in rs if "dagster/parent_run_id" not in r.dagster_run.tags]
                     for j, rs in records.items()}
        duplicates = sum(max(0, len(o) - 1) for o in originals.values())
        retried = sum(len(rs) - len(originals[j]) for j, rs in records.items())
        emails = sum(len(v) for v in mails.values())
        all_records = instance.get_run_records()
        intervals = [(r.start_time, r.end_time or end) for r in all_records if r.start_time]
        max_running = _max_overlap(intervals)
        same_job_overlaps = sum(_max_overlap([(r.start_time, r.end_time or end) for r in rs if r.start_time]) > 1
                                for rs in records.values())
        latencies = sorted(mails[j][0] - obs.uploaded[j] for j in jobs if mails.get(j))
        wall = (max(m[0] for m in mails.values()) - obs.t0) if mails else end - obs.t0

    print()
    print(f"clips: front {front.name}, side {side.name} ({args.clip}); {mode}")
    if solo:
        print(f"throughput: {len(mails) / wall * 3600:.1f} jobs/h under load ({len(mails)} jobs e-mailed "
              f"{wall:.0f} s after the first upload) vs {3600 / solo:.1f} jobs/h one at a time "
              f"(one job {solo:.0f} s; N x one job = {args.n * solo:.0f} s)")
    else:
        print(f"throughput: {len(mails) / wall * 3600:.1f} jobs/h under load ({wall:.0f} s)")
    print("queue depth (jobs_in_queue, every ~30 s): " + " ".join(
        f"+{t - obs.t0:.0f}s:{q:.0f}" for t, q in _thin(obs.queue, obs.t0, 30)))
    print(f"queue depth max {max((q for _, q in obs.queue), default=0):.0f}; "
          f"runs running at once: max {max_running} (run records), sampled max "
          f"{max((n for _, n in obs.running), default=0)}; limit max_concurrent_runs={setup.max_concurrent_runs}; "
          f"jobs with overlapping runs (tag limit 1): {same_job_overlaps}")
    if latencies:
        print(f"upload to e-mail: median {statistics.median(latencies):.1f} s, p95 {_p95(latencies):.1f} s, "
              f"max {latencies[-1]:.1f} s")
    print(f"peak memory: {sampler.peak_kib / 1024:.0f} MiB PSS over {sampler.peak_procs} processes")
    if obs.killed_at:
        print(f"daemon SIGKILLed at +{obs.killed_at - obs.t0:.0f} s, restarted at +{obs.restarted_at - obs.t0:.0f} s")
    print(f"runs: {sum(len(r) for r in records.values())} for {args.n} jobs, {retried} run retries; "
          f"jobs failed {failed}; jobs with more than one e-mail {sum(1 for v in mails.values() if len(v) > 1)}; "
          f"orphaned processes after the daemon stopped {len(orphans)}")
    if not all_mailed:
        print(f"timed out after {timeout:.0f} s: jobs without e-mail "
              f"{[j for j in jobs if j not in mails]}")
    for j in jobs:
        if not docs[j] or docs[j]["status"] != "completed" or len(mails.get(j, [])) != 1 or len(originals[j]) != 1:
            runs = [f"{r.dagster_run.run_id[:8]}:{r.dagster_run.status.value}" for r in records[j]]
            print(f"  {j}: document {docs[j] and docs[j]['status']}, runs {runs}, e-mails {len(mails.get(j, []))}")
    rescore_ok = True
    if args.rescore:
        rescore_ok = bool(rescored and rescored.ok(docs))
        print(rescored.summary(docs) if rescored else "rescore: not run (not every job was e-mailed)")
    print(f"load: {args.n} jobs, {completed} completed, {lost} lost, {duplicates} duplicate runs, {emails} e-mails",
          flush=True)
    one_each = all(len(mails.get(j, [])) == 1 for j in jobs)
    return 0 if lost == 0 and duplicates == 0 and one_each and same_job_overlaps == 0 and rescore_ok and (
        setup.max_concurrent_runs is None or max_running <= setup.max_concurrent_runs) else 1


@dataclass
class Rescored:
    backfill_id: str
    model: str  # "name version" the jobs were re-scored with
    status: str  # the backfill's status at the end
    runs: dict[str, list[str]]  # job ID -> statuses of the backfill's runs of it
    seconds: float  # submitted to every run ended
    submitted_at: float  # when `igait rescore` was typed (epoch seconds)
    ticks_after: int = 0  # status-sensor ticks ended since the backfill's last run did (2 awaited)

    def updated(self, doc: dict | None) -> bool:
        """The document shows the re-scored result: stages 6 and 7 completed after the backfill was submitted,
        result.model the model it re-scored with, still completed."""
        from igait_pipeline.status.jobdoc import utc

        if not doc or doc["status"] != "completed" or (doc.get("result") or {}).get("model") != self.model:
            return False
        done = [(doc["stages"].get(s) or {}).get("completed_at") for s in ("6", "7")]
        return all(t is not None and utc(t).timestamp() >= self.submitted_at for t in done)

    def ok(self, docs: dict) -> bool:
        return (self.status == "COMPLETED_SUCCESS" and all(v == ["SUCCESS"] for v in self.runs.values())
                and all(self.updated(d) for d in docs.values()) and self.ticks_after >= 2)

    def summary(self, docs: dict) -> str:
        once = sum(1 for v in self.runs.values() if v == ["SUCCESS"])
        shown = sum(1 for d in docs.values() if self.updated(d))
        return (f"rescore: backfill {self.backfill_id} {self.status} in {self.seconds:.0f} s with {self.model}; "
                f"{once} of {len(self.runs)} jobs re-scored by exactly one successful run; "
                f"{shown} documents updated (stages 6-7 re-done, result.model {self.model!r}); "
                f"{self.ticks_after} status-sensor ticks after its last run")


def rescore(setup: Setup, instance, jobs: list[str], timeout: float, sample) -> Rescored:
    """`igait rescore JOBS` as an operator types it (it submits one asset backfill of prediction + results_archive),
    then wait until the daemon has run it to the end, and until two status-sensor ticks have ended since its last
    run did (a second e-mail would come now; the backfill daemon marks the backfill complete up to 30 s after its
    runs end, and the ticks in that time count)."""
    import json

    from dagster import RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus

    from igait_pipeline.partitions import PARTITION_TAG

    t0 = time.time()
    out = subprocess.run([str(BIN / "igait"), "rescore", *jobs], env=setup.env, cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"igait rescore failed ({out.returncode}): {out.stderr[-2000:]}")
    sub = json.loads(out.stdout)
    backfill_id = sub["backfill"]
    print(f"rescore: backfill {backfill_id} submitted for {sub['jobs']} jobs with {sub['model']}", flush=True)
    deadline = time.time() + timeout
    ongoing = (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING)
    runs: list = []
    runs_ended = None  # since when every run the backfill has launched has ended
    while time.time() < deadline:
        sample()
        backfill = instance.get_backfill(backfill_id)
        runs = instance.get_runs(RunsFilter.for_backfill(backfill_id))
        ended = bool(runs) and all(r.status.value in TERMINAL for r in runs)
        runs_ended = (runs_ended or time.time()) if ended else None
        if backfill.status not in ongoing and (ended or not runs):
            break
        time.sleep(2.0)
    seconds = time.time() - t0
    ticks = settle(instance, runs_ended or time.time(), sample)
    by_job: dict[str, list[str]] = {j: [] for j in jobs}
    for r in runs:
        by_job.setdefault(r.tags.get(PARTITION_TAG, "?"), []).append(r.status.value)
    return Rescored(backfill_id, sub["model"], instance.get_backfill(backfill_id).status.value, by_job, seconds, t0,
                    ticks)


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    n = best = 0
    for _, d in edges:
        n += d
        best = max(best, n)
    return best


def _p95(xs: list[float]) -> float:
    """Nearest-rank 95th percentile of sorted values (of 20: the 19th)."""
    return xs[max(0, math.ceil(0.95 * len(xs)) - 1)]


def _thin(series: list[tuple[float, float]], t0: float, every: float) -> list[tuple[float, float]]:
    out, last = [], None
    for t, v in series:
        if t >= t0 and (last is None or t - last >= every):
            out.append((t, v))
            last = t
    return out


if __name__ == "__main__":
    sys.exit(main())
