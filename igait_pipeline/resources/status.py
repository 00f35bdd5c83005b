"""Dagster resources of the job-status sensor: where job documents live, and the SMTP server for the e-mail."""
from __future__ import annotations

from dagster import ConfigurableResource

from igait_pipeline.status.jobdoc import COLLECTION, JobStore, job_store_from_uri
from igait_pipeline.status.notify import SmtpSettings


class JobStatusResource(ConfigurableResource):
    """Where job documents live: `firestore://PROJECT[/DATABASE]` or `sqlite:PATH`; empty: $IGAIT_STATUS_URI,
    else `sqlite:data/status.sqlite3`."""

    uri: str = ""
    collection: str = COLLECTION
    email_max_age_hours: float = 168.0  # jobs that finished longer ago get no e-mail (see send_pending_emails)
    max_emails_per_tick: int = 50

    def store(self) -> JobStore:
        """A store for one sensor tick (the caller closes it)."""
        return job_store_from_uri(self.uri or None, collection=self.collection)


class SmtpResource(ConfigurableResource):
    """SMTP settings; an empty field takes its value from IGAIT_SMTP_* (see status.notify). No host: no e-mail."""

    host: str = ""
    port: int = 0
    security: str = ""
    username: str = ""
    password: str = ""
    sender: str = ""
    timeout: float = 0.0

    def settings(self) -> SmtpSettings | None:
        return SmtpSettings.from_env(host=self.host, port=self.port, security=self.security,
                                     username=self.username, password=self.password, sender=self.sender,
                                     timeout=self.timeout)
