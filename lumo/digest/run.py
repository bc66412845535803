"""Sending: the digest run per (user, day), the outbox of approved emails, and who is due a digest (the job
queue, lumo.jobs, runs them on schedule).

Exactly-once is enforced by the database, not by the process. A digest send holds a conditional
UPDATE on its digest_runs row in a transaction that stays open until the message is about to leave:
a concurrent run blocks on that row, and a crash before then rolls the claim back (the next run sends
it). Just before the message's end is written, the row is committed as `sending`: a crash from there
on may have delivered it, so it is never sent again. A run that finds it `sending` leaves it to the
sender; once that is older than any send takes, it was cut off and becomes `uncertain`.
An outbox email is claimed by a committed conditional UPDATE (queued -> sending) before it is sent:
a customer email that may have left is never sent again by a machine. When the server's answer is
lost after the message was transmitted, or a claim was interrupted, the email becomes `uncertain`
and waits for an operator (`lumo outbox retry ID` or `lumo outbox mark-sent ID`).
Nothing is ever marked sent before the SMTP server took it (or an operator said it arrived).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm.errors import InvalidInput, LumoError, NotFound
from lumo.crm.ledger import record_activity
from lumo.crm.users import user_by_email
from lumo.db.models import DigestRun, Invoice, OutboxEmail, User
from lumo.digest.build import Digest, build_digest
from lumo.digest.mailer import MailError
from lumo.mail.errors import DeliveryError
from lumo.mail.providers import Providers
from lumo.mail.transport import SmtpSender, transport_for

log = logging.getLogger("lumo.digest")

DIGEST_ROLES = ("rep", "manager")
# An outbox email whose failures were all transient goes back to the queue until this many runs tried it.
OUTBOX_MAX_ATTEMPTS = 3
# A claim ('sending') older than this was interrupted (a crash): longer than any send with its retries takes.
SENDING_STALE_AFTER = dt.timedelta(minutes=15)
# Waiting for an operator: the email may or may not have arrived.
OPERATOR_STATUSES = ("uncertain", "failed")
DONE = ("sent", "uncertain", "sending")  # a digest run in any of these is not sent again
NOT_DUE = ("sent", "uncertain")  # 'sending' stays due, so that a cut-off send is found and reported
UNCERTAIN_DIGEST = "an earlier send was transmitted but never confirmed: it may have been delivered, so it is not resent"
INTERRUPTED_DIGEST = "an earlier send was cut off while transmitting: it may have been delivered, so it is not resent"


Sender = SmtpSender  # what sends a digest or an approved email by SMTP (one protocol, in lumo.mail.transport)


@dataclass(frozen=True)
class DigestResult:
    user_id: str
    email: str
    day: dt.date
    status: str  # built (no send) | sent | already_sent | failed | uncertain (may have arrived: not resent)
    error: str | None = None
    digest: Digest | None = None

    def line(self) -> str:
        words = {"built": "built", "sent": "sent", "already_sent": "already sent", "uncertain": f"uncertain: {self.error}"}
        return f"{self.email} ({self.day.isoformat()}): {words.get(self.status) or f'failed: {self.error}'}"


@dataclass(frozen=True)
class OutboxResult:
    id: int
    to: str
    subject: str
    status: str  # sent | queued (transient failure, retried by the next run) | failed | uncertain
    error: str | None = None

    def line(self) -> str:
        if self.status == "sent":
            return f"#{self.id} to {self.to}: sent"
        if self.status == "uncertain":
            return (
                f"#{self.id} to {self.to}: uncertain, not retried: {self.error}; check with the recipient, then "
                f"`lumo outbox retry {self.id}` (same Message-ID) or `lumo outbox mark-sent {self.id}`"
            )
        retry = " (will retry)" if self.status == "queued" else ""
        return f"#{self.id} to {self.to}: failed{retry}: {self.error}"


# --- digests -------------------------------------------------------------------------------------


def send_digests(
    session_factory: sessionmaker[Session],
    mailer: Sender | None,
    day: dt.date | None,
    *,
    user_email: str | None = None,
    send: bool = True,
    now: dt.datetime,
    top: int = 5,
) -> list[DigestResult]:
    """Build (and with `send`, send) the digest of every rep and manager with an email, or of one user.

    `day` None means each user's own calendar day at `now`; `mailer` may be None when not sending.
    """
    with session_factory() as session:
        users = _digest_users(session, user_email)
    targets = [(user, day or now.astimezone(_tz(user)).date()) for user in users]
    return run_digests(session_factory, mailer, targets, send=send, now=now, top=top)


def run_digests(
    session_factory: sessionmaker[Session],
    mailer: Sender | None,
    targets: Iterable[tuple[User, dt.date]],
    *,
    send: bool,
    now: dt.datetime,
    top: int = 5,
) -> list[DigestResult]:
    results = []
    for user, day in targets:
        result = _digest_for(session_factory, mailer, user, day, send=send, now=now, top=top)
        log.info("digest.%s user=%s day=%s error=%s", result.status, user.email, day, result.error)
        results.append(result)
    return results


def _digest_users(session: Session, email: str | None) -> list[User]:
    if email is None:
        query = select(User).where(User.role.in_(DIGEST_ROLES), User.email != "").order_by(User.email)
        return list(session.scalars(query))
    return [user_by_email(session, email)]


def _tz(user: User) -> ZoneInfo:
    return ZoneInfo(user.timezone or "UTC")


def _digest_for(
    session_factory: sessionmaker[Session],
    mailer: Sender | None,
    user: User,
    day: dt.date,
    *,
    send: bool,
    now: dt.datetime,
    top: int,
) -> DigestResult:
    def result(status: str, error: str | None = None, digest: Digest | None = None) -> DigestResult:
        return DigestResult(user.id, user.email, day, status, error, digest)

    status, error = _run_status(session_factory, user.id, day, now) if send else (None, None)
    if status in ("sent", "sending"):
        return result("already_sent")  # skip the build too: it is the expensive part
    if status == "uncertain":  # it may have arrived: resending could make two
        return result("uncertain", error or UNCERTAIN_DIGEST)
    try:
        with session_factory() as session:
            digest = build_digest(session, user, day, top=top)
    except LumoError as exc:  # one user's bad data must not stop everyone's digest
        return result("failed", f"cannot build the digest: {exc}")
    if not send:
        return result("built", digest=digest)
    assert mailer is not None, "sending needs a mailer"
    if status is None:
        _ensure_run_row(session_factory, user.id, day)
    with session_factory() as session:
        run = (DigestRun.user_id == user.id) & (DigestRun.day == day)
        claimed = cast(  # an UPDATE's result is a cursor result, which counts the rows it changed
            CursorResult[Any],
            session.execute(update(DigestRun).where(run, DigestRun.status.not_in(DONE)).values(attempts=DigestRun.attempts + 1)),
        ).rowcount
        if not claimed:  # another run sent it while we were building
            return result("already_sent", digest=digest)

        def transmitting() -> None:  # ends the claim's transaction: from here a crash must not lead to a resend
            session.execute(update(DigestRun).where(run).values(status="sending", claimed_at=now))
            session.commit()

        try:
            mailer.send([user.email], digest.subject, digest.text, html=digest.html, on_transmit=transmitting)
        except MailError as exc:
            failed = "uncertain" if exc.uncertain else "failed"
            session.execute(update(DigestRun).where(run).values(status=failed, last_error=str(exc)))
            session.commit()
            return result(failed, str(exc), digest)
        session.execute(update(DigestRun).where(run).values(status="sent", sent_at=now, last_error=None))
        session.commit()
    return result("sent", digest=digest)


def _run_status(
    session_factory: sessionmaker[Session], user_id: str, day: dt.date, now: dt.datetime
) -> tuple[str | None, str | None]:
    """The run's (status, last error); a 'sending' older than any send takes was cut off: uncertain from now on."""
    run = (DigestRun.user_id == user_id) & (DigestRun.day == day)
    with session_factory() as session:
        found = session.execute(select(DigestRun.status, DigestRun.last_error, DigestRun.claimed_at).where(run)).first()
        if found is None:
            return None, None
        status, error, claimed_at = found
        if status == "sending" and claimed_at is not None and claimed_at < now - SENDING_STALE_AFTER:
            status, error = "uncertain", INTERRUPTED_DIGEST
            session.execute(update(DigestRun).where(run, DigestRun.status == "sending").values(status=status, last_error=error))
            session.commit()
        return status, error


