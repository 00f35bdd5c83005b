"""A stage on GCS is whole or absent: the committing process SIGKILLed at every point of a commit (the GCS emulator).

A child process commits a new version of a stage with `write_stage` through a real `GCSStorage` that kills its own
process (SIGKILL, no clean-up) just before its n-th change to the bucket (upload, manifest write, copy, delete),
for n = 1, 2, ... until a commit runs through. After every kill a reader (`read_stage`, what each stage's inputs
go through) must see the previous version whole, or the new one whole (or, for a first commit, nothing); never a
mix. Then the next commit runs to completion and must leave no orphan: only its manifest and its one commit folder
besides the final files. During that last commit a reader polls the stage and must never see a mix either.

    python -m igait_pipeline_tests.storage.test_commit_kill ROOT JOB STAGE VIEW VERSION KILL_AT   (the child)
"""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from igait_pipeline.layout import job_key, stage
from igait_pipeline.storage import StageFiles, read_stage, storage_from_uri, write_stage
from igait_pipeline.storage.gcs import GCSStorage

REPO = Path(__file__).resolve().parents[2]
CASES = [(5, None), (4, "front"), (1, "side")]  # a per-job stage, and one view of two per-view stages


def _files(st: int, view: str | None) -> tuple[str, ...]:
    return stage(st).files_of(view)


def _make(tmp: Path, st: int, view: str | None, version: str) -> StageFiles:
    out = tmp / f"v{version}"
    out.mkdir(parents=True, exist_ok=True)
    for name in _files(st, view):
        (out / name).write_bytes(f"{version}:{name}:".encode() * 200)
    return StageFiles({n: out / n for n in _files(st, view)}, scratch=out)


class KillAt(GCSStorage):
    """GCSStorage that SIGKILLs its own process just before its n-th change to the bucket."""

    kill_at = 0
    changes = 0

    def _change(self):
        KillAt.changes += 1
        if KillAt.changes == KillAt.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def upload(self, src, key):
        self._change()
        return super().upload(src, key)

    def write_bytes(self, key, data):
        self._change()
        return super().write_bytes(key, data)

    def copy(self, src_key, dst_key):
        self._change()
        return super().copy(src_key, dst_key)

    def delete(self, key):
        self._change()
        return super().delete(key)


def _child(root: str, job: str, st: int, view: str, version: str, kill_at: int, tmp: str) -> None:
    base = storage_from_uri(root)
    KillAt.kill_at = kill_at
    killer = KillAt(base.bucket_name, base.prefix, base.client)
    write_stage(killer, job, st, _make(Path(tmp), st, view or None, version), view=view or None)
    print(KillAt.changes)


def _commit(root: str, job: str, st: int, view: str | None, version: str, kill_at: int, tmp: Path):
    return subprocess.run([sys.executable, "-m", "igait_pipeline_tests.storage.test_commit_kill", root, job, str(st),
                           view or "", version, str(kill_at), str(tmp)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)


def _seen(storage, job: str, st: int, view: str | None, cache: Path) -> str:
    """Which version a reader sees: 'absent', '1', '2', ..., or 'MIXED ...'."""
    try:
        files = read_stage(storage, job, st, cache, required=_files(st, view), view=view)
    except FileNotFoundError:
        return "absent"
    versions = {p.read_bytes().split(b":")[0].decode() for p in files.files.values()}
    names_ok = set(files.names()) == set(_files(st, view))
    return versions.pop() if len(versions) == 1 and names_ok else f"MIXED {sorted(versions)} {files.names()}"


def _hidden(storage, job: str, st: int) -> tuple[set[str], set[str]]:
    prefix = job_key(job, st, "x")[:-1]
    keys = [o.key[len(prefix):] for o in storage.list(prefix)]
    return ({k for k in keys if k.startswith(".manifest.")},
            {k.split("/")[0] for k in keys if k.startswith(".commit.")})


def kill_corpus(root: str, st: int, view: str | None, first: bool, tmp: Path) -> dict:
    """Kill a commit of (stage, view) at every point, read after each kill, re-commit, check for orphans. Returns
    {"outcomes": [(kill_at, killed|finished, seen)], "mixed": n, "orphans": n, "bad_reads_during_commit": n}."""
    storage = storage_from_uri(root)
    outcomes, orphans, bad_polls = [], 0, 0
    kill_at = 0
    while True:
        kill_at += 1
        job = f"kill{kill_at}_{st}"
        if not first:
            write_stage(storage, job, st, _make(tmp / job, st, view, "1"), view=view)
        res = _commit(root, job, st, view, "2", kill_at, tmp / job)
        done = res.returncode == 0
        if not done and res.returncode != -signal.SIGKILL:
            raise RuntimeError(f"the committing child failed: {res.stderr[-2000:]}")
        outcomes.append((kill_at, "finished" if done else "killed", _seen(storage, job, st, view, tmp / "c" / job)))
        # the next run (or a re-run of the step) commits version 3 while a reader polls the stage
        reader_saw: list[str] = []
        stop = threading.Event()

        def poll(job=job):
            while not stop.is_set():
                reader_saw.append(_seen(storage, job, st, view, tmp / "poll" / job))

        t = threading.Thread(target=poll)
        t.start()
        res3 = _commit(root, job, st, view, "3", 0, tmp / f"{job}-3")
        stop.set()
        t.join()
        if res3.returncode != 0:
            raise RuntimeError(f"the next commit failed: {res3.stderr[-2000:]}")
        bad_polls += sum(1 for s in reader_saw if s not in ("3", "2", "absent" if first else "1"))
        manifests, commits = _hidden(storage, job, st)
        finals_new = all(storage.read_bytes(job_key(job, st, n)).startswith(b"3:") for n in _files(st, view))
        whole = _seen(storage, job, st, view, tmp / "c3" / job) == "3" and finals_new
        orphans += len(commits) - 1 + (manifests != {f".manifest.{view or 'all'}.json"}) + (not whole)
        if done:
            break
    mixed = sum(1 for o in outcomes if o[2] not in (("absent",) if first else ("1",)) + ("2",))
    return {"outcomes": outcomes, "mixed": mixed, "orphans": orphans, "bad_reads_during_commit": bad_polls}


@pytest.mark.slow  # about 4 minutes: 84 child processes against the emulator
@pytest.mark.parametrize("first", [False, True], ids=["replacing", "first-commit"])
@pytest.mark.parametrize("st,view", CASES)
def test_a_commit_killed_at_every_point_leaves_a_whole_stage(gcs_root, tmp_path, st, view, first):
    got = kill_corpus(gcs_root, st, view, first, tmp_path)
    outcomes = got["outcomes"]
    assert got["mixed"] == 0 and got["orphans"] == 0 and got["bad_reads_during_commit"] == 0, got
    assert outcomes[-1][1] == "finished" and len(outcomes) >= 2 * len(_files(st, view)) + 1
    # both sides of the commit point were hit: killed before the manifest (old or absent), after it (new)
    assert {o[2] for o in outcomes if o[1] == "killed"} == {"absent" if first else "1", "2"}, outcomes
    print(f"stage {st} view {view} first={first}: {len(outcomes) - 1} kill points, 0 mixed, 0 orphans")


if __name__ == "__main__":
    root_, job_, stage_, view_, version_, kill_at_, tmp_ = sys.argv[1:8]
    _child(root_, job_, int(stage_), view_, version_, int(kill_at_), tmp_)
