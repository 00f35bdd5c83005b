"""The run launcher of the embedded default instance: Dagster's DefaultRunLauncher plus a run-worker health check.

Dagster's run monitoring (the daemon) can mark a run failed when its run worker died, and run retries then start
it again; but it asks the run launcher whether the worker lives, and the DefaultRunLauncher cannot answer, so on
the embedded default a run whose worker was killed (SIGKILL, OOM killer) stayed STARTED for ever. This launcher
answers from the worker's PID, which every run records in its "Started process for run (pid: N)" engine event:
the daemon, the code server and the run workers of the embedded default share one machine. A PID that is gone,
a zombie, or now belongs to a process started after the run worker (PID reuse) means the worker died.

Production (deploy/dagster.prod.yaml) uses the K8sRunLauncher, which checks the run's Kubernetes Job instead.
"""
from __future__ import annotations

import os

from dagster import DagsterEventType, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_SLACK_S = 2.0  # /proc start times are in clock ticks; the event is written just after the worker started


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_state(pid: int) -> tuple[str, float] | None:
    """(state letter, start time in epoch seconds) of a live process, or None if there is none with that PID."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], _boot_time() + int(fields[19]) / _CLOCK_TICKS


def worker_pid(instance, run_id: str) -> tuple[int | None, float]:
    """The run worker's PID and when it was recorded, from the run's engine events."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = (data.metadata or {}).get("pid") if data else None
        if pid is not None:
            return int(getattr(pid, "value", pid)), entry.timestamp
    return None, 0.0


class MonitoredRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers can be health-checked by Dagster's run monitoring (same machine)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        pid, recorded = worker_pid(self._instance, run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker PID recorded yet")
        state = process_state(pid)
        if state is None or state[0] in ("Z", "X"):
            return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone")
        if state[1] > recorded + _SLACK_S:
            return CheckRunHealthResult(WorkerStatus.FAILED,
                                        f"run worker process {pid} is gone (the PID now belongs to a newer process)")
        return CheckRunHealthResult(WorkerStatus.RUNNING)
