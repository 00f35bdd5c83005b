"""Reading what the pipeline did out of the Dagster instance, in order, as `JobEvent`s.

Two streams, one cursor (`ReaderCursor`, JSON, kept by the sensor as its cursor and by the exporter in memory):

1. The instance-wide stream, ordered by storage id: materializations of the upload asset (stage 0: a job was
   seen) and run status changes (RUN_START, RUN_SUCCESS, RUN_FAILURE, RUN_CANCELED). Both are in the event log's
   index (also with the default run-sharded SQLite storage), queried per type after the cursor's storage id and
   merged; with a page limit, only records up to the lowest "last id" of a full page are taken, so nothing is
   skipped.
2. Each started run's own log, after a per-run cursor: STEP_START, STEP_SUCCESS, STEP_FAILURE, STEP_SKIPPED,
   STEP_UP_FOR_RETRY and ASSET_MATERIALIZATION (the output keys). A run joins the cursor's active runs at its
   RUN_START and leaves at its end; its own log is read to the end before its end is reported.

Only runs whose partition (tag `dagster/partition`) is a job ID count. Each run's events carry its upload version
(tag `igait/upload_version`), each upload event the upload's data version: the job document ignores a run of an
upload that was since replaced. Steps map to assets through the run's
execution plan snapshot, assets to stages through the `igait/stage` metadata of the code location's assets.

A per-view stage is one step per view (`keypoints_front`, `keypoints_side`), both with the same stage number;
its events are folded into the stage's: the stage starts at its first step's start, succeeds at the success that
leaves every step of it the run planned successful, and fails at any step's failure. So the job document and
the metrics see one stage, as for a one-step stage. A run start carries the (stage, view) pairs the run executes,
so a run that re-makes one view only keeps the other view's files in the stage's `output_keys`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    EventLogRecord,
    RunStatusChangeRecordsFilter,
)

from igait_pipeline.launch import DATA_VERSION_TAG, UPLOAD_VERSION_TAG
from igait_pipeline.layout import JOB_ID_RE, STAGE_META, VIEW_META
from igait_pipeline.partitions import PARTITION_TAG
from igait_pipeline.status.jobdoc import JobEvent, utc

WILL_RETRY_TAG = "dagster/will_retry"

RUN_END_TYPES = {
    DagsterEventType.RUN_SUCCESS: "success",
    DagsterEventType.RUN_FAILURE: "failure",
    DagsterEventType.RUN_CANCELED: "canceled",
}
RUN_STATUS_TYPES = (DagsterEventType.RUN_START, *RUN_END_TYPES)
STEP_TYPES = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SKIPPED,
    DagsterEventType.STEP_UP_FOR_RETRY,
    DagsterEventType.ASSET_MATERIALIZATION,
}
_STEP_KIND = {
    DagsterEventType.STEP_START: "step_start",
    DagsterEventType.STEP_SUCCESS: "step_success",
    DagsterEventType.STEP_FAILURE: "step_failure",
    DagsterEventType.STEP_SKIPPED: "step_skipped",
    DagsterEventType.STEP_UP_FOR_RETRY: "step_retry",
    DagsterEventType.ASSET_MATERIALIZATION: "materialized",
}


@dataclass(frozen=True)
class StageMap:
    """Asset key -> stage number, from the assets' `igait/stage` metadata (stage 0 is the upload); and the view of
    each per-view stage's asset, from its `igait/view` metadata."""

    by_asset: Mapping[AssetKey, int]
    views: Mapping[AssetKey, str] = field(default_factory=dict)

    @classmethod
    def from_repository(cls, repo) -> StageMap:
        found, views = {}, {}
        for key in repo.asset_graph.get_all_asset_keys():
            meta = repo.asset_graph.get(key).metadata
            value, view = _value(meta.get(STAGE_META)), _value(meta.get(VIEW_META))
            if value is not None:
                found[key] = int(value)
                if view is not None:
                    views[key] = str(view)
        if 0 not in found.values():
            raise ValueError(f"no asset carries '{STAGE_META}': 0 (the upload); stages found: {found}")
        return cls(found, views)

    @classmethod
    def from_definitions(cls, defs) -> StageMap:
        return cls.from_repository(defs.get_repository_def())

    @property
    def upload_key(self) -> AssetKey:
        return next(k for k, v in self.by_asset.items() if v == 0)

    def stage_of(self, key: AssetKey | None) -> int | None:
        return self.by_asset.get(key) if key is not None else None