def _ensure_run_row(session_factory: sessionmaker[Session], user_id: str, day: dt.date) -> None:
    """Insert the pending (user, day) row unless it exists; the unique key settles a race."""
    with session_factory() as session:
        session.add(DigestRun(user_id=user_id, day=day, status="pending", attempts=0))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


def due_digests(session_factory: sessionmaker[Session], now: dt.datetime, at: dt.time) -> list[tuple[str, dt.date]]:
    """(user id, local day) of each rep and manager whose clock has reached `at` today and whose digest of that
    day is not sent yet (nor uncertain): what a job queue should run now. A failed one is due again (retried,
    never marked sent); so is one being sent, whose job finds it cut off once it is old enough."""
    with session_factory() as session:
        targets = due_targets(_digest_users(session, None), now, at)
        days = {day for _, day in targets}
        sent = (
            set(
                session.execute(
                    select(DigestRun.user_id, DigestRun.day).where(DigestRun.day.in_(days), DigestRun.status.in_(NOT_DUE))
                )
            )
            if days
            else set()
        )
    return [(user.id, day) for user, day in targets if (user.id, day) not in sent]


def send_digest_of(
    session_factory: sessionmaker[Session], mailer: Sender, user_id: str, day: dt.date, *, now: dt.datetime
) -> DigestResult:
    """Send one user's digest of `day`, once (the DigestRun record decides); a user gone since is reported failed."""
    with session_factory() as session:
        user = session.get(User, user_id)
    if user is None or not user.email:
        return DigestResult(user_id, "", day, "failed", "no such user (or no email)")
    [result] = run_digests(session_factory, mailer, [(user, day)], send=True, now=now)
    return result


