"""JSON log lines and per-step spans, through Dagster's `python_logs` configuration.

Dagster hands every record of a run (the run worker's and each step process's: `context.log` lines and Dagster's
own events) to the handlers the instance's `python_logs.dagster_handler_config` names, with the run's ID, tags
and step key on the record (`record.dagster_meta`). Two handlers live here:

    JsonLinesHandler   one JSON object per line to stdout, stderr or a file (appended with one write per line,
                       so the run worker and its step processes can share a file):
                       {"timestamp", "level", "service", "job_id", "run_id", "step", "stage", "view", "trace_id",
                        "span_id", "event", "message"[, "error": a failed step's cause or a traceback]}
                       service: the stage's label for a step's line ("pose estimation"), the job's name for the
                       run's own lines, the sensor's name for a sensor's (see sensor_log). job_id: the run's
                       igait/job_id tag, else its partition. trace_id / span_id: derived (see tracing), so
                       they are on every line of a run, collector or not.
    SpanHandler        a span per run (RUN_START .. RUN_SUCCESS / FAILURE / CANCELED, in the run worker) and per
                       step (STEP_START .. STEP_SUCCESS / FAILURE / UP_FOR_RETRY, in the step's process), with
                       the stage, view and job ID as attributes; exported when an OTLP endpoint is set.

dagster.yaml (embedded default) names both; JSON lines are written only when $IGAIT_LOG_JSON says where
(`stdout`, `stderr`, `1` = stderr, or a file path), so `dagster dev` stays readable. Production (dagster.prod.yaml,
Helm `pythonLogs`) writes them to stdout always. The message is the pipeline's own (job IDs, stage labels, file
and field names) or Dagster's event text; record metadata (where sizes and scores live) is never serialised.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import traceback
from datetime import UTC, datetime

from igait_pipeline.layout import JOB_ID_RE, STAGES, VIEWS, Stage, stage_of_asset
from igait_pipeline.observability import tracing

# Run tags (as igait_pipeline.launch and Dagster spell them; a test checks they agree). Not imported from
# launch: this module is loaded by the logging configuration of every process, before any code location.
JOB_TAG = "igait/job_id"
UPLOAD_VERSION_TAG = "igait/upload_version"
PARTITION_TAG = "dagster/partition"
JSON_ENV = "IGAIT_LOG_JSON"  # the env switch the embedded dagster.yaml names (target_env)
_OFF = {"", "0", "off", "false", "no", "none"}
_LEADING_JOB = re.compile(r"job (?P<job>[A-Za-z0-9-]+_[0-9]+)\b")

RUN_START, RUN_ENDS = "PIPELINE_START", {"PIPELINE_SUCCESS": None, "PIPELINE_FAILURE": "run failed",
                                         "PIPELINE_CANCELED": "run canceled"}
STEP_START, STEP_ENDS = "STEP_START", {"STEP_SUCCESS": None, "STEP_FAILURE": "step failed",
                                       "STEP_UP_FOR_RETRY": "step failed, up for retry"}


def _op_name(asset_key: str) -> str:
    """The op (step) name Dagster gives an asset: its key's parts joined by `__`; the stages' one-part keys
    (`keypoints_front`) stay as they are."""
    return asset_key.replace("/", "__")


def _step_table() -> dict[str, tuple[Stage, str | None]]:
    out = {}
    for st in STAGES:
        for key, view in zip(st.asset_keys, VIEWS if st.per_view else (None,)):
            out[_op_name(key)] = (st, view)
    return out


STEPS = _step_table()


def step_stage(step_key: str | None) -> tuple[Stage | None, str | None]:
    """The stage and view of a step of igait_job (None, None for another step). A step named after a stage's
    asset alone is that stage, for all views."""
    if step_key in STEPS:
        return STEPS[step_key]
    try:
        return stage_of_asset((step_key or "").split("__")[0]), None
    except KeyError:
        return None, None


def _event_type(meta: dict) -> str | None:
    event = meta.get("dagster_event")
    return getattr(event, "event_type_value", None) if event is not None else None


def _event_name(meta: dict) -> str | None:
    """The event's name as Dagster's console shows it (PIPELINE_START is RUN_START there)."""
    etype = _event_type(meta)
    return etype.replace("PIPELINE_", "RUN_", 1) if etype else None


def run_identity(meta: dict) -> tuple[str | None, str | None, str | None]:
    """(job ID, run ID, upload version) of a Dagster record's metadata."""
    tags = meta.get("job_tags") or {}
    return tags.get(JOB_TAG) or tags.get(PARTITION_TAG), meta.get("run_id"), tags.get(UPLOAD_VERSION_TAG)


