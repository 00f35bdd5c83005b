"""The embedded job store: one SQLite file, one row per job holding the document as JSON (same shape as Firestore).

Timestamps are stored as ISO 8601 strings in UTC and come back as timezone-aware datetimes, as they do from
Firestore. Each change runs in a `BEGIN IMMEDIATE` transaction, so two processes (the sensor daemon and a
script) never interleave a read-modify-write. No Dagster import here.
"""
from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from igait_pipeline.status.jobdoc import (
    COLLECTION,
    STAGE_TIME_FIELDS,
    TIME_FIELDS,
    Change,
    JobStore,
    same_content,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    job_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
)
"""


def _encode(doc: dict) -> str:
    def default(v):
        if isinstance(v, datetime):
            return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
        raise TypeError(f"{type(v).__name__} is not storable in a job document")

    return json.dumps(doc, default=default, sort_keys=True, ensure_ascii=False)


def _decode(text: str) -> dict:
    doc = json.loads(text)
    for k in TIME_FIELDS:
        if isinstance(doc.get(k), str):
            doc[k] = datetime.fromisoformat(doc[k])
    for st in (doc.get("stages") or {}).values():
        for k in STAGE_TIME_FIELDS:
            if isinstance(st.get(k), str):
                st[k] = datetime.fromisoformat(st[k])
    return doc


class SqliteJobStore(JobStore):
    def __init__(self, path: str | Path, collection: str = COLLECTION):
        if not collection.isidentifier():
            raise ValueError(f"collection {collection!r} must be an identifier")
        if str(path) in ("", ":memory:"):
            raise ValueError("the SQLite job store needs a file (each call opens its own connection)")
        self.path = Path(path).expanduser()
        self.collection = collection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA.format(table=collection))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def get(self, job_id: str) -> dict | None:
        with self._connect() as conn:
            row = conn.execute(f"SELECT doc FROM {self.collection} WHERE job_id = ?", (job_id,)).fetchone()
        return _decode(row[0]) if row else None

    def update(self, job_id: str, change: Change) -> dict | None:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(f"SELECT doc FROM {self.collection} WHERE job_id = ?", (job_id,)).fetchone()
                old = _decode(row[0]) if row else None
                new = change(copy.deepcopy(old))
                if new is None or same_content(old, new):
                    conn.execute("ROLLBACK")
                    return old
                if new.get("job_id") != job_id:
                    raise ValueError(f"document for {job_id!r} names job {new.get('job_id')!r}")
                new = {**new, "updated_at": datetime.now(UTC)}
                conn.execute(f"INSERT INTO {self.collection} (job_id, doc) VALUES (?, ?) "
                             f"ON CONFLICT(job_id) DO UPDATE SET doc = excluded.doc", (job_id, _encode(new)))
                conn.execute("COMMIT")
                return _decode(_encode(new))
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def find(self, *, status: Iterable[str] | None = None, email_sent: bool | None = None,
             user_id: str | None = None, email_status: Iterable[str] | None = None,
             limit: int = 100) -> list[dict]:
        where, args = [], []
        if email_status is not None:
            email_status = list(email_status)
            where.append(f"coalesce(json_extract(doc, '$.email_status'), 'pending') IN "
                         f"({', '.join('?' for _ in email_status)})")
            args += email_status
        if status is not None:
            status = list(status)
            where.append(f"json_extract(doc, '$.status') IN ({', '.join('?' for _ in status)})")
            args += status
        if email_sent is not None:
            where.append("json_extract(doc, '$.email_sent') = ?")
            args.append(1 if email_sent else 0)
        if user_id is not None:
            where.append("json_extract(doc, '$.user_id') = ?")
            args.append(user_id)
        sql = f"SELECT doc FROM {self.collection}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY job_id LIMIT ?"
        with self._connect() as conn:
            rows = conn.execute(sql, (*args, int(limit))).fetchall()
        return [_decode(r[0]) for r in rows]