@dataclass
class ReaderCursor:
    after: int = -1  # instance-wide storage id read up to
    runs: dict[str, str | None] = field(default_factory=dict)  # active run id -> its own log's cursor

    def to_json(self) -> str:
        return json.dumps({"after": self.after, "runs": self.runs}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> ReaderCursor:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(after=int(raw.get("after", -1)), runs=dict(raw.get("runs") or {}))


def job_id_of_run(run: DagsterRun | None) -> str | None:
    if run is None:
        return None
    key = run.tags.get(PARTITION_TAG)
    return key if key and JOB_ID_RE.fullmatch(key) else None


def upload_version_of(run: DagsterRun) -> str | None:
    """The version of the upload the run processes (its `igait/upload_version` tag; Dagster's retries keep it),
    None for a run launched without it (a stage materialized from the UI)."""
    return run.tags.get(UPLOAD_VERSION_TAG)


class JobEventReader:
    def __init__(self, instance: DagsterInstance, stages: StageMap, page: int = 200, run_page: int = 500):
        self.instance = instance
        self.stages = stages
        self.page = page
        self.run_page = run_page
        self._runs: dict[str, DagsterRun | None] = {}
        self._plans: dict[str, tuple[dict[str, int], tuple[int, ...]]] = {}
        self._views: dict[str, tuple[tuple[int, str], ...]] = {}  # run -> (stage, view) of its per-view assets
        self._stage_steps: dict[str, dict[int, frozenset[str]]] = {}  # run -> stage -> its planned steps

    # ---- the public entry ----
    def read(self, cursor: ReaderCursor) -> tuple[list[JobEvent], ReaderCursor]:
        """Events after cursor, in order, and the cursor after them. Does not change the given cursor."""
        runs = dict(cursor.runs)
        records, after = self._instance_wide(cursor.after)
        events: list[JobEvent] = []
        for rec in records:
            dagster_event = rec.event_log_entry.dagster_event
            etype = dagster_event.event_type
            if etype == DagsterEventType.ASSET_MATERIALIZATION:
                job_id = dagster_event.partition
                if job_id and JOB_ID_RE.fullmatch(job_id):
                    events.append(JobEvent("upload", job_id, utc(rec.timestamp),
                                           upload_version=(rec.event_log_entry.tags or {}).get(DATA_VERSION_TAG)))
                continue
            run_id = rec.event_log_entry.run_id
            if etype == DagsterEventType.RUN_START:
                run = self._run(run_id)
                job_id = job_id_of_run(run)
                if job_id is None:
                    continue
                runs.setdefault(run_id, None)
                _, planned = self._plan(run)
                events.append(JobEvent("run_start", job_id, utc(rec.timestamp), run_id=run_id, planned=planned,
                                       planned_views=self._views[run_id], upload_version=upload_version_of(run)))
            else:  # a run ended: its own log first, to the end, then the end itself
                run = self._run(run_id, fresh=True)  # fresh: the will_retry tag is added when it fails
                job_id = job_id_of_run(run)
                if job_id is None:
                    runs.pop(run_id, None)
                    continue
                steps, _ = self._run_log(run, job_id, runs.get(run_id), to_end=True)
                events += steps
                runs.pop(run_id, None)
                _, planned = self._plan(run)
                events.append(JobEvent(
                    "run_end", job_id, utc(rec.timestamp), run_id=run_id, planned=planned,
                    outcome=RUN_END_TYPES[etype], upload_version=upload_version_of(run),
                    will_retry=etype == DagsterEventType.RUN_FAILURE and run.tags.get(WILL_RETRY_TAG) == "true"))
        # runs still going: what they did since the last read
        for run_id in sorted(runs):
            run = self._run(run_id)
            job_id = job_id_of_run(run)
            if job_id is None:
                runs.pop(run_id)
                continue
            steps, runs[run_id] = self._run_log(run, job_id, runs[run_id], to_end=False)
            events += steps
        return events, ReaderCursor(after=after, runs=runs)

    # ---- the instance-wide stream ----
    def _instance_wide(self, after: int) -> tuple[list[EventLogRecord], int]:
        pages: list[list[EventLogRecord]] = [list(self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=self.stages.upload_key, after_storage_id=after),
            limit=self.page, ascending=True).records)]
        for etype in RUN_STATUS_TYPES:
            pages.append(list(self.instance.fetch_run_status_changes(
                RunStatusChangeRecordsFilter(event_type=etype, after_storage_id=after),
                limit=self.page, ascending=True).records))
        full = [p[-1].storage_id for p in pages if len(p) >= self.page]
        merged = sorted((r for p in pages for r in p), key=lambda r: r.storage_id)
        if full:
            watermark = min(full)
            merged = [r for r in merged if r.storage_id <= watermark]
        new_after = merged[-1].storage_id if merged else after
        return merged, new_after

    # ---- one run's own log ----
    def _run_log(self, run: DagsterRun, job_id: str, cursor: str | None,
                 to_end: bool) -> tuple[list[JobEvent], str | None]:
        step_stage, _ = self._plan(run)
        multi = {n: steps for n, steps in self._stage_steps[run.run_id].items() if len(steps) > 1}
        events: list[JobEvent] = []
        while True:
            conn = self.instance.get_records_for_run(run.run_id, cursor=cursor, of_type=STEP_TYPES,
                                                     limit=self.run_page, ascending=True)
            siblings = self._step_records(run) if multi and conn.records else []
            for rec in conn.records:
                ev = self._step_event(rec, job_id, step_stage)
                if ev is not None and ev.stage in multi:
                    ev = _fold_views(ev, rec, multi[ev.stage], siblings)
                if ev is not None:
                    events.append(replace(ev, upload_version=upload_version_of(run)))
            if conn.records:
                cursor = conn.cursor
            if not conn.has_more or not to_end:
                return events, cursor

    def _step_records(self, run: DagsterRun) -> list[tuple[int, DagsterEventType, str, float]]:
        """(storage id, type, step key, time) of every step start and end of the run so far."""
        conn = self.instance.get_records_for_run(run.run_id, of_type=_FOLDED, limit=10_000, ascending=True)
        return [(r.storage_id, r.event_log_entry.dagster_event.event_type, r.event_log_entry.dagster_event.step_key,
                 r.event_log_entry.timestamp) for r in conn.records]

    def _step_event(self, rec: EventLogRecord, job_id: str, step_stage: Mapping[str, int]) -> JobEvent | None:
        entry = rec.event_log_entry
        de = entry.dagster_event
        if de is None:
            return None
        kind = _STEP_KIND[de.event_type]
        at = utc(entry.timestamp)
        if kind == "materialized":
            stage = self.stages.stage_of(de.asset_key)
            mat = de.event_specific_data.materialization
            if stage is None or (mat.partition and mat.partition != job_id):
                return None
            keys = _value(mat.metadata.get("storage_keys")) or []
            return JobEvent(kind, job_id, at, run_id=entry.run_id, stage=stage,
                            output_keys=tuple(str(k) for k in keys))
        stage = step_stage.get(de.step_key or "")
        if stage is None:
            return None
        data = de.event_specific_data
        if kind == "step_success":
            return JobEvent(kind, job_id, at, run_id=entry.run_id, stage=stage,
                            duration_ms=round(data.duration_ms) if data is not None else None)
        if kind == "step_failure":
            return JobEvent(kind, job_id, at, run_id=entry.run_id, stage=stage, error=_failure_text(data),
                            output_keys=_failure_keys(data, job_id))
        if kind == "step_retry":
            return JobEvent(kind, job_id, at, run_id=entry.run_id, stage=stage,
                            error=_error_text(getattr(data, "error", None)))
        return JobEvent(kind, job_id, at, run_id=entry.run_id, stage=stage)

    # ---- runs and their plans ----
    def _run(self, run_id: str, fresh: bool = False) -> DagsterRun | None:
        if fresh or run_id not in self._runs:
            self._runs[run_id] = self.instance.get_run_by_id(run_id)
        return self._runs[run_id]

    def _plan(self, run: DagsterRun) -> tuple[dict[str, int], tuple[int, ...]]:
        """(step key -> stage, the stages the run was to execute) from the run's execution plan snapshot."""
        if run.run_id in self._plans:
            return self._plans[run.run_id]
        step_stage: dict[str, int] = {}
        planned: set[int] = set()
        views: set[tuple[int, str]] = set()
        stage_steps: dict[int, set[str]] = {}
        snap = (self.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
                if run.execution_plan_snapshot_id else None)
        if snap is not None:
            to_run = set(snap.step_keys_to_execute or [s.key for s in snap.steps])
            for step in snap.steps:
                keys = [getattr(o.properties, "asset_key", None) for o in step.outputs if o.properties is not None]
                stages = {self.stages.stage_of(k) for k in keys}
                stages.discard(None)
                if stages:
                    step_stage[step.key] = min(stages)
                    if step.key in to_run:
                        planned |= stages
                        stage_steps.setdefault(min(stages), set()).add(step.key)
                        views |= {(self.stages.by_asset[k], self.stages.views[k]) for k in keys
                                  if k in self.stages.views}
        planned.discard(0)
        self._views[run.run_id] = tuple(sorted(views))
        self._stage_steps[run.run_id] = {n: frozenset(steps) for n, steps in stage_steps.items()}
        self._plans[run.run_id] = (step_stage, tuple(sorted(planned)))
        return self._plans[run.run_id]