# --- outbox --------------------------------------------------------------------------------------


def send_outbox(
    session_factory: sessionmaker[Session], mailer: Sender, now: dt.datetime, *, mailboxes: Providers | None = None
) -> list[OutboxResult]:
    """Send every queued approved email once, and log it as an email activity on each invoice it covers.

    First, claims interrupted mid-send are reported as uncertain (they may have left); they are not resent.
    With `mailboxes`, a rep who connected their own mailbox sends from it (lumo.mail.transport); else SMTP.
    """
    results = _expire_claims(session_factory, now)
    with session_factory() as session:
        ids = list(session.scalars(select(OutboxEmail.id).where(OutboxEmail.status == "queued").order_by(OutboxEmail.id)))
    results += [r for outbox_id in ids if (r := _send_one(session_factory, mailer, outbox_id, now, mailboxes)) is not None]
    for r in results:
        log.info("outbox.%s id=%d to=%s error=%s", r.status, r.id, r.to, r.error)
    return results


def queued_outbox_ids(session_factory: sessionmaker[Session]) -> list[int]:
    with session_factory() as session:
        return list(session.scalars(select(OutboxEmail.id).where(OutboxEmail.status == "queued").order_by(OutboxEmail.id)))


def expire_outbox_claims(session_factory: sessionmaker[Session], now: dt.datetime) -> list[OutboxResult]:
    """Claims interrupted mid-send (older than SENDING_STALE_AFTER) become uncertain: they may have left."""
    results = _expire_claims(session_factory, now)
    for r in results:
        log.info("outbox.%s id=%d to=%s error=%s", r.status, r.id, r.to, r.error)
    return results


def send_outbox_email(
    session_factory: sessionmaker[Session],
    mailer: Sender,
    outbox_id: int,
    now: dt.datetime,
    mailboxes: Providers | None = None,
) -> OutboxResult | None:
    """Send one queued email, once: None when it is not queued (sent, taken by another sender, or waiting for an
    operator). A `queued` result is a transient failure, to be retried. With `mailboxes`, as `send_outbox`."""
    result = _send_one(session_factory, mailer, outbox_id, now, mailboxes)
    if result is not None:
        log.info("outbox.%s id=%d to=%s error=%s", result.status, result.id, result.to, result.error)
    return result


