"""A step process that outlives its run worker is an orphan: it keeps running MediaPipe, holding hundreds of MB
(and a GPU) for a run that is already over. Dagster's multiprocess executor starts each step as a child process
of the run worker; when the run worker is killed (SIGKILL, OOM killer) nothing tells the children.

`exit_with_parent()` starts, once per process and only in such a child (`multiprocessing.parent_process()` is
set), a daemon thread that polls the parent's PID; when the process has been re-parented (the run worker is
gone), it removes the stage's scratch directories it knows of and ends the process. No Dagster import here.

With the forkserver start method (igait_pipeline.execution) a step's parent is the forkserver, not the run
worker, and the forkserver lives as long as any step does (every child holds its "alive" pipe): watching the
parent alone, the steps of a killed run worker ran on to the end and committed their stage beside the retry
run's. So when the parent is a forkserver, the watcher also watches the forkserver's own parent, the run worker
(for a change: in a container the run worker may well be PID 1).
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
import time
from pathlib import Path

POLL_S = 0.5
_started = False
_lock = threading.Lock()
scratch_dirs: set[Path] = set()  # scratch directories of this process, removed if the parent dies


def _ppid_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _forkserver_owner(parent: int) -> int | None:
    """If `parent` is a multiprocessing forkserver, the PID of the process that started it (the run worker)."""
    try:
        if b"multiprocessing.forkserver" not in Path(f"/proc/{parent}/cmdline").read_bytes():
            return None
    except OSError:
        return None
    return _ppid_of(parent)


def _watch(parent: int, owner: int | None, poll: float) -> None:
    while True:
        time.sleep(poll)
        if os.getppid() != parent or (owner is not None and _ppid_of(parent) != owner):
            for d in list(scratch_dirs):
                shutil.rmtree(d, ignore_errors=True)
            os._exit(70)  # EX_SOFTWARE: the run worker is gone; nothing to report to


def exit_with_parent(poll: float = POLL_S) -> bool:
    """In a multiprocessing child, end this process soon after its parent dies. True if a watcher runs."""
    global _started
    if multiprocessing.parent_process() is None:
        return False  # the run worker itself (in-process executor) or a plain script: Dagster watches it
    with _lock:
        if not _started:
            parent = os.getppid()
            owner = _forkserver_owner(parent)
            if parent == 1:
                os._exit(70)
            threading.Thread(target=_watch, args=(parent, owner, poll), name="igait-parent-watch",
                             daemon=True).start()
            _started = True
    return True