_FOLDED = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
           DagsterEventType.STEP_SKIPPED}


def _fold_views(ev: JobEvent, rec: EventLogRecord, steps: frozenset[str],
                siblings: list[tuple[int, DagsterEventType, str, float]]) -> JobEvent | None:
    """One step's event of a stage the run executes as several steps (its views), as the stage's event or None:
    only the first start starts the stage; a success counts once every step of the stage has succeeded (its
    duration is then the stage's wall time, from its first start); only the first failure fails it, and a skip
    counts only if no step of it failed or was skipped before. Retries and materializations pass as they are."""
    before = [(etype, step, at) for sid, etype, step, at in siblings if sid < rec.storage_id and step in steps]
    starts = [at for etype, _, at in before if etype == DagsterEventType.STEP_START]
    ended_badly = {etype for etype, _, _ in before} & {DagsterEventType.STEP_FAILURE, DagsterEventType.STEP_SKIPPED}
    if ev.kind == "step_start":
        return None if starts else ev
    if ev.kind == "step_failure":
        return None if DagsterEventType.STEP_FAILURE in ended_badly else ev
    if ev.kind == "step_skipped":
        return None if ended_badly else ev
    if ev.kind == "step_success":
        done = {step for etype, step, _ in before if etype == DagsterEventType.STEP_SUCCESS}
        done.add(rec.event_log_entry.dagster_event.step_key)
        if done < steps:
            return None
        wall = rec.event_log_entry.timestamp - min(starts) if starts else None
        return replace(ev, duration_ms=round(wall * 1000) if wall is not None else None)
    return ev


def _value(v):
    return getattr(v, "value", v)


def _error_text(err) -> str | None:
    if err is None:
        return None
    msg = (err.message or "").strip()
    return msg.splitlines()[0] if msg else err.cls_name


def _failure_text(data) -> str | None:
    if data is None:
        return None
    user = getattr(data, "user_failure_data", None)
    if user is not None and user.description:
        return user.description
    return _error_text(data.error)


def _failure_keys(data, job_id: str) -> tuple[str, ...]:
    """Storage keys a failed stage still wrote (e.g. validation.json of a refused job), from its metadata."""
    user = getattr(data, "user_failure_data", None) if data is not None else None
    if user is None:
        return ()
    prefix = f"jobs/{job_id}/"
    keys = []
    for v in (user.metadata or {}).values():
        v = _value(v)
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            if isinstance(item, str) and item.startswith(prefix):
                keys.append(item)
    return tuple(sorted(set(keys)))