def _expire_claims(session_factory: sessionmaker[Session], now: dt.datetime) -> list[OutboxResult]:
    reason = "the send was interrupted (the sender stopped mid-send): it may have been delivered"
    with session_factory() as session:
        stale = (OutboxEmail.status == "sending") & (OutboxEmail.claimed_at < now - SENDING_STALE_AFTER)
        rows = session.execute(select(OutboxEmail.id, OutboxEmail.to, OutboxEmail.subject).where(stale)).all()
        session.execute(update(OutboxEmail).where(stale).values(status="uncertain", last_error=reason))
        session.commit()
    return [OutboxResult(i, to, subject, "uncertain", reason) for i, to, subject in rows]


def _send_one(
    session_factory: sessionmaker[Session], mailer: Sender, outbox_id: int, now: dt.datetime, mailboxes: Providers | None
) -> OutboxResult | None:
    this = OutboxEmail.id == outbox_id
    with session_factory() as session:
        claimed = cast(
            CursorResult[Any],
            session.execute(
                update(OutboxEmail)
                .where(this, OutboxEmail.status == "queued")
                .values(status="sending", claimed_at=now, attempts=OutboxEmail.attempts + 1)
            ),
        ).rowcount
        if not claimed:  # another worker took it meanwhile
            return None
        email = session.scalars(select(OutboxEmail).where(this)).one()
        transport = transport_for(session, email, mailer, mailboxes)  # the one place SMTP and mailboxes part
        if email.message_id is None:
            email.message_id = transport.new_message_id()
        email.sent_via = transport.via
        session.commit()  # the claim and the Message-ID are durable before anything goes over the wire
        try:
            transport.deliver(session, email, now)
        except DeliveryError as exc:
            if exc.uncertain:
                status = "uncertain"
            else:
                status = "queued" if exc.transient and email.attempts < OUTBOX_MAX_ATTEMPTS else "failed"
            email.status, email.last_error = status, str(exc)
            session.commit()
            return OutboxResult(email.id, email.to, email.subject, status, str(exc))
        _mark_sent(session, email, now)
        session.commit()
        return OutboxResult(email.id, email.to, email.subject, "sent")


def _mark_sent(session: Session, email: OutboxEmail, now: dt.datetime) -> None:
    email.status, email.sent_at, email.last_error = "sent", now, None
    numbers = _split(email.invoice_numbers)
    for invoice in session.scalars(select(Invoice).where(Invoice.number.in_(numbers)).order_by(Invoice.number)):
        record_activity(session, invoice, kind="email", at=now, by_id=email.user_id, text=f"Sent: {email.subject}")


# --- the operator's decisions on emails a machine must not resend --------------------------------


def outbox_waiting(session: Session) -> list[OutboxEmail]:
    """Emails waiting for an operator: uncertain (may have arrived) and failed, oldest first."""
    return list(session.scalars(select(OutboxEmail).where(OutboxEmail.status.in_(OPERATOR_STATUSES)).order_by(OutboxEmail.id)))


def retry_outbox_email(session: Session, outbox_id: int) -> OutboxEmail:
    """Queue an uncertain or failed email again (the operator checked it did not arrive); same Message-ID."""
    email = _waiting_email(session, outbox_id)
    email.status, email.attempts, email.claimed_at = "queued", 0, None
    return email


def mark_outbox_sent(session: Session, outbox_id: int, now: dt.datetime) -> OutboxEmail:
    """Record an uncertain email as sent (the operator confirmed it arrived): logged on its invoices."""
    email = _waiting_email(session, outbox_id, statuses=("uncertain",))
    _mark_sent(session, email, now)
    return email


def _waiting_email(session: Session, outbox_id: int, statuses: tuple[str, ...] = OPERATOR_STATUSES) -> OutboxEmail:
    email = session.get(OutboxEmail, outbox_id, with_for_update=True)
    if email is None:
        raise NotFound(f"no outbox email #{outbox_id}")
    if email.status not in statuses:
        raise InvalidInput(f"outbox email #{outbox_id} is {email.status}, not {' or '.join(statuses)}: nothing to do")
    return email


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


# --- who is due ------------------------------------------------------------------------------------


def due_targets(users: Iterable[User], now: dt.datetime, at: dt.time) -> list[tuple[User, dt.date]]:
    """Each user whose local clock has reached `at` today, with that local day."""
    targets = []
    for user in users:
        local = now.astimezone(_tz(user))
        if local.time() >= at:
            targets.append((user, local.date()))
    return targets
