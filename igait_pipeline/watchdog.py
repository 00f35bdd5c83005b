"""A step process that outlives its run worker is an orphan: it keeps running MediaPipe, holding hundreds of MB
(and a GPU) for a run that is already over. Dagster's multiprocess executor starts each step as a child process
of the run worker; when the run worker is killed (SIGKILL, OOM killer) nothing tells the children.

`exit_with_parent()` starts, once per process and only in such a child (`multiprocessing.parent_process()` is
set), a daemon thread that watches the run worker; when it is gone, the thread removes the stage's scratch
directories it knows of and ends the process. A step that calls it after the run worker died ends at once. No
Dagster import here.

The run worker is watched through `multiprocessing.parent_process()`, whose sentinel is a pipe the run worker
holds open for as long as it lives; not through the process tree: with the forkserver start method
(igait_pipeline.execution) a step's parent process is the forkserver, which outlives a killed run worker while
any of its steps lives (each holds the forkserver's "alive" pipe). Was: the watcher polled the parent PID, so
the steps of a killed run worker ran on to the end and committed their stage beside the retry run's.
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


def _end() -> None:
    for d in list(scratch_dirs):
        shutil.rmtree(d, ignore_errors=True)
    os._exit(70)  # EX_SOFTWARE: the run worker is gone; nothing to report to


def _watch(parent, poll: float) -> None:
    while parent.is_alive():
        time.sleep(poll)
    _end()


def exit_with_parent(poll: float = POLL_S) -> bool:
    """In a multiprocessing child, end this process soon after the process that started it (the run worker) dies;
    at once if it has died already. True if a watcher runs."""
    global _started
    parent = multiprocessing.parent_process()
    if parent is None:
        return False  # the run worker itself (in-process executor) or a plain script: Dagster watches it
    with _lock:
        if not _started:
            if not parent.is_alive():
                _end()
            threading.Thread(target=_watch, args=(parent, poll), name="igait-parent-watch", daemon=True).start()
            _started = True
    return True
