"""A step process that outlives its run worker is an orphan: it keeps running MediaPipe, holding hundreds of MB
(and a GPU) for a run that is already over. Dagster's multiprocess executor starts each step as a child process
of the run worker; when the run worker is killed (SIGKILL, OOM killer) nothing tells the children.

`exit_with_parent()` starts, once per process and only in such a child (`multiprocessing.parent_process()` is
set), a daemon thread that polls the parent's PID; when the process has been re-parented (the run worker is
gone), it removes the stage's scratch directories it knows of and ends the process. No Dagster import here.
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


def _watch(parent: int, poll: float) -> None:
    while True:
        time.sleep(poll)
        if os.getppid() != parent:
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
            if parent == 1:
                os._exit(70)
            threading.Thread(target=_watch, args=(parent, poll), name="igait-parent-watch", daemon=True).start()
            _started = True
    return True
