"""The job document's shape and how events change it (pure functions, no store, no Dagster)."""
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from igait_pipeline.status.jobdoc import (
    JobDocument,
    JobEvent,
    apply_events,
    changed_paths,
    finalized_at,
    job_store_from_uri,
    needs_email,
    same_content,
)
from igait_pipeline.status.sqlite_store import SqliteJobStore

T0 = datetime(2026, 5, 4, 12, 0, 0, 123456, tzinfo=UTC)
JOB = "user7_3"
PATIENT = {"age": 7.0, "sex": "F", "height": 127.0, "weight": 24.9, "ethnicity": "Hispanic or Latino"}


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def upload() -> JobEvent:
    return JobEvent("upload", JOB, t(0), user_id="user7", patient=PATIENT, email="p@example.org")


def full_run(run_id="r1", outcome="success", fail_stage=None, will_retry=False) -> list[JobEvent]:
    evs = [JobEvent("run_start", JOB, t(1), run_id=run_id, planned=tuple(range(1, 8)))]
    clock = 2.0
    for n in range(1, 8):
        evs.append(JobEvent("step_start", JOB, t(clock), run_id=run_id, stage=n))
        clock += 1.5
        if n == fail_stage:
            evs.append(JobEvent("step_failure", JOB, t(clock), run_id=run_id, stage=n, error="boom\n  at line 3"))
            break
        evs.append(JobEvent("materialized", JOB, t(clock), run_id=run_id, stage=n,
                            output_keys=(f"jobs/{JOB}/stage_{n}/b", f"jobs/{JOB}/stage_{n}/a")))
        evs.append(JobEvent("step_success", JOB, t(clock), run_id=run_id, stage=n, duration_ms=1500))
        clock += 0.5
    result = {"score": 0.27, "classification": "NO ASD", "archive_key": f"jobs/{JOB}/stage_7/results.zip"}
    evs.append(JobEvent("run_end", JOB, t(clock), run_id=run_id, outcome=outcome, planned=tuple(range(1, 8)),
                        will_retry=will_retry, result=result if outcome == "success" else None))
    return evs


def test_upload_creates_a_submitted_document_of_the_exact_shape():
    doc = apply_events(None, [upload()])
    JobDocument.model_validate({**doc, "updated_at": T0})
    assert doc["status"] == "submitted" and doc["current_stage"] == 0
    assert doc["created_at"] == T0 and doc["user_id"] == "user7" and doc["patient"] == PATIENT
    assert set(doc["stages"]) == {"1", "2", "3", "4", "5", "6", "7"}
    assert all(s["status"] == "pending" for s in doc["stages"].values())
    assert doc["result"] == {"score": None, "classification": None, "archive_key": None, "model": None}
    assert doc["email"] == "p@example.org" and doc["email_sent"] is False


def test_shape_model_refuses_extra_or_missing_fields():
    doc = {**apply_events(None, [upload()]), "updated_at": T0}
    with pytest.raises(ValueError):
        JobDocument.model_validate({**doc, "progress": 3})
    with pytest.raises(ValueError):
        JobDocument.model_validate({**doc, "stages": {k: v for k, v in doc["stages"].items() if k != "7"}})
    with pytest.raises(ValueError):
        JobDocument.model_validate({**doc, "status": "done"})


def test_successful_run_completes_the_job_with_result_and_stage_times():
    doc = apply_events(None, [upload(), *full_run()])
    assert doc["status"] == "completed" and doc["current_stage"] == 7
    assert doc["result"]["classification"] == "NO ASD" and doc["result"]["score"] == 0.27
    s3 = doc["stages"]["3"]
    assert s3["status"] == "success" and s3["duration_ms"] == 1500
    assert s3["started_at"] < s3["completed_at"]
    assert s3["output_keys"] == [f"jobs/{JOB}/stage_3/a", f"jobs/{JOB}/stage_3/b"]
    assert needs_email(doc)


def test_failed_stage_fails_the_job_and_skips_the_rest():
    doc = apply_events(None, [upload(), *full_run(outcome="failure", fail_stage=4)])
    assert doc["status"] == "failed" and doc["current_stage"] == 4
    assert doc["stages"]["4"]["status"] == "failed"
    assert doc["stages"]["4"]["error"] == "boom at line 3"  # one line, white space folded
    assert doc["stages"]["4"]["duration_ms"] == 1500
    assert [doc["stages"][str(n)]["status"] for n in (5, 6, 7)] == ["skipped"] * 3
    assert doc["result"]["score"] is None


def test_failure_that_dagster_retries_is_not_final_and_the_retry_completes():
    first = apply_events(None, [upload(), *full_run(outcome="failure", fail_stage=5, will_retry=True)])
    assert first["status"] == "processing" and not needs_email(first)
    done = apply_events(first, full_run(run_id="r2"))
    assert done["status"] == "completed"
    assert done["stages"]["5"] == {**done["stages"]["5"], "status": "success", "error": None}


