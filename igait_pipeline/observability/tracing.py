"""One trace per job upload, its IDs derived, not passed around (no Dagster here).

The run worker, each step process (or pod), the uploads sensor and the status sensor's e-mail all compute the same
IDs from what they know, so their spans join without any context being handed from process to process:

    trace ID      sha256(job ID, upload version)        upload version = the upload's fingerprint, recorded by the
                                                        uploads sensor as the `upload` asset's data version and on
                                                        the job's runs as tag igait/upload_version
    upload span   sha256("upload", job ID, version)     the root: made by the uploads sensor (and `igait run`)
    run span      sha256("run", run ID)                 child of the upload span (run worker: RUN_START .. end)
    step span     sha256("step", run ID, step key)      child of the run span (step process: STEP_START .. end)
    e-mail span   random                                child of the upload span (status sensor)

A run without an upload version (a stage materialized from the UI) gets the trace of (job ID, "run:" + run ID).

Spans go to $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else $OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces), over OTLP/HTTP
(protobuf); with neither set `provider()` is None and no span is made (no cost beyond a hash). Spans are batched
and flushed at the end of each step and run (a step process ends without running atexit hooks), waiting at most
FLUSH_TIMEOUT_S for the collector: a collector that is down slows no stage by more than that.
"""
from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import random
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SERVICE_NAME = "igait-pipeline"  # the OTel resource's service.name (OTEL_SERVICE_NAME overrides it)
FLUSH_TIMEOUT_S = 3.0
TRACER_NAME = "igait_pipeline"

# span attributes
JOB_ID = "igait.job_id"
UPLOAD_VERSION = "igait.upload_version"
STAGE = "igait.stage"  # the stage number, 1..7 (0: the upload)
STAGE_LABEL = "igait.stage_label"
VIEW = "igait.view"
RUN_ID = "dagster.run_id"
STEP_KEY = "dagster.step_key"

log = logging.getLogger(__name__)


def _digest(*parts: str, size: int) -> int:
    value = int.from_bytes(hashlib.sha256("\0".join(("igait", *parts)).encode()).digest()[:size], "big")
    return value or 1  # 0 is the invalid ID


def trace_id_for(job_id: str, upload_version: str | None, run_id: str | None = None) -> int:
    """The trace of one upload of a job (128 bits); a run without an upload version gets one of its own."""
    if not upload_version:
        upload_version = f"run:{run_id}" if run_id else "unknown"
    return _digest("trace", job_id, upload_version, size=16)


def upload_span_id(job_id: str, upload_version: str | None, run_id: str | None = None) -> int:
    if not upload_version:
        upload_version = f"run:{run_id}" if run_id else "unknown"
    return _digest("upload", job_id, upload_version, size=8)


def run_span_id(run_id: str) -> int:
    return _digest("run", run_id, size=8)


def step_span_id(run_id: str, step_key: str) -> int:
    return _digest("step", run_id, step_key, size=8)


def trace_hex(trace_id: int) -> str:
    return f"{trace_id:032x}"


def span_hex(span_id: int) -> str:
    return f"{span_id:016x}"


# ---------- the provider: one per process and endpoint, made on first use ----------
_NEXT_IDS: contextvars.ContextVar[tuple[int | None, int | None]] = contextvars.ContextVar(
    "igait_next_span_ids", default=(None, None))


class _DerivedIds(IdGenerator):
    """Random IDs, except the (trace ID, span ID) set for the next span by `_ids`."""

    def generate_span_id(self) -> int:
        return _NEXT_IDS.get()[1] or random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return _NEXT_IDS.get()[0] or random.getrandbits(128) or 1


_lock = threading.Lock()
_provider: tuple[tuple[int, str], TracerProvider] | None = None


def endpoint(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return next((env[k].strip() for k in ENDPOINT_ENVS if env.get(k, "").strip()), None)


def provider() -> TracerProvider | None:
    """This process's tracer provider, or None when no OTLP endpoint is set. Re-made after a fork or when the
    endpoint changes (tests start a receiver per test)."""
    global _provider
    url = endpoint()
    if url is None:
        return None
    key = (os.getpid(), url)
    with _lock:
        if _provider is not None and _provider[0] == key:
            return _provider[1]
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        old, p = _provider, TracerProvider(
            resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME}),
            id_generator=_DerivedIds())
        p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _provider = (key, p)
    if old is not None and old[0][0] == os.getpid():
        old[1].shutdown()
    return p


def flush(timeout_s: float = FLUSH_TIMEOUT_S) -> None:
    """Send the spans ended so far (waits at most timeout_s)."""
    p = _provider[1] if _provider is not None and _provider[0][0] == os.getpid() else None
    if p is not None:
        p.force_flush(int(timeout_s * 1000))


def _parent(trace_id: int, parent_span_id: int | None):
    if parent_span_id is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(SpanContext(
        trace_id, parent_span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))


def start_span(name: str, trace_id: int, span_id: int | None = None, parent_span_id: int | None = None,
               attributes: Mapping[str, object] | None = None, start_ns: int | None = None,
               kind: SpanKind = SpanKind.INTERNAL):
    """A started span with the given IDs (span_id None: random), or None when tracing is off. End it with
    `end_span`."""
    p = provider()
    if p is None:
        return None
    token = _NEXT_IDS.set((trace_id, span_id))
    try:
        return p.get_tracer(TRACER_NAME).start_span(
            name, context=_parent(trace_id, parent_span_id), kind=kind, start_time=start_ns,
            attributes={k: v for k, v in (attributes or {}).items() if v is not None})
    finally:
        _NEXT_IDS.reset(token)


def end_span(span, error: str | None = None, end_ns: int | None = None) -> None:
    if span is None:
        return
    span.set_status(Status(StatusCode.ERROR, error) if error else Status(StatusCode.OK))
    span.end(end_time=end_ns)


@contextmanager
def span(name: str, trace_id: int, span_id: int | None = None, parent_span_id: int | None = None,
         attributes: Mapping[str, object] | None = None) -> Iterator[object | None]:
    """A span around a block, current while it runs (log lines inside carry its IDs); None when tracing is off.
    An exception marks it failed and propagates."""
    s = start_span(name, trace_id, span_id, parent_span_id, attributes)
    if s is None:
        yield None
        return
    error = None
    try:
        with trace.use_span(s, end_on_exit=False, record_exception=True, set_status_on_exception=False):
            yield s
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
        raise
    finally:
        end_span(s, error)


def upload_ids(job_id: str, upload_version: str | None) -> dict:
    """`extra` for a log line about an upload: its trace and upload span IDs (the JSON line carries them)."""
    return {"igait_trace": (trace_hex(trace_id_for(job_id, upload_version)),
                            span_hex(upload_span_id(job_id, upload_version)))}


def current_ids() -> tuple[str, str] | None:
    """(trace ID, span ID) in hex of the span current in this thread, if any."""
    ctx = trace.get_current_span().get_span_context()
    return (trace_hex(ctx.trace_id), span_hex(ctx.span_id)) if ctx.is_valid else None


def record_upload_span(job_id: str, upload_version: str, description: str) -> None:
    """The root span of an upload's trace (the uploads sensor, `igait run`): a moment, when the upload is recorded.
    The run, step and e-mail spans hang under it."""
    s = start_span("upload", trace_id_for(job_id, upload_version), upload_span_id(job_id, upload_version),
                   attributes={JOB_ID: job_id, UPLOAD_VERSION: upload_version, STAGE: 0,
                               "igait.description": description}, kind=SpanKind.SERVER)
    end_span(s)
