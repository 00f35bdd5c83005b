"""The family's e-mail, sent to a real SMTP server (aiosmtpd on localhost) and read back from it."""
import logging
import re
from datetime import UTC, datetime

import pytest

from igait_pipeline.status.jobdoc import new_job_doc
from igait_pipeline.status.notify import Outcome, SendError, SmtpSettings, compose, deliver, send
from igait_pipeline.status.sqlite_store import SqliteJobStore

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
PATIENT = {"age": 7.0, "sex": "F", "height": 127.0, "weight": 24.9, "ethnicity": "Hispanic or Latino"}
EMAIL = "parent.of.child@example.org"


def forbidden_details(text: str) -> list[str]:
    """Patient details that must never appear in an e-mail body or a log line."""
    found = []
    if "Hispanic" in text or "Latino" in text:
        found.append("ethnicity")
    for label, value in (("height", "127"), ("weight", "24.9"), ("weight", "55")):
        if re.search(rf"(?<![\d.]){re.escape(value)}(?![\d])", text):
            found.append(label)
    if re.search(r"\b(age|sex|female|girl)\b", text, re.I):
        found.append("age/sex")
    return found


def our_logs(caplog) -> str:
    """What this pipeline logged (the SMTP server in the same process logs its own session, addresses and all)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("igait_pipeline"))


def finished_doc(status: str, job_id: str = "user9_4") -> dict:
    doc = new_job_doc(job_id, "user9", T0, PATIENT, EMAIL)
    doc["status"] = status
    if status == "completed":
        doc["current_stage"] = 7
        doc["result"] = {"score": 0.73, "classification": "ASD", "archive_key": f"jobs/{job_id}/stage_7/results.zip"}
        for st in doc["stages"].values():
            st["status"] = "success"
    else:
        doc["current_stage"] = 2
        doc["stages"]["1"]["status"] = "success"
        doc["stages"]["2"]["status"] = "failed"
    return doc


@pytest.fixture
def store(tmp_path):
    return SqliteJobStore(tmp_path / "status.sqlite3")


def settings_for(server, **kw) -> SmtpSettings:
    return SmtpSettings(host=server.host, port=server.port, sender="iGait <results@igait.example>", timeout=5, **kw)


def put(store, doc):
    store.update(doc["job_id"], lambda old: doc)


def test_indeterminate_e_mail_leads_with_the_caveat_and_never_says_asd(store, smtp_server):
    """Issue 9: the e-mail led with the class and dropped the caution."""
    doc = finished_doc("completed")
    doc["result"] = {"score": 0.97, "classification": "INDETERMINATE",
                     "archive_key": "jobs/user9_4/stage_7/results.zip"}
    put(store, doc)
    caveat = "NOT CLINICALLY VALIDATED. This score comes from a model trained on simulated walkers."
    outcome = Outcome(archive_url="https://storage.example/r.zip", threshold=0.5, disclaimer=caveat,
                      clinically_validated=False)
    assert deliver(store, store.get(doc["job_id"]), settings_for(smtp_server), outcome) == "sent"
    body = smtp_server.messages[0].message.get_content()
    assert body.index(caveat) < body.index("Screening result: INDETERMINATE")
    assert "ASD" not in body.replace(caveat, "") and "0.97" not in body
    assert forbidden_details(body) == []
    plain = compose(finished_doc("completed"), outcome, "iGait <results@igait.example>").get_content()
    assert plain.index(caveat) < plain.index("Screening result: ASD (score 0.73")


def test_completed_e_mail_reaches_the_server_with_result_and_link_and_nothing_else(store, smtp_server):
    doc = finished_doc("completed")
    put(store, doc)
    outcome = Outcome(archive_url="https://storage.example/signed/results.zip?sig=1", threshold=0.5,
                      disclaimer="Research prototype: not a clinically validated test.")
    assert deliver(store, store.get(doc["job_id"]), settings_for(smtp_server), outcome) == "sent"
    assert len(smtp_server.messages) == 1
    got = smtp_server.messages[0]
    assert got.rcpt_tos == [EMAIL] and got.mail_from == "results@igait.example"
    assert got.message["Subject"] == "Your iGait screening result is ready (job user9_4)"
    body = got.message.get_content()
    assert "Screening result: ASD (score 0.73 on a scale from 0 to 1" in body
    assert "https://storage.example/signed/results.zip?sig=1" in body
    assert "not a clinically validated test" in body and "not a diagnosis" in body
    assert forbidden_details(body) == [] and forbidden_details(str(got.message["Subject"])) == []
    assert EMAIL not in body
    assert store.get(doc["job_id"])["email_sent"] is True


def test_failed_e_mail_gives_the_reason_and_what_to_do_next(store, smtp_server):
    doc = finished_doc("failed")
    put(store, doc)
    reasons = ("side view: more than one person is visible in 40% of the frames",)
    assert deliver(store, doc, settings_for(smtp_server), Outcome(reasons=reasons)) == "sent"
    body = smtp_server.messages[0].message.get_content()
    assert "could not be completed (job user9_4)" in smtp_server.messages[0].message["Subject"]
    assert reasons[0] in body and "What to do next: please record both videos again" in body
    assert forbidden_details(body) == []


def test_failure_on_our_side_says_nothing_is_needed_from_the_family(store, smtp_server):
    doc = finished_doc("failed")
    doc["stages"]["2"]["status"] = "success"
    doc["stages"]["4"]["status"] = "failed"
    put(store, doc)
    deliver(store, doc, settings_for(smtp_server), Outcome())
    body = smtp_server.messages[0].message.get_content()
    assert "wrong on our side" in body and "(during pose estimation)" in body


def test_never_twice(store, smtp_server):
    doc = finished_doc("completed")
    put(store, doc)
    s = settings_for(smtp_server)
    assert deliver(store, doc, s, Outcome()) == "sent"
    # the same job handed over again (a retried tick holding the old document): the claim refuses
    assert deliver(store, doc, s, Outcome()) == "already_sent"
    assert deliver(store, store.get(doc["job_id"]), s, Outcome()) == "already_sent"
    assert len(smtp_server.messages) == 1


def test_refused_recipient_releases_the_claim_and_the_next_try_sends(store, smtp_server, caplog):
    doc = finished_doc("failed")
    put(store, doc)
    smtp_server.refuse_rcpt = 1
    caplog.set_level(logging.DEBUG)
    assert deliver(store, doc, settings_for(smtp_server), Outcome()) == "retry_later"
    after = store.get(doc["job_id"])
    assert after["email_sent"] is False and smtp_server.messages == []
    assert after["email_status"] == "retry" and after["email_attempts"] == 1
    assert "mailbox unavailable" in after["email_error"] and EMAIL not in after["email_error"]
    assert datetime.fromisoformat(after["email_retry_at"]) > datetime.now(UTC)  # backs off
    assert deliver(store, store.get(doc["job_id"]), settings_for(smtp_server), Outcome()) == "sent"
    assert store.get(doc["job_id"])["email_sent"] is True
    assert len(smtp_server.messages) == 1
    logged = our_logs(caplog)
    assert "user9_4" in logged and "mailbox unavailable" in logged
    assert EMAIL not in logged  # the server's reply quoted nothing we logged


def test_connection_lost_during_the_message_is_not_retried(store, smtp_server, caplog):
    doc = finished_doc("completed")
    put(store, doc)
    smtp_server.drop_data = 1
    caplog.set_level(logging.DEBUG)
    assert deliver(store, doc, settings_for(smtp_server), Outcome()) == "uncertain"
    after = store.get(doc["job_id"])
    assert after["email_sent"] is False  # the server never said it took it
    assert after["email_status"] == "uncertain"  # ... but it may have left: never risk a second one
    assert deliver(store, store.get(doc["job_id"]), settings_for(smtp_server), Outcome()) == "already_sent"
    assert smtp_server.messages == []
    logged = our_logs(caplog)
    assert "delivery uncertain" in logged and EMAIL not in logged
    assert forbidden_details(logged) == []


def test_no_server_listening_is_a_clean_refusal(store):
    doc = finished_doc("completed")
    put(store, doc)
    dead = SmtpSettings(host="127.0.0.1", port=9, timeout=2)  # discard port: nothing listens
    assert deliver(store, doc, dead, Outcome()) == "retry_later"
    assert store.get(doc["job_id"])["email_sent"] is False


def test_login_with_the_configured_credentials(smtp_server):
    smtp_server.credentials = ("igait", "s3cret")
    msg = compose(finished_doc("completed"), Outcome(), "iGait <results@igait.example>")
    send(settings_for(smtp_server, username="igait", password="s3cret"), msg)
    assert len(smtp_server.messages) == 1
    with pytest.raises(SendError) as e:
        send(settings_for(smtp_server, username="igait", password="wrong"), msg)
    assert e.value.uncertain is False and len(smtp_server.messages) == 1


def test_settings_from_environment():
    env = {"IGAIT_SMTP_HOST": "smtp.example", "IGAIT_SMTP_SECURITY": "starttls", "IGAIT_SMTP_USERNAME": "u",
           "IGAIT_SMTP_PASSWORD": "p", "IGAIT_SMTP_FROM": "iGait <a@b.example>"}
    s = SmtpSettings.from_env(env)
    assert (s.host, s.effective_port, s.security, s.username, s.sender) == (
        "smtp.example", 587, "starttls", "u", "iGait <a@b.example>")
    assert SmtpSettings.from_env(env, port=2525, host="other").effective_port == 2525
    assert SmtpSettings.from_env({}) is None
    with pytest.raises(ValueError):
        SmtpSettings(host="h", security="tls")


# ---------- issue 12: what a real server does with a real message ----------
LONG_URL = ("https://storage.googleapis.com/igait-data/igait/jobs/user9_4/stage_7/results.zip?X-Goog-Algorithm="
            "GOOG4-RSA-SHA256&X-Goog-Credential=igait-signer%40igait-prod.iam.gserviceaccount.com%2F20260504%2F"
            "auto%2Fstorage%2Fgoog4_request&X-Goog-Date=20260504T120000Z&X-Goog-Expires=604800&X-Goog-SignedHeaders"
            "=host&X-Goog-Signature=" + "0123456789abcdef" * 32)  # a V4 signed URL is about 800 characters


def realistic_outcome() -> Outcome:
    return Outcome(archive_url=LONG_URL, threshold=0.5,
                   disclaimer="Research prototype trained on synthetic walkers only: not a clinically validated "
                              "test. " * 3)


def test_a_realistic_message_is_accepted_by_a_real_server_with_crlf(store, smtp_server):
    """Was: as_bytes() wrote bare line feeds, aiosmtpd answered `500 Line too long` and the e-mail was marked
    sent anyway (smtp.data's reply was ignored)."""
    doc = finished_doc("completed")
    put(store, doc)
    msg = compose(doc, realistic_outcome(), "iGait <results@igait.example>")
    assert len(msg.as_bytes()) > 1500
    assert deliver(store, doc, settings_for(smtp_server), realistic_outcome()) == "sent"
    assert len(smtp_server.messages) == 1
    raw = smtp_server.messages[0].raw
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert LONG_URL in smtp_server.messages[0].message.get_content()
    assert store.get(doc["job_id"])["email_sent"] is True


def test_a_message_the_server_refuses_is_not_marked_sent(store, smtp_server):
    doc = finished_doc("completed")
    put(store, doc)
    smtp_server.refuse_data = 1
    assert deliver(store, doc, settings_for(smtp_server), realistic_outcome()) == "retry_later"
    after = store.get(doc["job_id"])
    assert after["email_sent"] is False and after["email_status"] == "retry" and "554" in after["email_error"]
    assert smtp_server.messages == []
    # retried until the attempts are used up, never marked sent, then given up with the reason kept
    for _ in range(10):
        smtp_server.refuse_data = 1
        deliver(store, {**store.get(doc["job_id"])}, settings_for(smtp_server), Outcome())
    after = store.get(doc["job_id"])
    assert after["email_status"] == "failed" and after["email_attempts"] == 5 and after["email_sent"] is False


NON_ASCII = "élodie.müller@exämple.de"


def test_a_non_ascii_address_goes_out_through_a_server_that_offers_smtputf8(store, smtp_server_utf8):
    doc = {**finished_doc("completed"), "email": NON_ASCII}
    put(store, doc)
    assert deliver(store, doc, settings_for(smtp_server_utf8), realistic_outcome()) == "sent"
    (got,) = smtp_server_utf8.messages
    assert got.rcpt_tos == ["élodie.müller@xn--exmple-cua.de"]  # local part kept, domain in IDNA
    assert store.get(doc["job_id"])["email_sent"] is True


def test_a_non_ascii_address_without_smtputf8_is_a_clear_refusal_not_a_crash(store, smtp_server, caplog):
    """Was: UnicodeEncodeError in smtplib.rcpt crashed the tick and left email_sent true."""
    doc = {**finished_doc("completed"), "email": NON_ASCII}
    put(store, doc)
    caplog.set_level(logging.DEBUG)
    assert deliver(store, doc, settings_for(smtp_server), Outcome()) == "refused"
    after = store.get(doc["job_id"])
    assert after["email_sent"] is False and after["email_status"] == "failed"
    assert "does not offer SMTPUTF8" in after["email_error"]
    assert smtp_server.messages == []
    assert "élodie" not in our_logs(caplog) and "SMTPUTF8" in our_logs(caplog)


@pytest.mark.parametrize("address,why", [
    ("a@example.org, b@example.org", "one plain address"),  # was: two recipients
    ("family@example.org\n", "white space or a control character"),  # was: accepted
    ("Family <family@example.org>", "one plain address"),
    ("family@example", "no usable domain"),
])
def test_an_address_that_is_not_one_plain_recipient_is_refused_and_never_sent(store, smtp_server, address, why):
    doc = {**finished_doc("failed"), "email": address}
    put(store, doc)
    assert deliver(store, doc, settings_for(smtp_server), Outcome()) == "refused"
    after = store.get(doc["job_id"])
    assert after["email_status"] == "failed" and why in after["email_error"] and after["email_sent"] is False
    assert smtp_server.messages == []
