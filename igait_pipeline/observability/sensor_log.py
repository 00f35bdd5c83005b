"""JSON lines for the processes Dagster's `python_logs` does not reach: the sensors and the metrics exporter.

Dagster gives a sensor's `context.log` its own logger (the tick's captured log in the UI and the console), not
the instance's python_logs handlers. `sensor_log(context, name)` is a drop-in for `context.log` that writes each
line there as before and also hands it to the instance's configured handlers (JsonLinesHandler: the same JSON
line as a run's, `service` = the sensor's name, `job_id` from the line's leading "job ID:"); while it is open,
the `igait_pipeline` loggers (e-mail delivery, for one) reach those handlers too. `install(instance, service)`
does the latter for a whole process (the metrics exporter).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

PACKAGE_LOGGER = "igait_pipeline"


def instance_handlers(instance) -> list[logging.Handler]:
    """The handlers of the instance's python_logs.dagster_handler_config (dagster.yaml), made afresh."""
    if instance is None:
        return []
    return list(instance.get_yaml_python_handlers())


class _Forward(logging.Handler):
    """Hands records of the `igait_pipeline` loggers to the configured handlers, tagged with the service."""

    def __init__(self, handlers: Sequence[logging.Handler], service: str, thread: int | None = None):
        super().__init__()
        self.handlers, self.service, self.thread = list(handlers), service, thread

    def emit(self, record: logging.LogRecord) -> None:
        if self.thread is not None and record.thread != self.thread:
            return  # another sensor's tick, evaluated at the same time in another thread
        if not hasattr(record, "igait_service"):
            record.igait_service = self.service
        for h in self.handlers:
            if record.levelno >= h.level:
                h.handle(record)


class SensorLog:
    """`context.log` plus the instance's JSON handlers: info / warning / error / debug / exception."""

    def __init__(self, context_log: logging.Logger, handlers: Sequence[logging.Handler], service: str):
        self._log, self._forward = context_log, _Forward(handlers, service, threading.get_ident())
        self.service = service

    def _emit(self, level: int, msg: str, exc_info=None, extra: dict | None = None) -> None:
        record = logging.LogRecord(f"{PACKAGE_LOGGER}.{self.service}", level, "", 0, msg, (), exc_info)
        record.__dict__.update(extra or {})  # e.g. igait_trace: (trace ID, span ID) in hex, for the JSON line
        self._forward.handle(record)

    def debug(self, msg: str, extra: dict | None = None) -> None:
        self._log.debug(msg)
        self._emit(logging.DEBUG, msg, extra=extra)

    def info(self, msg: str, extra: dict | None = None) -> None:
        self._log.info(msg)
        self._emit(logging.INFO, msg, extra=extra)

    def warning(self, msg: str, extra: dict | None = None) -> None:
        self._log.warning(msg)
        self._emit(logging.WARNING, msg, extra=extra)

    def error(self, msg: str, extra: dict | None = None) -> None:
        self._log.error(msg)
        self._emit(logging.ERROR, msg, extra=extra)

    def exception(self, msg: str, extra: dict | None = None) -> None:
        import sys

        self._log.exception(msg)
        self._emit(logging.ERROR, msg, sys.exc_info(), extra=extra)


def sensor_logger(context, service: str) -> SensorLog:
    """A sensor tick's logger: `context.log` plus the instance's JSON handlers (see the module doc)."""
    return SensorLog(context.log, instance_handlers(getattr(context, "instance", None)), service)


@contextmanager
def sensor_log(context, service: str) -> Iterator[SensorLog]:
    """`sensor_logger`, and the `igait_pipeline` loggers reach the JSON handlers while it is open."""
    log = sensor_logger(context, service)
    if not log._forward.handlers:
        yield log
        return
    package = logging.getLogger(PACKAGE_LOGGER)
    previous = package.level
    package.addHandler(log._forward)
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    try:
        yield log
    finally:
        package.removeHandler(log._forward)
        package.setLevel(previous)


def install(instance, service: str) -> list[logging.Handler]:
    """Send this process's `igait_pipeline` log lines (INFO and up) to the instance's configured handlers."""
    handlers = instance_handlers(instance)
    if handlers:
        package = logging.getLogger(PACKAGE_LOGGER)
        package.addHandler(_Forward(handlers, service))
        if package.getEffectiveLevel() > logging.INFO:
            package.setLevel(logging.INFO)
    return handlers
