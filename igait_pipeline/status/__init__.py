"""Job status for the web app and for people: the job document, the family's e-mail, and metrics.

- `jobdoc`: the document shape (`jobs/{job_id}`), the events that change it, the store interface;
  `sqlite_store` (embedded default) and `firestore_store` (production) implement it.
- `notify`: the one e-mail per job, over SMTP.
- `events`: reads runs and events from the Dagster instance as job events.
- `sensors`: the Dagster sensor and resources that keep documents current and send e-mails.
- `metrics`: the Prometheus exporter (`python -m igait_pipeline.status.metrics`).

See docs/status.md.
"""
