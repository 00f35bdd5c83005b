"""The one e-mail a family gets when its job is completed or has failed, sent over SMTP.

What the e-mail says: the job ID, the result (classification and score, with the model's disclaimer) or a plain
reason and what to do next, and where to fetch the results archive. Nothing else about the child: no age, sex,
height, weight or ethnicity, and the address appears only as the recipient. Logs name the job ID only.

The message is written with `email.policy.SMTP` (CRLF line ends, lines folded; a body line too long for SMTP is
quoted-printable), or `email.policy.SMTPUTF8` when the recipient's local part is not ASCII. The recipient is
normalised by `schemas.normalize_email` (one address; IDNA domain); a non-ASCII local part is sent only to a
server that offers SMTPUTF8, otherwise the e-mail is refused for good with that reason in the document.

Never twice, and `email_sent` only once the server said "250" to the message: `deliver` first claims the job
(`email_status` pending/retry -> sending in a store transaction), then sends, then records the outcome.
 - Accepted (250 after DATA): `email_sent` true, `email_status` sent.
 - Refused before or at the end of the message (cannot connect, login refused, sender or recipient refused, the
   server answers the message with an error, e.g. `500 Line too long`): the e-mail certainly did not leave. The
   attempt is counted with its reason (`email_error`) and retried after a back-off (`email_retry_at`), at most
   EMAIL_MAX_ATTEMPTS times; an unusable address is not retried (`email_status` failed).
 - The connection breaks while the message is being handed over, or the process dies between the claim and the
   server's reply: the e-mail may or may not have left. `email_status` stays sending / becomes uncertain and
   the sensor never tries it again: the family may miss this e-mail but never gets it twice. An operator who
   finds it was not delivered sets `email_status` back to "retry".

SMTP settings come from configuration (`SmtpSettings`, or the SmtpResource of the Dagster definitions) or from
the environment: IGAIT_SMTP_HOST, IGAIT_SMTP_PORT, IGAIT_SMTP_SECURITY (none | starttls | ssl),
IGAIT_SMTP_USERNAME, IGAIT_SMTP_PASSWORD, IGAIT_SMTP_FROM. No host: no e-mail (jobs wait, email_sent false).
No Dagster import here.
"""
from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from typing import Literal

from igait_pipeline.layout import STAGES
from igait_pipeline.schemas import AddressError, normalize_email
from igait_pipeline.status.jobdoc import JobStore, needs_email

STAGE_LABELS = {s.number: s.label for s in STAGES[1:]}

log = logging.getLogger(__name__)

Security = Literal["none", "starttls", "ssl"]
_DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 0  # 0: the usual port for `security`
    security: Security = "none"
    username: str = ""
    password: str = ""
    sender: str = "iGait <no-reply@igait.local>"
    timeout: float = 30.0

    def __post_init__(self):
        if self.security not in _DEFAULT_PORTS:
            raise ValueError(f"SMTP security {self.security!r} is not one of none, starttls, ssl")

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self.security]

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **overrides) -> SmtpSettings | None:
        """Settings from IGAIT_SMTP_*; keyword arguments that are not empty win. None if no host is set."""
        values = {
            "host": env.get("IGAIT_SMTP_HOST", ""),
            "port": int(env.get("IGAIT_SMTP_PORT") or 0),
            "security": env.get("IGAIT_SMTP_SECURITY") or "none",
            "username": env.get("IGAIT_SMTP_USERNAME", ""),
            "password": env.get("IGAIT_SMTP_PASSWORD", ""),
            "sender": env.get("IGAIT_SMTP_FROM") or cls.sender,
            "timeout": float(env.get("IGAIT_SMTP_TIMEOUT") or cls.timeout),
        }
        values.update({k: v for k, v in overrides.items() if v not in (None, "", 0)})
        return cls(**values) if values["host"] else None


_ADDRESS = re.compile(r"[^@\s<>()\[\]'\",;:]+@[^@\s<>()\[\]'\",;:]+")


def redact(text: str) -> str:
    """Drop e-mail addresses from a text bound for the logs (servers quote the recipient in their replies)."""
    return _ADDRESS.sub("<address>", text)


class SendError(Exception):
    """The e-mail was not accepted. `uncertain`: it may have left anyway (the connection broke mid-message).
    `permanent`: trying again cannot help (the address is unusable, or needs SMTPUTF8 the server lacks)."""

    def __init__(self, message: str, uncertain: bool, permanent: bool = False):
        super().__init__(redact(message))
        self.uncertain = uncertain
        self.permanent = permanent


