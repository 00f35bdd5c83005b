"""Both job stores behind one interface: the embedded SQLite file directly, Firestore against the real emulator
(`@firestore-emulator/server` started by the `firestore` fixture) through the official client."""
from datetime import UTC, datetime, timedelta

import pytest

from igait_pipeline.status.firestore_store import FirestoreJobStore
from igait_pipeline.status.jobdoc import JobDocument, JobEvent, apply_events, job_store_from_uri, new_job_doc
from igait_pipeline.status.sqlite_store import SqliteJobStore

T0 = datetime(2026, 5, 4, 12, 0, 0, 654321, tzinfo=UTC)
PATIENT = {"age": 7.0, "sex": "F", "height": 127.0, "weight": 24.9, "ethnicity": "Hispanic or Latino"}


@pytest.fixture(params=["sqlite", "firestore"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = job_store_from_uri(f"sqlite:{tmp_path}/status.sqlite3")
        assert isinstance(s, SqliteJobStore)
    else:
        fs = request.getfixturevalue("firestore")
        s = job_store_from_uri(fs.uri)
        assert isinstance(s, FirestoreJobStore)
    yield s
    s.close()


def doc_for(job_id: str, **changes) -> dict:
    doc = new_job_doc(job_id, job_id.rpartition("_")[0], T0, PATIENT, f"{job_id}@example.org")
    doc.update(changes)
    return doc


def create(store, job_id: str, **changes) -> dict:
    return store.update(job_id, lambda old: doc_for(job_id, **changes) if old is None else old)


def test_create_read_back_exact_shape_and_timestamps(store):
    before = datetime.now(UTC)
    doc = create(store, "alice_1")
    after = datetime.now(UTC)
    JobDocument.model_validate(doc)
    got = store.get("alice_1")
    assert got == doc
    assert got["created_at"] == T0  # microseconds survive the round trip
    assert got["created_at"].tzinfo is not None
    # updated_at is stamped by the store (a server timestamp on Firestore), never by the caller
    assert before - timedelta(seconds=5) <= got["updated_at"] <= after + timedelta(seconds=5)
    assert store.get("nobody_1") is None


def test_update_changes_nested_fields_and_keeps_the_rest(store):
    create(store, "bob_1")
    first = store.get("bob_1")
    ev = [JobEvent("run_start", "bob_1", T0 + timedelta(seconds=1), planned=(1, 2)),
          JobEvent("step_start", "bob_1", T0 + timedelta(seconds=2), stage=1)]
    doc = store.update("bob_1", lambda d: apply_events(d, ev))
    assert doc["status"] == "processing" and doc["current_stage"] == 1
    assert doc["stages"]["1"]["status"] == "processing"
    assert doc["stages"]["1"]["started_at"] == T0 + timedelta(seconds=2)
    assert doc["stages"]["2"] == first["stages"]["2"] and doc["patient"] == PATIENT
    assert doc["updated_at"] >= first["updated_at"]
    assert store.get("bob_1") == doc


def test_a_change_that_changes_nothing_writes_nothing(store):
    create(store, "carol_1")
    stamped = store.get("carol_1")["updated_at"]
    again = create(store, "carol_1")  # the same creation, replayed
    assert again["updated_at"] == stamped
    store.update("carol_1", lambda d: {**d, "updated_at": datetime(2000, 1, 1, tzinfo=UTC)})
    assert store.get("carol_1")["updated_at"] == stamped  # updated_at alone is no change
    assert store.update("nobody_2", lambda d: None) is None and store.get("nobody_2") is None


def test_a_failing_change_rolls_back(store):
    create(store, "dave_1")
    before = store.get("dave_1")

    def broken(doc):
        doc["status"] = "failed"
        raise RuntimeError("crash in the middle of a change")

    with pytest.raises(RuntimeError):
        store.update("dave_1", broken)
    assert store.get("dave_1") == before
    with pytest.raises(ValueError):
        store.update("dave_2", lambda d: doc_for("someone_else_1"))


def test_queries_by_status_email_sent_and_user(store):
    create(store, "erin_1", status="completed")
    create(store, "erin_2", status="failed", email_sent=True)
    create(store, "erin_3", status="processing")
    create(store, "frank_1", status="failed")
    ids = lambda docs: [d["job_id"] for d in docs]  # noqa: E731
    assert ids(store.find(status=["completed", "failed"], email_sent=False)) == ["erin_1", "frank_1"]
    assert ids(store.find(status=["completed", "failed"])) == ["erin_1", "erin_2", "frank_1"]
    assert ids(store.find(user_id="erin")) == ["erin_1", "erin_2", "erin_3"]
    assert ids(store.find(email_sent=True)) == ["erin_2"]
    assert ids(store.find(status=["submitted"])) == []
    assert len(store.find(limit=2)) == 2
    store.claim_email("frank_1")
    store.release_email("frank_1", "recipient address unusable", permanent=True)
    # a job whose e-mail was given up no longer fills the finder's page of e-mails to send
    assert ids(store.find(status=["completed", "failed"], email_sent=False, email_status=["pending", "retry"])) \
        == ["erin_1"]


def test_email_claim_is_taken_once(store):
    create(store, "gina_1", status="completed")
    assert store.claim_email("gina_1") is True
    assert store.claim_email("gina_1") is False
    assert store.get("gina_1")["email_status"] == "sending"
    assert store.get("gina_1")["email_sent"] is False  # claimed, not yet accepted by the server
    store.release_email("gina_1", "421 try later")
    doc = store.get("gina_1")
    assert (doc["email_sent"], doc["email_status"], doc["email_attempts"]) == (False, "retry", 1)
    assert store.claim_email("gina_1") is True
    store.email_accepted("gina_1")
    assert store.get("gina_1")["email_sent"] is True and store.claim_email("gina_1") is False
    assert store.claim_email("nobody_3") is False


def test_firestore_writes_only_changed_fields_with_dotted_paths(firestore):
    """Another writer (the web app) changes a field while our transaction runs: our commit updates only the
    fields it changed (dotted paths), so the other write survives; on real Firestore the transaction would
    also be retried on the contention."""
    store = FirestoreJobStore(project=firestore.project)
    create(store, "hank_1")
    raw = firestore.client().collection("jobs").document("hank_1")

    def change(doc):
        raw.update({"patient.ethnicity": "Asian", "stages.`5`.error": "set by someone else"})
        doc["stages"]["1"]["status"] = "processing"
        doc["result"]["score"] = 0.5
        return doc

    store.update("hank_1", change)
    got = raw.get().to_dict()
    assert got["stages"]["1"]["status"] == "processing" and got["result"]["score"] == 0.5
    assert got["patient"]["ethnicity"] == "Asian"
    assert got["stages"]["5"]["error"] == "set by someone else"


def test_firestore_documents_are_where_the_web_app_reads_them(firestore):
    store = job_store_from_uri(firestore.uri)
    create(store, "ivy_1", status="completed")
    snap = firestore.client().collection("jobs").document("ivy_1").get()
    assert snap.exists and snap.to_dict()["status"] == "completed"
    assert type(snap.to_dict()["updated_at"]).__name__ == "DatetimeWithNanoseconds"  # a Firestore timestamp


def create_without_email_status(store, job_id: str, **changes) -> None:
    """A document as the pipeline wrote it before email_status existed (written directly on Firestore)."""
    doc = {k: v for k, v in doc_for(job_id, **changes).items() if k != "email_status"}
    if isinstance(store, FirestoreJobStore):
        store.client.collection(store.collection).document(job_id).set({**doc, "updated_at": T0})
    else:
        store.update(job_id, lambda old: doc)
    assert "email_status" not in store.get(job_id)


def test_a_document_without_email_status_counts_as_pending(store):
    """Was: Firestore filtered `email_status in [...]`, which never matches a document without the field, so a job
    finished before the field existed never got its e-mail (the SQLite store counted it as pending)."""
    for n in (1, 2, 3):  # e-mails given up: they come first in job-ID order and fill the first pages
        create(store, f"lena_{n}", status="completed", email_status="failed")
    create_without_email_status(store, "lena_4", status="completed")
    create(store, "lena_5", status="failed", email_status="retry")
    create(store, "lena_6", status="completed", email_sent=True, email_status="sent")
    ids = lambda docs: [d["job_id"] for d in docs]  # noqa: E731
    due = dict(status=["completed", "failed"], email_sent=False, email_status=["pending", "retry"])
    assert ids(store.find(**due)) == ["lena_4", "lena_5"]
    assert ids(store.find(**due, limit=1)) == ["lena_4"]
    assert ids(store.find(email_status=["pending"])) == ["lena_4"]
    assert ids(store.find(email_status=["failed", "sent"])) == ["lena_1", "lena_2", "lena_3", "lena_6"]
    assert store.claim_email("lena_4") is True and store.get("lena_4")["email_status"] == "sending"
    assert ids(store.find(**due)) == ["lena_5"]
