"""The production job store: Firestore, through the official `google-cloud-firestore` client.

Each change is a Firestore transaction: read the document, compute the new one, and write only the leaf fields
that changed as dotted-path updates (`stages.3.status`, `result.score`, ...), so fields this pipeline did not
change are never overwritten; `updated_at` is a server timestamp. A new document is written with `create`,
which fails if another writer created it first (the transaction then retries and sees it).

`find(email_status=...)` must also return documents written before `email_status` existed (they count as
"pending"), which no Firestore filter can select (a filter on a field never matches a document without it). When
the values asked for include "pending", the query therefore runs without that condition, streamed in job-ID
order, and `email_status` is checked here; the stream is closed once `limit` documents match. Otherwise it is an
indexed `in` filter.

Credentials and project come from the environment as usual for Google clients (Application Default
Credentials, GOOGLE_CLOUD_PROJECT); FIRESTORE_EMULATOR_HOST points the client at an emulator. No Dagster import.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable

from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from igait_pipeline.status.jobdoc import (
    COLLECTION,
    Change,
    JobStore,
    changed_paths,
    email_status_of,
    same_content,
)

_IN_LIMIT = 30  # Firestore's limit on the values of one `in` filter


class FirestoreJobStore(JobStore):
    def __init__(self, project: str | None = None, database: str | None = None,
                 collection: str = COLLECTION, client: firestore.Client | None = None):
        self.client = client or firestore.Client(project=project, database=database)
        self.collection = collection
        self._coll = self.client.collection(collection)

    def get(self, job_id: str) -> dict | None:
        snap = self._coll.document(job_id).get()
        return snap.to_dict() if snap.exists else None

    def update(self, job_id: str, change: Change) -> dict | None:
        ref = self._coll.document(job_id)
        wrote: list[bool] = []

        @firestore.transactional
        def run(txn: firestore.Transaction) -> dict | None:
            wrote.clear()
            snap = ref.get(transaction=txn)
            old = snap.to_dict() if snap.exists else None
            new = change(copy.deepcopy(old))
            if new is None or same_content(old, new):
                return old
            if new.get("job_id") != job_id:
                raise ValueError(f"document for {job_id!r} names job {new.get('job_id')!r}")
            if old is None:
                txn.create(ref, {**new, "updated_at": firestore.SERVER_TIMESTAMP})
            else:
                paths = {FieldPath(*p).to_api_repr(): v
                         for p, v in changed_paths(old, new).items() if p != ("updated_at",)}
                txn.update(ref, {**paths, "updated_at": firestore.SERVER_TIMESTAMP})
            wrote.append(True)
            return new

        result = run(self.client.transaction())
        # Read back after a write so that updated_at is the server's value, as any reader will see it.
        return self.get(job_id) if wrote else result

    def find(self, *, status: Iterable[str] | None = None, email_sent: bool | None = None,
             user_id: str | None = None, email_status: Iterable[str] | None = None,
             limit: int = 100) -> list[dict]:
        query = self._coll
        wanted = None
        if email_status is not None:
            wanted = list(email_status)
            if not 0 < len(wanted) <= _IN_LIMIT:
                raise ValueError(f"email_status takes 1 to {_IN_LIMIT} values")
            if email_status_of({}) not in wanted:  # a document without the field cannot match: Firestore filters
                query = query.where(filter=firestore.FieldFilter("email_status", "in", wanted))
                wanted = None
        if status is not None:
            status = list(status)
            if not 0 < len(status) <= _IN_LIMIT:
                raise ValueError(f"status takes 1 to {_IN_LIMIT} values")
            query = query.where(filter=firestore.FieldFilter("status", "in", status))
        if email_sent is not None:
            query = query.where(filter=firestore.FieldFilter("email_sent", "==", bool(email_sent)))
        if user_id is not None:
            query = query.where(filter=firestore.FieldFilter("user_id", "==", user_id))
        # Equality and `in` filters only, no order_by: served by Firestore's single-field indexes, no composite
        # index to deploy (results come in document-ID order, i.e. job-ID order). Sorted here for a stable order.
        if wanted is None:
            docs = [d.to_dict() for d in query.limit(int(limit)).stream()]
        else:
            docs = self._matching(query, lambda d: email_status_of(d) in wanted, int(limit))
        return sorted(docs, key=lambda d: d.get("job_id") or "")

    @staticmethod
    def _matching(query, keep, limit: int) -> list[dict]:
        """The first `limit` documents of query for which keep(doc) holds; reading stops there."""
        out: list[dict] = []
        if limit <= 0:
            return out
        stream = query.stream()
        try:
            for snap in stream:
                doc = snap.to_dict()
                if keep(doc):
                    out.append(doc)
                    if len(out) >= limit:
                        break
        finally:
            stream.close()  # cancels the rest of the server's stream
        return out

    def close(self) -> None:
        self.client.close()
