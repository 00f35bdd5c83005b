"""The issue-12 fault corpus: bad videos, bad metadata, bad job IDs, links out of the root, a full disk, e-mail
against a real SMTP server, a re-upload, two runs of one job and a SIGKILLed run, each against the real code on a
fresh Dagster instance, storage root and job store; and issue 26's stage commits on GCS (the emulator) SIGKILLed at
every point, and transient GCS errors (503, 429, connection resets) injected on the wire by a proxy before the
emulator. Prints one row per case (case, expected, got, ok) and the totals the issues ask to be zero:

    lost jobs | e-mails marked sent the server did not accept | patient values in logs |
    writes outside the root | half-written stages | orphaned processes | orphaned commit objects (GCS)

    .venv/bin/python -m bench.faults [--no-kill] [--no-gcs]
        (--no-kill skips the SIGKILLed real run: ~1 min, MediaPipe; --no-gcs the GCS cases: the transient
        errors, ~1 min, and the SIGKILLed commits, ~4 min)

Bad videos are made with ffmpeg from the public sample clip. The disk-full case writes a stage onto a real 1 MiB
tmpfs when this process may mount one (root), else it raises ENOSPC at the storage write boundary and says so.
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOOD = {"age": 7.25, "sex": "F", "height": "131.7 cm", "weight": "27.35 kg", "ethnicity": "Zorblaxian",
        "email": "zq.parent@example.org"}
PATIENT_VALUES = ["7.25", "131.7", "27.35", "Zorblaxian", "zq.parent", "913.5", "912.25", "31337", "zq.other",
                  "zq.kid", "zq.third"]


@dataclass
class Totals:
    rows: list[tuple[str, str, str, bool]] = field(default_factory=list)
    lost_jobs: int = 0
    unaccepted_marked_sent: int = 0
    patient_values_in_logs: int = 0
    writes_outside_root: int = 0
    half_written_stages: int = 0
    orphaned_processes: int = 0
    orphaned_commit_objects: int = 0

    def row(self, case: str, expected: str, got: str, ok: bool) -> None:
        self.rows.append((case, expected, got, ok))
        print(f"  {'ok ' if ok else 'BAD'} {case}: {got}", flush=True)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_media(work: Path) -> dict[str, Path]:
    from igait_pipeline.sample import fetch_sample

    sample = fetch_sample()
    m = {"walk": work / "walk.mp4", "one_second": work / "one_second.mp4", "corrupt": work / "corrupt.mp4",
         "audio_only": work / "audio_only.mp4", "empty": work / "empty.mp4"}
    ffmpeg("-ss", "2.5", "-t", "2.5", "-i", str(sample), "-an", "-c:v", "libx264", "-preset", "ultrafast",
           str(m["walk"]))
    ffmpeg("-ss", "3.0", "-t", "1.0", "-i", str(sample), "-an", "-c:v", "libx264", "-preset", "ultrafast",
           str(m["one_second"]))
    m["corrupt"].write_bytes(sample.read_bytes()[-200_000:])
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "aac", str(m["audio_only"]))
    m["empty"].write_bytes(b"")
    return m


def put(storage, job_id: str, front, side, meta) -> None:
    from igait_pipeline.layout import job_key

    if front is not None:
        storage.upload(front, job_key(job_id, 0, "front.mp4"))
    if side is not None:
        storage.upload(side, job_key(job_id, 0, "side.mp4"))
    if meta is not None:
        storage.write_bytes(job_key(job_id, 0, "metadata.json"),
                            (meta if isinstance(meta, str) else json.dumps(meta)).encode())


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def half_written(storage, root: Path) -> int:
    """Stage folders that hold some but not all of the files the stage always writes, and leftover staging."""
    from igait_pipeline.layout import STAGES

    n = 0
    for job in (root / "jobs").iterdir() if (root / "jobs").is_dir() else []:
        if job.is_symlink():
            continue
        for st in STAGES[1:]:
            d = job / f"stage_{st.number}"
            names = {p.name for p in d.iterdir()} if d.is_dir() and not d.is_symlink() else set()
            if names and st.number != 2 and not set(st.files) <= names:
                n += 1
        n += sum(1 for p in job.iterdir() if p.name.endswith(".partial"))
    return n


def corpus(t: Totals, work: Path, media: dict[str, Path]) -> None:
    from dagster import build_sensor_context, instance_for_test, materialize

    from igait_pipeline import assets, cli
    from igait_pipeline.layout import JobIdError, validate_job_id
    from igait_pipeline.resources import build_resources
    from igait_pipeline.resources.status import JobStatusResource, SmtpResource
    from igait_pipeline.schemas import normalize_email
    from igait_pipeline.sensors import uploads_sensor
    from igait_pipeline.status.jobdoc import job_store_from_uri
    from igait_pipeline.status.sensors import send_pending_emails
    from igait_pipeline.storage import LocalStorage, StageFiles, write_stage
    from igait_pipeline_tests.fixtures.smtp import _serve

    root, outside = work / "storage", work / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    st = LocalStorage(root)
    status_uri = f"sqlite:{work}/status.sqlite3"
    store = job_store_from_uri(status_uri)
    log_file = work / "all.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # the SMTP server's own session log

    # ---- uploads: bad videos, bad metadata, bad IDs, links ----
    uploads = {
        "good_1": (media["walk"], media["walk"], GOOD),
        "early_1": (None, None, GOOD),  # metadata.json before the videos
        "empty_1": (media["walk"], media["empty"], GOOD),
        "meta_1": (media["walk"], media["walk"], {**GOOD, "height": "913.5 cm"}),
        "meta_2": (media["walk"], media["walk"], {**GOOD, "weight": "912.25 lb"}),
        "meta_3": (media["walk"], media["walk"], {**GOOD, "age": True, "ethnicity": 31337}),
        "meta_4": (media["walk"], media["walk"], {**GOOD, "email": "zq.other@example.org, zq.third@example.org"}),
        "meta_5": (media["walk"], media["walk"], {**GOOD, "email": "zq.kid@example.org\n"}),
        "meta_6": (media["walk"], media["walk"], "{not json"),
        "short_1": (media["walk"], media["one_second"], GOOD),
        "corrupt_1": (media["walk"], media["corrupt"], GOOD),
        "audio_1": (media["audio_only"], media["walk"], GOOD),
    }
    for job_id, (f, s, m) in uploads.items():
        put(st, job_id, f, s, m)
    for bad_id in ("a_1\n", "u" * 238 + "_1"):  # a folder name is at most 255 bytes on local disk
        d = root / "jobs" / bad_id / "stage_0"
        d.mkdir(parents=True)
        for n in ("front.mp4", "side.mp4"):
            shutil.copyfile(media["walk"], d / n)
        (d / "metadata.json").write_text(json.dumps(GOOD))
    shutil.copytree(root / "jobs" / "good_1", outside / "evil")
    (root / "jobs" / "linked_1").symlink_to(outside / "evil")
    put(st, "linkmeta_1", media["walk"], media["walk"], GOOD)
    (root / "jobs" / "linkmeta_1" / "stage_0" / "metadata.json").unlink()
    (root / "jobs" / "linkmeta_1" / "stage_0" / "metadata.json").symlink_to(outside / "secret.txt")
    outside_before = snapshot(outside)

    resources = {"storage": build_resources(str(root))["storage"], "job_status": JobStatusResource(uri=status_uri)}
    with instance_for_test() as instance:
        def tick(cursor):
            result = uploads_sensor(build_sensor_context(instance=instance, cursor=cursor, resources=resources))
            for req in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            for ev in result.asset_events or []:
                instance.report_runless_asset_event(ev)
            return result

        first = tick(None)
        runs = {r.partition_key for r in first.run_requests}
        put(st, "early_1", media["walk"], media["walk"], None)  # the videos arrive late
        later = time.time() + 3
        os.utime(root / "jobs/early_1/stage_0/side.mp4", (later, later))
        second = tick(first.cursor)
        runs |= {r.partition_key for r in second.run_requests}
        expected_runs = {"good_1", "early_1", "short_1", "corrupt_1", "audio_1"}
        t.lost_jobs += len(expected_runs - runs)
        t.row("metadata.json before the videos", "runs once the videos arrive",
              "ran" if "early_1" in runs else "never ran (lost)", "early_1" in runs)
        for job_id, why in (("empty_1", "side.mp4 is empty"), ("meta_1", "height is outside"),
                            ("meta_2", "weight is outside"), ("meta_3", "age must be a number"),
                            ("meta_4", "one plain address"), ("meta_5", "white space or a control"),
                            ("meta_6", "not valid JSON"), ("linked_1", "is a symbolic link"),
                            ("linkmeta_1", "is a symbolic link")):
            doc = store.get(job_id) or {}
            got = doc.get("error") or "no document"
            ok = doc.get("status") == "failed" and why in got and job_id not in runs
            t.lost_jobs += 0 if doc else 1  # a refusal nobody can see is a lost job
            t.row(f"refused upload {job_id}", f"failed at stage 0: …{why}…", got, ok)
        for bad_id in ("a_1\n", "u" * 238 + "_1"):
            t.row(f"job ID {bad_id[:12]!r}{'…' if len(bad_id) > 12 else ''}", "refused, no partition",
                  "partition added" if bad_id in runs else "refused", bad_id not in runs)
        for arg, why in (("", "is empty"), ("a_1\n", "white space"), ("u" * 298 + "_1", "too long")):
            try:
                validate_job_id(arg)
                got = "accepted"
            except JobIdError as e:
                got = str(e)[:70]
            code = cli.main(["submit", "--front", str(media["walk"]), "--side", str(media["walk"]), "--metadata",
                             str(_meta_file(work)), "--job-id", arg])
            t.row(f"igait submit --job-id {arg[:12]!r}", f"exit 2: {why}", f"exit {code}: {got}",
                  code == 2 and why in got)

        # ---- stage 1 on the accepted bad videos: clear causes, no scratch left ----
        own_tmp = work / "tmp"  # this process's temp dir: other processes on the machine make scratch folders too
        own_tmp.mkdir()
        tempfile.tempdir = str(own_tmp)
        for job_id, why in (("short_1", "too short: 1.00 s long, the minimum is 2 s"),
                            ("corrupt_1", "side video"), ("audio_1", "front video")):
            res = materialize([assets.upload, assets.converted_video], partition_key=job_id, instance=instance,
                              resources=build_resources(str(root)), raise_on_error=False)
            msg = next((e.event_specific_data.error.message for e in res.all_events if e.is_step_failure), "ok")
            t.row(f"stage 1 on {job_id}", f"job {job_id}: video conversion failed: …{why}…",
                  msg.strip().splitlines()[0][:110], f"job {job_id}: video conversion failed" in msg and why in msg)
        leftover = [p.name for p in own_tmp.glob("igait-*")]
        tempfile.tempdir = None
        t.row("scratch folders after failed stages", "none left", f"{len(leftover)} left", not leftover)

        # ---- re-upload of a job: whole graph again, no mixed generations ----
        st.write_bytes("jobs/good_1/stage_4/side_keypoints.json", b"{}")  # stands for an old generation
        put(st, "good_1", None, None, {**GOOD, "age": 6.5})
        t2 = time.time() + 6
        os.utime(root / "jobs/good_1/stage_0/metadata.json", (t2, t2))
        third = tick(second.cursor)
        left = [o.key for o in st.list("jobs/good_1/") if "/stage_0/" not in o.key]
        rerun = [r.run_key for r in third.run_requests]
        t.row("re-upload of a processed job", "one whole-graph run, old stages gone",
              f"runs {rerun}, {len(left)} old files left", len(rerun) == 1 and not left)
        again = tick(third.cursor)
        t.row("the same re-upload seen again", "no second run", f"{len(again.run_requests)} runs",
              not again.run_requests)

        # ---- e-mail against a real SMTP server ----
        for job_id in [j for j in uploads if store.get(j)]:
            store.update(job_id, lambda d: {**d, "email_retry_at": "2000-01-01T00:00:00+00:00"})
        accepted_total, marked = set(), set()
        outcomes = []
        for utf8 in (False, True):
            gen = _serve(smtputf8=utf8)
            server = next(gen)
            try:
                store.update("meta_1", lambda d: {**d, "email": "élodie.zq@exämple.de"} if not utf8 else d)
                if utf8:
                    store.update("meta_1", lambda d: {**d, "email_status": "retry", "email_attempts": 0,
                                                      "email_retry_at": None})
                else:
                    server.refuse_data = 1  # the first message is refused at the end of DATA
                settings = SmtpResource(host=server.host, port=server.port, timeout=5).settings()
                res = send_pending_emails(store, st, settings, logging.getLogger("igait_pipeline.bench"),
                                          timedelta(days=7), 50)
                t.row(f"e-mails, server {'with' if utf8 else 'without'} SMTPUTF8", "sent only what is accepted",
                      ", ".join(f"{k}:{v}" for k, v in sorted(res.items())), True)
                outcomes.append(res.get("meta_1"))
                accepted_total |= {m.rcpt_tos[0] for m in server.messages}
            finally:
                next(gen, None)
        for doc in store.find(limit=1000):
            if doc.get("email_sent"):
                marked.add(doc["email"])
        t.unaccepted_marked_sent = len({normalize_email(a) for a in marked} - accepted_total)
        t.row("non-ASCII address", "refused without SMTPUTF8, sent with it",
              f"without: {outcomes[0]}, with: {outcomes[1]}", outcomes == ["refused", "sent"])

        # ---- events and logs: no patient value ----
        texts = [log_file.read_text(errors="replace")]
        for run_id in [r.run_id for r in instance.get_runs()] + [""]:
            for entry in instance.all_logs(run_id):
                texts += [entry.user_message or "", repr(entry.dagster_event) if entry.dagster_event else ""]
    logging.getLogger().removeHandler(handler)
    everything = "\n".join(texts)
    found = [v for v in PATIENT_VALUES if v in everything]
    t.patient_values_in_logs = len(found)
    t.row("patient values in logs and the event log", "none", ", ".join(found) or "none", not found)
    t.writes_outside_root = sum(1 for k, v in snapshot(outside).items() if outside_before.get(k) != v) + \
        len(set(snapshot(outside)) ^ set(outside_before))
    t.row("writes outside the storage root", "none", f"{t.writes_outside_root}", t.writes_outside_root == 0)

    # ---- disk full in the middle of a stage ----
    disk_root, how = _small_disk(work)
    try:
        st2 = LocalStorage(disk_root / "root")
        small = work / "small"
        small.mkdir()
        for n in ("front.mp4", "side.mp4"):
            (small / n).write_bytes(b"v1" * 100)
        write_stage(st2, "full_1", 1, StageFiles({n: small / n for n in ("front.mp4", "side.mp4")}))
        big = work / "big"
        big.mkdir()
        (big / "front.mp4").write_bytes(b"f" * 300_000)
        (big / "side.mp4").write_bytes(b"s" * 900_000)
        try:
            if how == "tmpfs":
                write_stage(st2, "full_1", 1, StageFiles({n: big / n for n in ("front.mp4", "side.mp4")}))
            else:
                _enospc_write(st2, big)
            got = "no error"
        except OSError as e:
            got = f"{errno.errorcode.get(e.errno, e.errno)}"
        kept = {o.key: len(st2.read_bytes(o.key)) for o in st2.list("jobs/full_1/")}
        whole = kept == {"jobs/full_1/stage_1/front.mp4": 200, "jobs/full_1/stage_1/side.mp4": 200}
        t.half_written_stages += 0 if whole else 1
        t.half_written_stages += half_written(st2, st2.root)
        t.row(f"disk full writing stage 1 ({how})", "ENOSPC, previous stage 1 whole",
              f"{got}, stage 1 {'whole' if whole else 'half-written'}", got == "ENOSPC" and whole)
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", "-l", str(disk_root)], check=False)
    t.half_written_stages += half_written(st, root)

    # ---- two runs of one partition ----
    t.row(*_two_runs_one_partition(work))


def _meta_file(work: Path) -> Path:
    p = work / "meta.json"
    if not p.exists():
        p.write_text(json.dumps(GOOD))
    return p


def _small_disk(work: Path) -> tuple[Path, str]:
    d = work / "small_disk"
    d.mkdir()
    if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)],
                                            capture_output=True).returncode == 0:
        return d, "tmpfs"
    return d, "simulated ENOSPC at the storage write boundary"


def _enospc_write(storage, big: Path) -> None:
    from igait_pipeline.storage import StageFiles, write_stage

    def filling(src, dst, room=[1]):  # noqa: B006 (state across calls)
        if room[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        room[0] -= 1
        shutil.copyfile(src, dst)

    original = storage.replace_prefix
    storage.replace_prefix = lambda prefix, files, transfer=None: original(prefix, files, filling)
    write_stage(storage, "full_1", 1, StageFiles({n: big / n for n in ("front.mp4", "side.mp4")}))


def _two_runs_one_partition(work: Path) -> tuple[str, str, str, bool]:
    """Two queued runs of one partition under the embedded dagster.yaml: the coordinator's tag limits."""
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    home = work / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    instance = DagsterInstance.get()
    try:
        limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        started = DagsterRun(job_name="igait_job", run_id="a" * 8 + "-0000-0000-0000-000000000000",
                             status=DagsterRunStatus.STARTED, tags={"dagster/partition": "good_1"})
        ui_run = DagsterRun(job_name="igait_job", run_id="b" * 8 + "-0000-0000-0000-000000000000",
                            status=DagsterRunStatus.NOT_STARTED, tags={"dagster/partition": "good_1"})
        other = DagsterRun(job_name="igait_job", run_id="c" * 8 + "-0000-0000-0000-000000000000",
                           status=DagsterRunStatus.NOT_STARTED, tags={"dagster/partition": "other_1"})
        counter = TagConcurrencyLimitsCounter(limits, [started])
        blocked, free = counter.is_blocked(ui_run), counter.is_blocked(other)
    finally:
        instance.dispose()
    return ("second run of one partition (from the UI)", "waits in the queue; another job's run starts",
            f"same partition {'waits' if blocked else 'starts'}, other {'waits' if free else 'starts'}",
            blocked and not free)


