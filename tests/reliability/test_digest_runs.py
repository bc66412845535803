"""Two digest runs at once (two hosts, a restart overlapping a run, an operator's `lumo digest send` during the
scheduler's): each user gets one digest a day, whatever overlaps, and a faulty SMTP server never makes one twice.

Through the public entry point (send_digests), on both dialects; the SMTP server is slow on
purpose, so the runs really overlap mid-send.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.db.models import DigestRun
from lumo.digest import Mailer
from lumo.digest.run import SENDING_STALE_AFTER, DigestResult, due_digests, send_digests
from tests import factories as f
from tests.reliability.smtp_faults import FaultySmtp

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
REPS = 6


@pytest.fixture
def server() -> Iterator[FaultySmtp]:
    smtp = FaultySmtp(slow=0.05, delay=1.0).start()
    yield smtp
    smtp.stop()


def mailer(server: FaultySmtp, timeout: float = 5, kind: type[Mailer] = Mailer) -> Mailer:
    return kind(server.url, "Lumo <lumo@lumenbase.test>", timeout=timeout, sleep=lambda _: None)


@pytest.fixture
def users(session_factory: sessionmaker[Session]) -> list[str]:
    """A manager and REPS reps with a little work each, in three time zones (all past 07:30 at NOW but New York)."""
    zones = ["Europe/Paris", "Asia/Tokyo", "UTC"]
    with session_factory() as s:
        f.workspace(s)
        f.user(s, "m1", role="manager")
        for i in range(REPS):
            f.user(s, f"r{i}", manager_id="m1", tz=zones[i % 3])
            f.account(s, f"a{i}", f"r{i}", name=f"Account {i}")
            f.contact(s, f"c{i}", f"a{i}")
            f.invoice(s, f"a{i}", contacts=(f"c{i}",), days_overdue=10 + i)
        s.commit()
    return ["m1@acme.test", *(f"r{i}@acme.test" for i in range(REPS))]


def received(server: FaultySmtp) -> Counter[str]:
    return Counter(str(m["To"]) for m in server.kept)


def sent_runs(session_factory: sessionmaker[Session]) -> Counter[str]:
    with session_factory() as s:
        return Counter(s.scalars(select(DigestRun.user_id).where(DigestRun.status == "sent")))


def at_once(*runs: object) -> list[list[DigestResult]]:
    """Run the callables at the same moment in threads (as two processes would)."""
    start = threading.Barrier(len(runs))

    def go(run: object) -> list[DigestResult]:
        start.wait()
        return run()  # type: ignore[operator,no-any-return]

    with ThreadPoolExecutor(len(runs)) as pool:
        return [future.result() for future in [pool.submit(go, run) for run in runs]]


def test_two_runs_at_once_send_each_user_one_digest(
    session_factory: sessionmaker[Session], server: FaultySmtp, users: list[str]
) -> None:
    def run() -> list[DigestResult]:
        return send_digests(session_factory, mailer(server), None, now=NOW)

    first, second = at_once(run, run)

    assert received(server) == Counter(users)  # one each, not two
    outcomes = Counter(r.status for r in first + second)
    assert outcomes == {"sent": len(users), "already_sent": len(users)}
    assert sent_runs(session_factory) == Counter(u.split("@")[0] for u in users)
    assert send_digests(session_factory, mailer(server), None, now=NOW + dt.timedelta(hours=1))
    assert received(server) == Counter(users)  # a later run the same day sends nothing


def test_three_runs_at_once_on_a_flaky_server_send_each_digest_once_after_recovery(
    session_factory: sessionmaker[Session], server: FaultySmtp, users: list[str]
) -> None:
    server.mode, server.transient = "4xx", 4  # the first few messages are refused for now

    def run() -> list[DigestResult]:
        return send_digests(session_factory, mailer(server), None, now=NOW)

    at_once(run, run, run)
    retried = send_digests(session_factory, mailer(server), None, now=NOW + dt.timedelta(minutes=10))

    assert received(server) == Counter(users)
    assert all(r.status in ("sent", "already_sent") for r in retried)


def test_a_digest_the_server_took_but_never_confirmed_is_not_sent_again_by_the_next_run(
    session_factory: sessionmaker[Session], server: FaultySmtp, users: list[str]
) -> None:
    server.mode = "accept_after_timeout"  # kept, then confirmed after the client gave up

    first = send_digests(session_factory, mailer(server, timeout=0.3), None, now=NOW, user_email="r0@acme.test")
    server.mode = "ok"
    again = send_digests(session_factory, mailer(server), None, now=NOW + dt.timedelta(minutes=10), user_email="r0@acme.test")

    assert [r.status for r in first] == ["uncertain"] and "may have been delivered" in (first[0].error or "")
    assert [r.status for r in again] == ["uncertain"]  # reported again, not resent
    assert received(server) == Counter(["r0@acme.test"])


class Crash(BaseException):
    """The process dying: nothing below catches it, and the open transaction goes with the connection."""


class CrashAfterSmtp(Mailer):
    """The real Mailer, whose process dies the moment the server has taken the message, before it is recorded."""

    def send(self, *args: Any, **kwargs: Any) -> None:
        super().send(*args, **kwargs)
        raise Crash


def test_a_sender_that_dies_after_the_server_took_the_digest_is_not_followed_by_a_second_one(
    session_factory: sessionmaker[Session], server: FaultySmtp, users: list[str]
) -> None:
    with pytest.raises(Crash):
        send_digests(session_factory, mailer(server, kind=CrashAfterSmtp), None, now=NOW, user_email="r0@acme.test")
    assert received(server) == Counter(["r0@acme.test"])

    # The job retried at once (the dead worker's, by another) leaves it to the sender it cannot tell is dead;
    # once the send is older than any send takes, it is reported cut off and no longer queued.
    retried = send_digests(session_factory, mailer(server), None, now=NOW + dt.timedelta(seconds=5), user_email="r0@acme.test")
    later = NOW + SENDING_STALE_AFTER + dt.timedelta(minutes=1)
    assert "r0" in [user for user, _day in due_digests(session_factory, later, dt.time(7, 30))]
    again = send_digests(session_factory, mailer(server), None, now=later, user_email="r0@acme.test")

    assert [r.status for r in retried] == ["already_sent"]
    assert [r.status for r in again] == ["uncertain"] and "cut off while transmitting" in (again[0].error or "")
    assert received(server) == Counter(["r0@acme.test"])  # one digest, not two
    due = [user for user, _day in due_digests(session_factory, later, dt.time(7, 30))]
    assert "r0" not in due and "r1" in due


class CrashBeforeSmtp(Mailer):
    """The real Mailer, whose process dies after the run claimed the digest, before connecting."""

    def send(self, *args: Any, **kwargs: Any) -> None:
        raise Crash


def test_a_sender_that_dies_before_the_message_left_is_followed_by_one_that_sends_it(
    session_factory: sessionmaker[Session], server: FaultySmtp, users: list[str]
) -> None:
    with pytest.raises(Crash):
        send_digests(session_factory, mailer(server, kind=CrashBeforeSmtp), None, now=NOW, user_email="r0@acme.test")

    again = send_digests(session_factory, mailer(server), None, now=NOW + dt.timedelta(minutes=10), user_email="r0@acme.test")

    assert [r.status for r in again] == ["sent"]
    assert received(server) == Counter(["r0@acme.test"])