def fields(record: logging.LogRecord) -> dict:
    """The JSON object of one log record."""
    meta = getattr(record, "dagster_meta", None) or {}
    job_id, run_id, version = run_identity(meta) if meta.get("run_id") else (None, None, None)
    step = meta.get("step_key")
    message = meta.get("orig_message") if "orig_message" in meta else record.getMessage()
    if job_id is None:  # a sensor's or the exporter's line: the job it starts with ("job kid-42_1: ...")
        m = _LEADING_JOB.match(message or "")
        job_id = m["job"] if m and JOB_ID_RE.fullmatch(m["job"]) else None
    stage, view = step_stage(step)
    service = getattr(record, "igait_service", None) or (stage.label if stage else None) \
        or meta.get("job_name") or record.name
    trace_id = span_id = None
    if run_id:
        trace_id = tracing.trace_hex(tracing.trace_id_for(job_id or "", version, run_id))
        span_id = tracing.span_hex(tracing.step_span_id(run_id, step) if step else tracing.run_span_id(run_id))
    else:
        ids = getattr(record, "igait_trace", None) or tracing.current_ids()
        if ids:
            trace_id, span_id = ids
    out = {"timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
           "level": record.levelname, "service": service, "job_id": job_id, "run_id": run_id, "step": step,
           "stage": stage.number if stage else None, "view": view, "trace_id": trace_id, "span_id": span_id,
           "event": _event_name(meta), "message": message}
    error = getattr(getattr(meta.get("dagster_event"), "event_specific_data", None), "error", None)
    if error is not None and getattr(error, "message", None):  # a step's failure: the cause, naming the job
        out["error"] = error.message.strip()
    elif record.exc_info:
        out["error"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(fields(record), ensure_ascii=False, default=str)


def resolve_target(target: str | None = None, target_env: str | None = None) -> str | None:
    """Where JSON lines go: the configured target, else the one $target_env names; None means off."""
    raw = (target if target is not None else os.environ.get(target_env or "", "")).strip()
    if raw.lower() in _OFF:
        return None
    if raw.lower() in ("1", "true", "yes", "on"):
        return "stderr"
    return raw


class JsonLinesHandler(logging.Handler):
    """One JSON object per record, to `target` (stdout | stderr | a file path), or to where the environment
    variable `target_env` says (unset or 0: nothing). Configured in dagster.yaml:

        python_logs:
          dagster_handler_config:
            handlers:
              json_lines:
                class: igait_pipeline.observability.logs.JsonLinesHandler
                target_env: IGAIT_LOG_JSON          # or target: stdout
    """

    def __init__(self, target: str | None = None, target_env: str | None = None, level: int = logging.NOTSET):
        super().__init__(level)
        self.target = resolve_target(target, target_env)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        if self.target is None:
            return
        try:
            data = (self.format(record) + "\n").encode()
            if self.target in ("stdout", "stderr"):
                stream = sys.stdout if self.target == "stdout" else sys.stderr
                stream.flush()
                try:
                    fd = stream.fileno()
                except (AttributeError, OSError, ValueError):  # a stream with no descriptor (captured in tests)
                    stream.write(data.decode())
                    stream.flush()
                    return
                _write_all(fd, data)  # the line in one write where the pipe allows: no interleaving
            else:
                fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    _write_all(fd, data)  # O_APPEND, one write: lines of several processes never interleave
                finally:
                    os.close(fd)
        except Exception:
            self.handleError(record)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


_open_spans: dict[tuple[str, str | None], object] = {}
_spans_lock = threading.Lock()


class SpanHandler(logging.Handler):
    """A span per run and per step of a Dagster run, from the run's own events (see the module doc). Does
    nothing when no OTLP endpoint is set."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        if not meta or not meta.get("run_id") or tracing.endpoint() is None:
            return
        etype = _event_type(meta)
        if etype not in (RUN_START, STEP_START) and etype not in RUN_ENDS and etype not in STEP_ENDS:
            return
        try:
            self._handle(record, meta, etype)
        except Exception:
            self.handleError(record)

    def _handle(self, record: logging.LogRecord, meta: dict, etype: str) -> None:
        job_id, run_id, version = run_identity(meta)
        trace_id = tracing.trace_id_for(job_id or "", version, run_id)
        at = int(record.created * 1e9)
        common = {tracing.JOB_ID: job_id, tracing.RUN_ID: run_id, tracing.UPLOAD_VERSION: version}
        if etype == RUN_START:
            span = tracing.start_span(
                "run", trace_id, tracing.run_span_id(run_id), tracing.upload_span_id(job_id or "", version, run_id),
                {**common, "dagster.job_name": meta.get("job_name")}, start_ns=at)
            with _spans_lock:
                _open_spans[(run_id, None)] = span
        elif etype == STEP_START:
            step = meta.get("step_key")
            stage, view = step_stage(step)
            name = (stage.label + (f" ({view})" if view else "")) if stage else (step or "step")
            span = tracing.start_span(
                name, trace_id, tracing.step_span_id(run_id, step), tracing.run_span_id(run_id),
                {**common, tracing.STEP_KEY: step, tracing.STAGE: stage.number if stage else None,
                 tracing.STAGE_LABEL: stage.label if stage else None, tracing.VIEW: view}, start_ns=at)
            with _spans_lock:
                _open_spans[(run_id, step)] = span
        else:
            key = (run_id, None) if etype in RUN_ENDS else (run_id, meta.get("step_key"))
            with _spans_lock:
                span = _open_spans.pop(key, None)
            if span is None:
                return  # started in another process (a run failed by the daemon's monitoring): no span
            error = RUN_ENDS.get(etype) if etype in RUN_ENDS else STEP_ENDS.get(etype)
            tracing.end_span(span, error and f"{error}: {meta.get('orig_message', '')}"[:500], end_ns=at)
            tracing.flush()
