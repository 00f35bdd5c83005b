"""What operators read: JSON log lines and OpenTelemetry traces, one trace per job upload.

    tracing.py      trace and span IDs derived from the job (job ID + upload version, run ID, step key), spans
                    exported over OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT (unset: no span is made at all)
    logs.py         the JSON line of a log record (timestamp, level, service, job ID, run ID, step, trace ID,
                    span ID, message, event) and the handlers Dagster's `python_logs` configuration names:
                    `JsonLinesHandler` (JSON lines to stdout / stderr / a file) and `SpanHandler` (a span per run
                    and per step, from the run's own events)
    sensor_log.py   the same JSON lines for the sensors and the metrics exporter, which Dagster's python_logs
                    does not reach

Hooked where Dagster gives hooks: the instance's `python_logs.dagster_handler_config` (dagster.yaml, Helm
`pythonLogs`) puts both handlers in every run worker and step process; the sensors wrap their `context.log`.
No stage code knows about any of it. Never a patient value: lines carry IDs, stage labels and the messages the
pipeline writes, which name jobs, files and fields only.
"""
