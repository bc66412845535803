"""The outbox against a misbehaving SMTP server: every email ends delivered once or reported, never duplicated.

After the message went over the wire, a missing answer means "maybe delivered": the email becomes
`uncertain` and only an operator sends it again, with the same Message-ID.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm.errors import InvalidInput
from lumo.db.models import Activity, OutboxEmail
from lumo.digest import Mailer, send_outbox
from lumo.digest.run import SENDING_STALE_AFTER, OutboxResult, mark_outbox_sent, retry_outbox_email
from tests import factories as f
from tests.reliability.smtp_faults import FaultySmtp

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
CLIENT_TIMEOUT = 0.4


@pytest.fixture
def server() -> Iterator[FaultySmtp]:
    smtp = FaultySmtp(delay=CLIENT_TIMEOUT * 3).start()
    yield smtp
    smtp.stop()


def mailer(server: FaultySmtp, sleeps: list[float] | None = None, timeout: float = CLIENT_TIMEOUT) -> Mailer:
    waits = sleeps if sleeps is not None else []
    return Mailer(server.url, "Lumo <lumo@lumenbase.test>", timeout=timeout, sleep=waits.append)


@pytest.fixture
def queued(session_factory: sessionmaker[Session]) -> list[int]:
    """Two approved emails waiting in the outbox, about two invoices of Globex."""
    with session_factory() as s:
        f.basic_book(s)
        numbers = [f.invoice(s, "a1", contacts=("c1",), days_overdue=d, amount=Decimal("900.00")).number for d in (10, 20)]
        ids = [f.outbox_email(s, [n], body="Hi Pat,\nplease have a look.", at=NOW) for n in numbers]
        s.commit()
    return ids


def rows(session_factory: sessionmaker[Session]) -> dict[int, tuple[str, str | None, int]]:
    with session_factory() as s:
        return {e.id: (e.status, e.message_id, e.attempts) for e in s.scalars(select(OutboxEmail))}


def statuses(results: list[OutboxResult]) -> list[str]:
    return [r.status for r in results]


# --- one test per fault mode ----------------------------------------------------------------------


def test_a_server_that_accepts_after_the_client_timeout_gets_each_email_once_and_each_is_reported_uncertain(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.mode = "accept_after_timeout"

    first = send_outbox(session_factory, mailer(server), NOW)
    again = send_outbox(session_factory, mailer(server), NOW)

    assert statuses(first) == ["uncertain", "uncertain"] and again == []
    assert all("may have been delivered" in (r.error or "") and f"lumo outbox retry {r.id}" in r.line() for r in first)
    assert len(server.kept) == 2  # delivered once each, never resent
    state = rows(session_factory)
    assert [state[i][0] for i in queued] == ["uncertain", "uncertain"]
    assert sorted(server.message_ids()) == sorted(state[i][1] for i in queued)


def test_a_server_that_drops_after_data_gets_each_email_once_and_a_retry_is_only_the_operators(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.mode = "drop_after_data"

    first = send_outbox(session_factory, mailer(server), NOW)
    assert statuses(first) == ["uncertain", "uncertain"] and len(server.kept) == 2
    assert send_outbox(session_factory, mailer(server), NOW) == [] and len(server.kept) == 2

    # The operator learns the first never arrived and asks for it again: same Message-ID, one more copy.
    with session_factory() as s:
        retry_outbox_email(s, queued[0])
        s.commit()
    server.mode = "ok"
    [retried] = send_outbox(session_factory, mailer(server), NOW)

    assert (retried.id, retried.status) == (queued[0], "sent") and len(server.kept) == 3
    assert server.message_ids()[2] == server.message_ids()[0] == rows(session_factory)[queued[0]][1]


def test_a_4xx_after_data_is_retried_and_reported_then_fails_without_a_single_copy(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.mode = "4xx"  # the server says "not taken" each time: retrying is safe
    sleeps: list[float] = []

    runs = [send_outbox(session_factory, mailer(server, sleeps), NOW) for _ in range(3)]

    assert [statuses(r) for r in runs] == [["queued", "queued"], ["queued", "queued"], ["failed", "failed"]]
    assert all("451" in (r.error or "") for run in runs for r in run) and "(will retry)" in runs[0][0].line()
    assert server.kept == [] and server.data_commands == 3 * 3 * 2 and len(sleeps) == 3 * 2 * 2
    assert send_outbox(session_factory, mailer(server), NOW) == []


def test_a_4xx_then_acceptance_delivers_once_with_one_message_id(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.mode, server.transient = "4xx", 1

    # No timeout is under test here: a patient client, so a busy machine cannot turn an answer into a time-out.
    results = send_outbox(session_factory, mailer(server, timeout=10), NOW)

    assert statuses(results) == ["sent", "sent"] and len(server.kept) == 2
    assert sorted(server.message_ids()) == sorted(rows(session_factory)[i][1] for i in queued)


def test_a_5xx_after_data_fails_at_once_and_is_reported(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.mode = "5xx"
    sleeps: list[float] = []

    results = send_outbox(session_factory, mailer(server, sleeps), NOW)

    assert statuses(results) == ["failed", "failed"] and all("554" in (r.error or "") for r in results)
    assert server.kept == [] and sleeps == [] and server.data_commands == 2
    assert send_outbox(session_factory, mailer(server), NOW) == []


def test_a_hanging_server_is_retried_before_anything_was_transmitted_and_each_email_goes_once_when_it_recovers(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.mode = "hang"

    first = send_outbox(session_factory, mailer(server), NOW)
    assert statuses(first) == ["queued", "queued"] and all("(will retry)" in r.line() for r in first)
    assert server.kept == []
    ids_after_first = {i: rows(session_factory)[i][1] for i in queued}

    server.mode = "ok"
    second = send_outbox(session_factory, mailer(server), NOW)

    assert statuses(second) == ["sent", "sent"] and len(server.kept) == 2
    assert sorted(server.message_ids()) == sorted(ids_after_first.values())  # the Message-ID survived the run


# --- interrupted sends and the operator -----------------------------------------------------------


def test_a_send_interrupted_by_a_crash_is_reported_uncertain_and_not_resent(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    with session_factory() as s:  # a sender claimed it long ago and never came back
        email = s.get(OutboxEmail, queued[0])
        assert email is not None
        email.status, email.claimed_at = "sending", NOW - SENDING_STALE_AFTER - dt.timedelta(minutes=1)
        s.commit()

    results = send_outbox(session_factory, mailer(server), NOW)

    assert [(r.id, r.status) for r in results] == [(queued[0], "uncertain"), (queued[1], "sent")]
    assert "interrupted" in (results[0].error or "") and len(server.kept) == 1


def test_a_fresh_claim_of_another_sender_is_left_alone(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    with session_factory() as s:
        email = s.get(OutboxEmail, queued[0])
        assert email is not None
        email.status, email.claimed_at = "sending", NOW - dt.timedelta(seconds=5)
        s.commit()

    results = send_outbox(session_factory, mailer(server), NOW)

    assert [(r.id, r.status) for r in results] == [(queued[1], "sent")] and rows(session_factory)[queued[0]][0] == "sending"


def test_the_operator_marks_an_uncertain_email_sent_and_it_is_logged_on_its_invoice(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.mode = "drop_after_data"
    send_outbox(session_factory, mailer(server), NOW)

    with session_factory() as s:
        mark_outbox_sent(s, queued[0], NOW)
        s.commit()
        with pytest.raises(InvalidInput, match="is sent"):
            retry_outbox_email(s, queued[0])
        logged = s.scalars(select(Activity.text)).all()
        email = s.get(OutboxEmail, queued[0])
        assert email is not None and email.status == "sent" and logged == [f"Sent: {email.subject}"]
    assert len(server.kept) == 2


# --- refused, cut mid-DATA, then recovering ------------------------------------------------------------------------


def sent_rows(session_factory: sessionmaker[Session]) -> set[str | None]:
    """The Message-IDs of the emails marked sent."""
    with session_factory() as s:
        return set(s.scalars(select(OutboxEmail.message_id).where(OutboxEmail.status == "sent")))


def test_a_server_that_refuses_connections_gets_nothing_then_each_email_once_when_it_is_back(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.go_down()

    down = send_outbox(session_factory, mailer(server), NOW)
    assert statuses(down) == ["queued", "queued"] and all("(will retry)" in r.line() for r in down)
    assert sent_rows(session_factory) == set() and server.kept == []

    server.come_back()
    back = send_outbox(session_factory, mailer(server), NOW)

    assert statuses(back) == ["sent", "sent"] and len(server.kept) == 2
    assert set(server.message_ids()) == sent_rows(session_factory)
    assert send_outbox(session_factory, mailer(server), NOW) == [] and len(server.kept) == 2


def test_a_421_greeting_is_retried_and_each_email_goes_once_when_the_server_recovers(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.mode = "greeting_421"
    sleeps: list[float] = []

    busy = send_outbox(session_factory, mailer(server, sleeps), NOW)
    assert statuses(busy) == ["queued", "queued"] and all("421" in (r.error or "") for r in busy) and len(sleeps) == 4
    assert server.data_commands == 0 and sent_rows(session_factory) == set()

    server.mode = "ok"
    assert statuses(send_outbox(session_factory, mailer(server), NOW)) == ["sent", "sent"]
    assert len(server.kept) == 2 and set(server.message_ids()) == sent_rows(session_factory)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # 8 MB over the wire: once is enough
def test_a_large_email_cut_while_it_is_written_is_retried_because_its_end_never_left(
    session_factory: sessionmaker[Session], server: FaultySmtp
) -> None:
    with session_factory() as s:
        f.basic_book(s)
        number = f.invoice(s, "a1", contacts=("c1",), days_overdue=10).number
        line = "Statement line " + "." * 485 + "\n"
        big = f.outbox_email(s, [number], body=line * 16_000, at=NOW)  # 8 MB: twice what the sockets hold in flight
        s.commit()
    server.mode = "drop_mid_data"
    patient = Mailer(server.url, "Lumo <lumo@lumenbase.test>", timeout=10, sleep=lambda _: None)

    cut = send_outbox(session_factory, patient, NOW)
    assert [(r.id, r.status) for r in cut] == [(big, "queued")] and "(will retry)" in cut[0].line()
    assert server.kept == [] and server.data_commands == 3 and sent_rows(session_factory) == set()

    server.mode = "ok"
    [done] = send_outbox(session_factory, patient, NOW)
    assert (done.id, done.status) == (big, "sent") and len(server.kept) == 1
    assert set(server.message_ids()) == sent_rows(session_factory)


def test_a_small_email_cut_mid_data_is_uncertain_never_marked_sent_and_goes_once_when_the_operator_asks(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.mode = "drop_mid_data"  # the whole message left in one write: Lumo cannot know how much arrived

    cut = send_outbox(session_factory, mailer(server), NOW)
    assert statuses(cut) == ["uncertain", "uncertain"] and server.kept == [] and sent_rows(session_factory) == set()
    server.mode = "ok"
    assert send_outbox(session_factory, mailer(server), NOW) == []  # never resent on its own

    with session_factory() as s:
        retry_outbox_email(s, queued[0])
        s.commit()
    [again] = send_outbox(session_factory, mailer(server), NOW)
    assert (again.id, again.status) == (queued[0], "sent") and len(server.kept) == 1
    assert set(server.message_ids()) == sent_rows(session_factory)


def test_a_refused_recipient_fails_at_once_and_nothing_is_transmitted(
    session_factory: sessionmaker[Session], server: FaultySmtp, queued: list[int]
) -> None:
    server.mode = "rcpt_550"

    results = send_outbox(session_factory, mailer(server), NOW)

    assert statuses(results) == ["failed", "failed"] and all("550" in (r.error or "") for r in results)
    assert server.data_commands == 0 and server.kept == [] and sent_rows(session_factory) == set()


def test_two_senders_at_once_send_each_email_once(session_factory: sessionmaker[Session], server: FaultySmtp) -> None:
    with session_factory() as s:
        f.basic_book(s)
        ids = [f.outbox_email(s, [f.invoice(s, "a1", contacts=("c1",), days_overdue=5).number], at=NOW) for _ in range(8)]
        s.commit()
    server.slow = 0.2  # each send takes a while, so the two senders overlap (on busy cores too)
    start = threading.Barrier(2)

    def sender() -> list[OutboxResult]:
        start.wait()
        return send_outbox(session_factory, mailer(server), NOW)

    with ThreadPoolExecutor(2) as pool:
        runs = [r.result() for r in [pool.submit(sender), pool.submit(sender)]]

    sent = sorted(r.id for run in runs for r in run if r.status == "sent")
    assert sent == ids and all(runs)  # each email by one sender, and both senders took part
    assert len(server.kept) == 8 and len(set(server.message_ids())) == 8
    assert set(server.message_ids()) == sent_rows(session_factory)