# ---------- the message ----------
@dataclass(frozen=True)
class Outcome:
    """What the e-mail reports, gathered by the caller from the job document and the job's files."""

    archive_url: str | None = None  # a signed URL on GCS, a path locally
    threshold: float | None = None
    disclaimer: str | None = None
    reasons: tuple[str, ...] = ()  # plain reasons the videos were refused (validation), if that is why it failed
    upload_refused: str | None = None  # why the upload itself was refused (no stage ran), if it was
    clinically_validated: bool | None = None  # of the model that scored the job (prediction.json)


def compose(doc: dict, outcome: Outcome, sender: str) -> EmailMessage:
    """The message (raises AddressError if the document's address is not one usable recipient)."""
    job_id = doc["job_id"]
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = normalize_email(doc["email"])
    msg["Message-ID"] = make_msgid(idstring=f"igait.{job_id}")
    if doc["status"] == "completed":
        msg["Subject"] = f"Your iGait screening result is ready (job {job_id})"
        body = _completed_body(doc, outcome)
    else:
        msg["Subject"] = f"Your iGait screening could not be completed (job {job_id})"
        body = _failed_body(doc, outcome)
    msg.set_content(body)
    return msg


def _completed_body(doc: dict, o: Outcome) -> str:
    res = doc.get("result") or {}
    score, cls = res.get("score"), res.get("classification")
    lines = [
        "Hello,",
        "",
        f"The iGait screening of the walking videos you sent us (job {doc['job_id']}) is complete.",
        "",
    ]
    # The caveat comes first: an unvalidated model, or a job the model cannot judge, is said before any result.
    if o.disclaimer and o.clinically_validated is not True:
        lines += [o.disclaimer, ""]
    if cls == "INDETERMINATE":
        lines.append("Screening result: INDETERMINATE. The screening could not give a result for these videos: "
                     "they, or the child, lie outside what the screening model was built for, or the walk could "
                     "not be measured reliably enough. The reasons are in SUMMARY.txt in the archive below.")
    elif cls is not None:
        score_txt = f"{score:.2f} on a scale from 0 to 1" if isinstance(score, (int, float)) else "not available"
        lines.append(f"Screening result: {cls} (score {score_txt}"
                     + (f"; results at or above {o.threshold:g} are reported as ASD" if o.threshold is not None
                        else "") + ").")
    else:
        lines.append("The screening finished; the result is in the archive below.")
    lines += [
        "",
        "This is a screening result, not a diagnosis. Please talk about it with your child's doctor, who can "
        "decide whether a full assessment is needed.",
    ]
    if o.disclaimer and o.clinically_validated is True:
        lines += ["", o.disclaimer]
    if o.archive_url:
        lines += ["", "Your results (a ZIP archive) can be downloaded here:", o.archive_url]
    lines += ["", "Thank you for using iGait.", ""]
    return "\n".join(lines)


def _failed_body(doc: dict, o: Outcome) -> str:
    failed = [int(n) for n, st in sorted(doc["stages"].items(), key=lambda kv: int(kv[0]))
              if st["status"] == "failed"]
    stage = failed[0] if failed else None
    lines = ["Hello,", "", f"We could not complete the iGait screening of the videos you sent us "
                           f"(job {doc['job_id']}).", ""]
    if o.upload_refused:
        lines += ["What you sent could not be used:", f"  - {o.upload_refused}", "",
                  "What to do next: please check the details and send both videos again in a new submission."]
    elif o.reasons:
        lines += ["Our automatic check found a problem with the videos:"]
        lines += [f"  - {r}" for r in o.reasons]
        lines += ["", "What to do next: please record both videos again (one from the front, one from the side) "
                      "with only your child in the picture, walking the whole way across, with the whole body "
                      "visible from head to feet, and send them in a new submission."]
    elif stage == 1:
        lines += ["We could not read one of the videos, or the details sent with them were incomplete.",
                  "", "What to do next: please check the details and send the two videos again in a new "
                      "submission (common phone formats such as MP4 or MOV are fine)."]
    else:
        where = f" (during {STAGE_LABELS[stage]})" if stage in STAGE_LABELS else ""
        lines += [f"Something went wrong on our side while processing the videos{where}.", "",
                  "What to do next: nothing for now. We have been notified and will look into it; you do not "
                  "need to record the videos again unless we ask you to."]
    if o.archive_url:
        lines += ["", "What was produced so far can be downloaded here:", o.archive_url]
    lines += ["", "If you have questions, reply to this e-mail and mention the job number above.", ""]
    return "\n".join(lines)


