"""Sending: the digest run per (user, day), the outbox of approved emails, and the morning scheduler.

Exactly-once is enforced by the database, not by the process: each send holds a conditional
UPDATE on its row (digest_runs or outbox) in a transaction that stays open until the row is
marked sent or failed. A concurrent run blocks on that row and then finds it sent; a crash rolls
the claim back so the next run retries. Nothing is ever marked sent before the SMTP server took it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm.errors import LumoError
from lumo.crm.ledger import record_activity
from lumo.crm.users import user_by_email
from lumo.db.models import DigestRun, Invoice, OutboxEmail, User
from lumo.digest.build import Digest, build_digest
from lumo.digest.mailer import MailError

log = logging.getLogger("lumo.digest")

DIGEST_ROLES = ("rep", "manager")
# An outbox email whose failures were all transient goes back to the queue until this many runs tried it.
OUTBOX_MAX_ATTEMPTS = 3


class Sender(Protocol):
    def send(self, to: list[str], subject: str, text: str, html: str | None = None, cc: list[str] = ...) -> None: ...


@dataclass(frozen=True)
class DigestResult:
    user_id: str
    email: str
    day: dt.date
    status: str  # built (no send) | sent | already_sent | failed
    error: str | None = None
    digest: Digest | None = None

    def line(self) -> str:
        words = {"built": "built", "sent": "sent", "already_sent": "already sent"}
        return f"{self.email} ({self.day.isoformat()}): {words.get(self.status) or f'failed: {self.error}'}"


@dataclass(frozen=True)
class OutboxResult:
    id: int
    to: str
    subject: str
    status: str  # sent | queued (transient failure, retried by the next run) | failed
    error: str | None = None

    def line(self) -> str:
        if self.status == "sent":
            return f"#{self.id} to {self.to}: sent"
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

    status = _run_status(session_factory, user.id, day) if send else None
    if status == "sent":
        return result("already_sent")  # skip the build too: it is the expensive part
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
            session.execute(update(DigestRun).where(run, DigestRun.status != "sent").values(attempts=DigestRun.attempts + 1)),
        ).rowcount
        if not claimed:  # another run sent it while we were building
            return result("already_sent", digest=digest)
        try:
            mailer.send([user.email], digest.subject, digest.text, html=digest.html)
        except MailError as exc:
            session.execute(update(DigestRun).where(run).values(status="failed", last_error=str(exc)))
            session.commit()
            return result("failed", str(exc), digest)
        session.execute(update(DigestRun).where(run).values(status="sent", sent_at=now, last_error=None))
        session.commit()
    return result("sent", digest=digest)


def _run_status(session_factory: sessionmaker[Session], user_id: str, day: dt.date) -> str | None:
    with session_factory() as session:
        return session.scalar(select(DigestRun.status).where(DigestRun.user_id == user_id, DigestRun.day == day))


def _ensure_run_row(session_factory: sessionmaker[Session], user_id: str, day: dt.date) -> None:
    """Insert the pending (user, day) row unless it exists; the unique key settles a race."""
    with session_factory() as session:
        session.add(DigestRun(user_id=user_id, day=day, status="pending", attempts=0))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


# --- outbox --------------------------------------------------------------------------------------


def send_outbox(session_factory: sessionmaker[Session], mailer: Sender, now: dt.datetime) -> list[OutboxResult]:
    """Send every queued approved email once, and log it as an email activity on each invoice it covers."""
    with session_factory() as session:
        ids = list(session.scalars(select(OutboxEmail.id).where(OutboxEmail.status == "queued").order_by(OutboxEmail.id)))
    results = [r for outbox_id in ids if (r := _send_one(session_factory, mailer, outbox_id, now)) is not None]
    for r in results:
        log.info("outbox.%s id=%d to=%s error=%s", r.status, r.id, r.to, r.error)
    return results


def _send_one(session_factory: sessionmaker[Session], mailer: Sender, outbox_id: int, now: dt.datetime) -> OutboxResult | None:
    with session_factory() as session:
        this = OutboxEmail.id == outbox_id
        claimed = cast(
            CursorResult[Any],
            session.execute(
                update(OutboxEmail).where(this, OutboxEmail.status == "queued").values(attempts=OutboxEmail.attempts + 1)
            ),
        ).rowcount
        if not claimed:  # another worker sent or failed it meanwhile
            return None
        email = session.scalars(select(OutboxEmail).where(this)).one()
        try:
            mailer.send(_split(email.to), email.subject, email.body, cc=_split(email.cc))
        except MailError as exc:
            status = "queued" if exc.transient and email.attempts < OUTBOX_MAX_ATTEMPTS else "failed"
            email.status, email.last_error = status, str(exc)
            session.commit()
            return OutboxResult(email.id, email.to, email.subject, status, str(exc))
        email.status, email.sent_at, email.last_error = "sent", now, None
        numbers = _split(email.invoice_numbers)
        for invoice in session.scalars(select(Invoice).where(Invoice.number.in_(numbers)).order_by(Invoice.number)):
            record_activity(session, invoice, kind="email", at=now, by_id=email.user_id, text=f"Sent: {email.subject}")
        session.commit()
        return OutboxResult(email.id, email.to, email.subject, "sent")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


# --- scheduler -----------------------------------------------------------------------------------


def next_run_at(now: dt.datetime, tz: ZoneInfo, at: dt.time) -> dt.datetime:
    """The first moment strictly after `now` when the wall clock in `tz` reads `at` (in UTC).

    On a spring-forward day a time in the gap counts as the pre-transition offset (02:30 -> 03:30).
    """
    local_day = now.astimezone(tz).date()
    for offset in (0, 1, 2):
        candidate = dt.datetime.combine(local_day + dt.timedelta(days=offset), at, tzinfo=tz).astimezone(dt.UTC)
        if candidate > now:
            return candidate
    raise AssertionError("unreachable: a wall-clock time recurs within two days")


def due_targets(users: Iterable[User], now: dt.datetime, at: dt.time) -> list[tuple[User, dt.date]]:
    """Each user whose local clock has reached `at` today, with that local day."""
    targets = []
    for user in users:
        local = now.astimezone(_tz(user))
        if local.time() >= at:
            targets.append((user, local.date()))
    return targets


async def digest_scheduler(
    session_factory: sessionmaker[Session],
    mailer: Sender,
    at: dt.time,
    *,
    clock: Callable[[], dt.datetime],
    sleep: Callable[[float], Awaitable[None]],
    wakeups: int | None = None,
) -> None:
    """Send each user's digest when their local clock reaches `at`, forever (or `wakeups` times).

    A restart is safe: digests already sent for a (user, local day) are skipped by send_digests' record.
    """
    done = 0
    while wakeups is None or done < wakeups:
        now = clock()
        zones = {"UTC"}
        try:
            with session_factory() as session:
                users = _digest_users(session, None)
            zones = {user.timezone or "UTC" for user in users} or zones
            targets = due_targets(users, now, at)
            if targets:
                await asyncio.to_thread(run_digests, session_factory, mailer, targets, send=True, now=now)
        except Exception:  # noqa: BLE001  (the scheduler outlives a bad morning; the next wake-up retries)
            log.exception("digest.scheduler_failed")
        wake = min(next_run_at(now, ZoneInfo(zone), at) for zone in zones)
        log.info("digest.scheduler_sleep next=%s", wake.isoformat())
        await sleep(max((wake - clock()).total_seconds(), 0.0))
        done += 1
