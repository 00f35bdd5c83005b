"""Prometheus metrics of the iGait pipeline, read from the Dagster instance (runs and event log).

    python -m igait_pipeline.status.metrics --port 9464          # or the console script igait-metrics

serves http://HOST:PORT/metrics beside the Dagster daemon (same $DAGSTER_HOME). Each scrape first reads what
happened since the previous scrape (the same reader as the status sensor: upload materializations, run starts
and ends, each run's step events), so counts are current and a scrape costs a few indexed queries. On start the
whole history is read once, so the totals survive a restart of the exporter.

    jobs_submitted_total                      jobs whose upload was seen (distinct job IDs)
    jobs_completed_total{status}              job runs that ended: completed (success up to the archive) |
                                              failed (failed or canceled, and not retried automatically)
    stage_runs_total{stage,status}            stage executions that ended: success | failed | skipped
    stage_duration_seconds{stage}             histogram of successful stage executions' durations
    jobs_in_queue                             runs of jobs waiting to start (queued or not started)

`stage` is the stage number 1..7 (asset metadata `igait/stage`), as in the job document. The stage numbers come
from the code location, loaded with --definitions (default: igait_pipeline.definitions).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable

from dagster import DagsterInstance, DagsterRunStatus, Definitions, RunsFilter
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from igait_pipeline.layout import FINAL_STAGE
from igait_pipeline.observability.sensor_log import install as install_log_handlers
from igait_pipeline.status.events import JobEventReader, ReaderCursor, StageMap, job_id_of_run
from igait_pipeline.status.jobdoc import STAGE_NUMBERS, JobEvent

DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
QUEUED_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
DEFAULT_DEFINITIONS = "igait_pipeline.definitions"
log = logging.getLogger("igait_pipeline.status.metrics")  # not __name__: "__main__" under -m


class PipelineMetrics:
    """A Prometheus collector over a Dagster instance; register it in a CollectorRegistry."""

    def __init__(self, instance: DagsterInstance, stages: StageMap, max_pages_per_scrape: int = 50):
        self.instance = instance
        self.reader = JobEventReader(instance, stages)
        self.cursor = ReaderCursor()
        self.max_pages = max_pages_per_scrape
        self._lock = threading.Lock()
        self.submitted: set[str] = set()
        self.completed: Counter[str] = Counter()
        self.stage_runs: Counter[tuple[str, str]] = Counter()
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(DURATION_BUCKETS) + 1))
        self.duration_sum: dict[str, float] = defaultdict(float)
        self._open: dict[str, dict[int, str]] = defaultdict(dict)  # run id -> stage -> last status in the run

    # ---- reading ----
    def refresh(self) -> None:
        for _ in range(self.max_pages):
            events, cursor = self.reader.read(self.cursor)
            for ev in events:
                self._count(ev)
            moved = cursor.after != self.cursor.after
            self.cursor = cursor
            if not moved:
                return

    def _count(self, ev: JobEvent) -> None:
        if ev.kind == "upload":
            self.submitted.add(ev.job_id)
        elif ev.kind == "run_start":
            self._open[ev.run_id] = {n: "pending" for n in ev.planned}
        elif ev.kind == "step_start":
            self._open[ev.run_id][ev.stage] = "processing"
        elif ev.kind in ("step_success", "step_failure", "step_skipped"):
            status = {"step_success": "success", "step_failure": "failed", "step_skipped": "skipped"}[ev.kind]
            self._open[ev.run_id][ev.stage] = status
            self.stage_runs[(str(ev.stage), status)] += 1
            if status == "success" and ev.duration_ms is not None:
                self._observe(str(ev.stage), ev.duration_ms / 1000.0)
        elif ev.kind == "run_end":
            seen = self._open.pop(ev.run_id, {})
            for n in ev.planned:
                state = seen.get(n, "pending")
                if state == "pending":
                    self.stage_runs[(str(n), "skipped")] += 1
                elif state == "processing":
                    self.stage_runs[(str(n), "failed")] += 1
            if ev.outcome == "success" and FINAL_STAGE in ev.planned:
                self.completed["completed"] += 1
            elif ev.outcome in ("failure", "canceled") and not ev.will_retry:
                self.completed["failed"] += 1

    def _observe(self, stage: str, seconds: float) -> None:
        counts = self.buckets[stage]
        for i, le in enumerate(DURATION_BUCKETS):
            if seconds <= le:
                counts[i] += 1
        counts[-1] += 1
        self.duration_sum[stage] += seconds

    def queued(self) -> int:
        runs = self.instance.get_runs(filters=RunsFilter(statuses=QUEUED_STATUSES), limit=10_000)
        return sum(1 for r in runs if job_id_of_run(r) is not None)

    # ---- the Collector protocol ----
    def describe(self) -> Iterable:
        return []  # metrics are produced at scrape time only

    def collect(self) -> Iterable:
        with self._lock:
            try:
                self.refresh()
            except Exception:
                log.exception("scrape failed: could not read the Dagster instance")
                raise
            sub = CounterMetricFamily("jobs_submitted", "Jobs whose upload the pipeline has seen.")
            sub.add_metric([], len(self.submitted))
            yield sub
            done = CounterMetricFamily("jobs_completed", "Job runs that ended, by the job status they left.",
                                       labels=["status"])
            for status in ("completed", "failed"):
                done.add_metric([status], self.completed[status])
            yield done
            runs = CounterMetricFamily("stage_runs", "Stage executions that ended, by outcome.",
                                       labels=["stage", "status"])
            for n in STAGE_NUMBERS:
                for status in ("success", "failed", "skipped"):
                    runs.add_metric([str(n), status], self.stage_runs[(str(n), status)])
            yield runs
            hist = HistogramMetricFamily("stage_duration_seconds", "Duration of successful stage executions.",
                                         labels=["stage"])
            for n in STAGE_NUMBERS:
                counts = self.buckets[str(n)]
                hist.add_metric([str(n)], [(_le(le), c) for le, c in zip(DURATION_BUCKETS, counts)]
                                + [("+Inf", counts[-1])], self.duration_sum[str(n)])
            yield hist
            q = GaugeMetricFamily("jobs_in_queue", "Runs of jobs waiting to start (queued or not yet started).")
            q.add_metric([], self.queued())
            yield q


def _le(v: float) -> str:
    return f"{v:g}" if v != int(v) else f"{v:.1f}"


def load_definitions(module_name: str) -> Definitions:
    """The Definitions object of a module (its `defs`, else the only Definitions among its attributes)."""
    module = importlib.import_module(module_name)
    if isinstance(getattr(module, "defs", None), Definitions):
        return module.defs
    found = [v for v in vars(module).values() if isinstance(v, Definitions)]
    if len(found) != 1:
        raise SystemExit(f"{module_name} has {len(found)} Definitions objects and no `defs`: cannot choose")
    return found[0]


def registry_for(instance: DagsterInstance, stages: StageMap) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineMetrics(instance, stages))
    return registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="igait-metrics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=9464, help="port (default 9464; 0 picks a free one)")
    parser.add_argument("--definitions", default=DEFAULT_DEFINITIONS,
                        help=f"module with the code location's Definitions (default {DEFAULT_DEFINITIONS})")
    parser.add_argument("--once", action="store_true", help="print the metrics once and exit")
    args = parser.parse_args(argv)

    stages = StageMap.from_definitions(load_definitions(args.definitions))
    instance = DagsterInstance.get()  # $DAGSTER_HOME, as the daemon uses
    install_log_handlers(instance, "igait-metrics")  # JSON lines where the instance's python_logs says
    registry = registry_for(instance, stages)
    if args.once:
        sys.stdout.write(generate_latest(registry).decode())
        return 0
    server, _thread = start_http_server(args.port, addr=args.host, registry=registry)
    print(f"igait-metrics: serving http://{args.host}:{server.server_port}/metrics", flush=True)
    log.info(f"serving http://{args.host}:{server.server_port}/metrics")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