# ---------- sending ----------
def send(settings: SmtpSettings, msg: EmailMessage) -> None:
    """Hand the message to the SMTP server; raise SendError saying whether it may have left anyway.

    Success means the server answered 250 to the message itself; every other reply is a SendError."""
    try:
        recipient = normalize_email(str(msg["To"]))
    except AddressError as e:
        raise SendError(f"recipient address unusable: {e}", uncertain=False, permanent=True) from None
    utf8 = not recipient.isascii()
    try:
        if settings.security == "ssl":
            smtp = smtplib.SMTP_SSL(settings.host, settings.effective_port, timeout=settings.timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(settings.host, settings.effective_port, timeout=settings.timeout)
    except (OSError, smtplib.SMTPException) as e:
        raise SendError(f"cannot connect to {settings.host}:{settings.effective_port}: {e}", uncertain=False)
    try:
        try:
            smtp.ehlo()
            if settings.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.username:
                smtp.login(settings.username, settings.password)
            options = []
            if utf8:
                if not smtp.has_extn("smtputf8"):
                    raise SendError("the recipient address has non-ASCII characters before the '@' and the SMTP "
                                    "server does not offer SMTPUTF8", uncertain=False, permanent=True)
                options = ["SMTPUTF8"] + (["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else [])
            code, resp = smtp.mail(parseaddr(str(msg["From"]))[1], options)
            if code != 250:
                raise SendError(f"sender refused: {code} {resp!r}", uncertain=False)
            code, resp = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise SendError(f"recipient refused: {code} {resp!r}", uncertain=False)
            payload = msg.as_bytes(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
        except (OSError, smtplib.SMTPException, UnicodeError) as e:
            raise SendError(f"refused before the message was sent: {e}", uncertain=False)
        try:
            code, resp = smtp.data(payload)
        except smtplib.SMTPDataError as e:  # an explicit error reply to DATA: the server did not take the message
            raise SendError(f"message refused: {e.smtp_code} {e.smtp_error!r}", uncertain=False)
        except (TimeoutError, OSError, smtplib.SMTPException) as e:
            raise SendError(f"connection lost while sending the message: {e}", uncertain=True)
        if code != 250:  # smtplib returns the reply to the message itself; it does not raise
            raise SendError(f"message refused: {code} {resp!r}", uncertain=False)
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


DeliveryResult = Literal["sent", "already_sent", "retry_later", "refused", "uncertain"]


def deliver(store: JobStore, doc: dict, settings: SmtpSettings, outcome: Outcome) -> DeliveryResult:
    """Claim the job's e-mail, send it, record the outcome (see the module docstring for the guarantees)."""
    job_id = doc["job_id"]
    if not needs_email(doc):
        return "already_sent"
    try:
        msg = compose(doc, outcome, settings.sender)
    except AddressError as e:
        if store.claim_email(job_id):
            store.release_email(job_id, f"recipient address unusable: {e}", permanent=True)
            log.error("job %s: e-mail not sent: recipient address unusable (%s)", job_id, e)
        return "refused"
    if not store.claim_email(job_id):
        return "already_sent"
    log.info("job %s: e-mail claimed, sending (%s)", job_id, doc["status"])
    try:
        send(settings, msg)
    except SendError as e:
        if e.uncertain:
            store.email_uncertain(job_id, str(e))
            log.error("job %s: e-mail delivery uncertain (%s); it is not resent", job_id, e)
            return "uncertain"
        after = store.release_email(job_id, str(e), permanent=e.permanent)
        if after is not None and after.get("email_status") == "failed":
            log.error("job %s: e-mail not sent, giving up after %s attempt(s): %s", job_id,
                      after.get("email_attempts"), e)
            return "refused"
        log.warning("job %s: e-mail not sent (%s); will try again after %s", job_id, e,
                    (after or {}).get("email_retry_at"))
        return "retry_later"
    except BaseException:
        log.error("job %s: e-mail delivery uncertain (unexpected error); it is not resent", job_id)
        raise
    store.email_accepted(job_id)
    log.info("job %s: e-mail sent", job_id)
    return "sent"