KILL_SCRIPT = """
import sys
from dagster import DagsterInstance, execute_job, reconstructable
from igait_pipeline.definitions import defs

def igait_job():
    return defs.resolve_job_def("igait_job")

if __name__ == "__main__":
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions("jobs", [sys.argv[1]])
    execute_job(reconstructable(igait_job), instance, tags={"dagster/partition": sys.argv[1]})
"""


def _children(pid: int) -> set[int]:
    out = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.add(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def kill_run(t: Totals, work: Path, media: dict[str, Path]) -> None:
    """A real run of igait_job (multiprocess executor) killed with SIGKILL once a step process works."""
    from igait_pipeline.storage import LocalStorage

    root = work / "kill_storage"
    put(LocalStorage(root), "kill_1", media["walk"], media["walk"], GOOD)
    home = work / "kill_home"
    home.mkdir()
    script = work / "kill_run.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(home), "IGAIT_STORAGE_ROOT": str(root),
           "IGAIT_EXECUTOR": "multiprocess", "IGAIT_MAX_CONCURRENT": "1"}
    run = subprocess.Popen([sys.executable, str(script), "kill_1"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    steps: set[int] = set()
    deadline = time.time() + 240
    while time.time() < deadline and run.poll() is None:
        steps = {c for c in _children(run.pid) if "python" in Path(f"/proc/{c}/cmdline").read_bytes().decode(
            errors="replace")}
        if steps and (root / "jobs/kill_1/stage_1").is_dir():  # stage 1 done: a later step is working
            time.sleep(3)
            steps = {c for c in _children(run.pid)} or steps
            break
        time.sleep(0.5)
    if run.poll() is not None:
        t.row("SIGKILL of a run", "step processes end with it", "the run ended before it could be killed", False)
        return
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    time.sleep(10)
    orphans = [p for p in steps if _alive(p)]
    for p in orphans:
        os.kill(p, signal.SIGKILL)
    t.orphaned_processes = len(orphans)
    t.row("SIGKILL of a run while a step works", "no orphaned step process 10 s later",
          f"{len(steps)} step process(es), {len(orphans)} orphaned", not orphans)


def gcs_commit_kills(t: Totals, work: Path) -> None:
    """Issue 26: a stage commit on GCS (the emulator) SIGKILLed before each of its bucket changes; a reader after
    each kill and during the next commit; orphans after the next commit (igait_pipeline_tests.storage.
    test_commit_kill has the mechanics and the same assertions)."""
    from igait_pipeline_tests.fixtures.gcs import start_emulator
    from igait_pipeline_tests.storage.test_commit_kill import CASES, kill_corpus

    with start_emulator() as emulator:
        old = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
        try:
            for st, view in CASES:
                for first in (False, True):
                    got = kill_corpus(f"gs://{emulator.bucket}/faults-{st}-{view}-{int(first)}", st, view, first,
                                      work / f"gcs-{st}-{view}-{int(first)}")
                    kills = len(got["outcomes"]) - 1
                    t.half_written_stages += got["mixed"] + got["bad_reads_during_commit"]
                    t.orphaned_commit_objects += got["orphans"]
                    ok = not (got["mixed"] or got["orphans"] or got["bad_reads_during_commit"])
                    t.row(f"GCS commit of stage {st}{' ' + view if view else ''} killed at each of {kills} points"
                          f" ({'first commit' if first else 'replacing'})",
                          "old whole or new whole; no orphan after the next commit",
                          f"{got['mixed']} mixed, {got['bad_reads_during_commit']} mixed during the next commit, "
                          f"{got['orphans']} orphans", ok)
        finally:
            if old is None:
                os.environ.pop("STORAGE_EMULATOR_HOST", None)
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = old


# (kind, action, skip): requests a storage round trip makes, failed on the wire by the proxy before the emulator
TRANSIENT_CASES = [("upload_start", "503", 0), ("upload_chunk", "503", 1), ("upload_chunk", "reset", 1),
                   ("upload_chunk", "reset_after", 1), ("upload_chunk", "reset_after", 4), ("upload", "429", 0),
                   ("upload", "reset_after", 0), ("download", "503", 1), ("download", "reset", 2), ("get", "500", 0),
                   ("copy", "503", 0), ("copy", "reset_after", 0), ("list", "503", 0), ("delete", "reset_after", 0)]


def gcs_transient(t: Totals, work: Path) -> None:
    """Issue 26: transient GCS errors on the wire (a real proxy between the real client and the emulator,
    igait_pipeline_tests/fixtures/gcs_faults.py): each kind of request failed once (503/429/500, a connection
    reset before the request arrives, or after the emulator acted with the reply lost); the round trip (an 8 MiB
    + 17 B resumable upload in 2 MiB chunks, its download, a small write, copy, listing, delete) must come out
    whole. Then a store that keeps failing: a TransientStorageError naming the key within the retry limit."""
    from google.cloud import storage as gcs

    from igait_pipeline.storage import TransientStorageError
    from igait_pipeline.storage.gcs import RETRY_TIMEOUT_ENV, GCSStorage, MiB
    from igait_pipeline_tests.fixtures.gcs import start_emulator
    from igait_pipeline_tests.fixtures.gcs_faults import Fault, start_front

    big = work / "big.bin"
    big.write_bytes(os.urandom(8 * MiB + 17))
    saved = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", RETRY_TIMEOUT_ENV)}
    with start_emulator() as emulator, start_front(emulator.host) as front:
        os.environ["STORAGE_EMULATOR_HOST"] = front.host
        try:
            st = GCSStorage(emulator.bucket, "transient", gcs.Client(), upload_chunk_size=2 * MiB,
                            download_chunk_size=2 * MiB)
            for kind, action, skip in TRANSIENT_CASES:
                fault = Fault(kind, action=action, skip=skip)
                front.fail(fault)
                t_start = time.monotonic()
                try:
                    st.upload(big, "k/big.bin")
                    same = st.download("k/big.bin", work / "back.bin").read_bytes() == big.read_bytes()
                    st.write_bytes("k/a.json", b"{}")
                    st.copy("k/a.json", "k/b.json")
                    listed = [o.key for o in st.list("k/")] == ["k/a.json", "k/b.json", "k/big.bin"]
                    st.delete("k/b.json")
                    got, ok = (f"whole, {fault.injected} injected, {time.monotonic() - t_start:.1f} s",
                               same and listed and not st.exists("k/b.json") and fault.injected == 1)
                except Exception as e:  # noqa: BLE001 (a row, not a crash)
                    got, ok = f"{type(e).__name__}: {str(e)[:90]}", False
                t.row(f"GCS {kind} {action}{f' after {skip}' if skip else ''}", "absorbed by retries; whole", got, ok)
            os.environ[RETRY_TIMEOUT_ENV] = "2"
            st = GCSStorage(emulator.bucket, "transient", gcs.Client())
            down = Fault(("download", "get"), "k/big.bin", times=-1)
            front.fail(down)
            t_start = time.monotonic()
            try:
                st.read_bytes("k/big.bin")
                got, ok = "no error", False
            except TransientStorageError as e:
                got = f"after {time.monotonic() - t_start:.1f} s, {down.injected} requests failed: {str(e)[:60]}…"
                ok = "k/big.bin" in str(e)
            t.row("GCS unavailable past the retry limit (2 s)", "TransientStorageError naming the key", got, ok)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-kill", action="store_true", help="skip the SIGKILLed real run (MediaPipe)")
    parser.add_argument("--no-gcs", action="store_true",
                        help="skip the GCS cases: transient errors and SIGKILLed commits (about 5 min)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    t = Totals()
    with tempfile.TemporaryDirectory(prefix="igait-faults-") as tmp:
        work = Path(tmp)
        os.environ["IGAIT_CACHE_DIR"] = str(work / "cache")
        print("making bad videos with ffmpeg ...", flush=True)
        media = make_media(work)
        corpus(t, work, media)
        if not args.no_kill:
            kill_run(t, work, media)
        if not args.no_gcs:
            gcs_transient(t, work)
            gcs_commit_kills(t, work)
    width = max(len(r[0]) for r in t.rows)
    print(f"\n{'case':<{width}}  {'expected':<52}  got")
    for case, expected, got, ok in t.rows:
        print(f"{case:<{width}}  {expected:<52}  {got}{'' if ok else '   <-- NOT AS EXPECTED'}")
    totals = {"lost jobs": t.lost_jobs, "e-mails marked sent the server did not accept": t.unaccepted_marked_sent,
              "patient values in logs": t.patient_values_in_logs, "writes outside the root": t.writes_outside_root,
              "half-written stages": t.half_written_stages, "orphaned processes": t.orphaned_processes,
              "orphaned commit objects (GCS)": t.orphaned_commit_objects}
    print("\n" + "\n".join(f"{k}: {v}" for k, v in totals.items()))
    bad = [r for r in t.rows if not r[3]]
    print(f"\n{len(t.rows) - len(bad)}/{len(t.rows)} cases as expected")
    return 0 if not bad and not any(totals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