def test_run_ending_while_a_stage_runs_marks_that_stage_failed():
    evs = [upload(), JobEvent("run_start", JOB, t(1), run_id="r", planned=(1, 2)),
           JobEvent("step_start", JOB, t(2), run_id="r", stage=1),
           JobEvent("run_end", JOB, t(5), run_id="r", outcome="canceled", planned=(1, 2))]
    doc = apply_events(None, evs)
    assert doc["stages"]["1"]["status"] == "failed" and "canceled" in doc["stages"]["1"]["error"]
    assert doc["stages"]["1"]["duration_ms"] == 3000
    assert doc["stages"]["2"]["status"] == "skipped" and doc["status"] == "failed"


def test_partial_rerun_resets_only_its_stages_and_keeps_the_job_completed():
    done = apply_events(None, [upload(), *full_run()])
    rerun = [JobEvent("run_start", JOB, t(100), run_id="r9", planned=(2,)),
             JobEvent("step_start", JOB, t(101), run_id="r9", stage=2),
             JobEvent("step_success", JOB, t(102), run_id="r9", stage=2, duration_ms=1000),
             JobEvent("run_end", JOB, t(103), run_id="r9", outcome="success", planned=(2,))]
    doc = apply_events({**done, "email_sent": True}, rerun)
    assert doc["status"] == "completed" and doc["email_sent"] is True
    assert doc["stages"]["2"]["started_at"] == t(101) and doc["stages"]["3"] == done["stages"]["3"]
    assert doc["result"] == done["result"]


@pytest.mark.parametrize("cut", [0, 3, 9, 17, 25])
def test_replaying_any_suffix_of_the_events_gives_the_same_document(cut):
    events = [upload(), *full_run(outcome="failure", fail_stage=3), *full_run(run_id="r2")]
    final = apply_events(None, events)
    # a crash after `cut` events were written: the next tick applies from an earlier cursor again
    partial = apply_events(None, events[:cut])
    for start in range(0, cut + 1):
        assert apply_events(partial, events[start:], seed=upload()) == final


def test_missing_document_is_rebuilt_from_a_seed_upload():
    doc = apply_events(None, full_run(), seed=upload())
    assert doc["created_at"] == T0 and doc["status"] == "completed"
    assert apply_events(None, full_run()) is None  # no upload, no seed: nothing to write


def test_diff_and_equality_helpers():
    a = apply_events(None, [upload()])
    b = apply_events(a, full_run()[:2])
    paths = changed_paths(a, b)
    assert paths == {("status",): "processing", ("current_stage",): 1,
                     ("stages", "1", "status"): "processing", ("stages", "1", "started_at"): t(2)}
    assert same_content(a, {**a, "updated_at": T0}) and not same_content(a, b)
    assert finalized_at(b) == t(2)


def test_store_uri_parsing(tmp_path, monkeypatch):
    store = job_store_from_uri(f"sqlite:{tmp_path}/a/status.db")
    assert isinstance(store, SqliteJobStore) and store.path == tmp_path / "a" / "status.db"
    assert job_store_from_uri(f"sqlite://{tmp_path}/b.db").path == tmp_path / "b.db"
    monkeypatch.setenv("IGAIT_STATUS_URI", f"sqlite:{tmp_path}/env.db")
    assert job_store_from_uri().path == tmp_path / "env.db"
    with pytest.raises(ValueError):
        SqliteJobStore(":memory:")


def test_runs_of_a_replaced_upload_are_ignored_untagged_runs_and_older_documents_take_every_run():
    def tagged(evs, version):
        return [replace(e, upload_version=version) for e in evs]

    # a store rebuilt from history meets both uploads in turn: the first run counts until the second upload
    up_a, up_b = replace(upload(), upload_version="A"), replace(upload(), upload_version="B", at=t(30))
    run_a = tagged(full_run("ra"), "A")
    doc = apply_events(None, [up_a, *run_a[:5], up_b, *run_a[5:]])
    assert doc["upload_version"] == "B" and doc["current_stage"] == 2 and doc["status"] == "processing"
    assert doc["result"]["score"] is None  # the first upload's run ended, but its result is not the job's
    done = apply_events(doc, tagged(full_run("rb"), "B"))
    assert done["status"] == "completed" and done["result"]["score"] == 0.27
    JobDocument.model_validate(done)

    # a run without the tag (one stage re-made from the UI) acts on the current upload's files: it counts
    assert apply_events(doc, full_run("ui"))["status"] == "completed"
    # a document written before upload_version existed takes every run
    old = {k: v for k, v in apply_events(None, [upload()]).items() if k != "upload_version"}
    JobDocument.model_validate(old)
    assert apply_events(old, run_a)["status"] == "completed"
