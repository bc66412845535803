"""The morning digest and the outbox, sent to a real SMTP server (aiosmtpd on 127.0.0.1) on both dialects."""

from __future__ import annotations

import datetime as dt
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.cli import main
from lumo.crm.drafts import draft_for_invoice
from lumo.crm.errors import InvalidInput
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import scope_for_email
from lumo.db.models import Activity, DigestRun, Invoice, OutboxEmail, User
from lumo.digest import Mailer, MailError, build_digest, send_digests, send_outbox
from lumo.digest.mailer import parse_smtp_url
from tests import factories as f

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
SMALL_BOOK = Path(__file__).parent / "data" / "small_book.json"


# --- a real SMTP server ----------------------------------------------------------------------------


@dataclass
class Inbox:
    """aiosmtpd handler: records accepted messages; can refuse recipients or answer DATA with 4xx first."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[list[str]] = field(default_factory=list)
    refuse: str | None = None  # e.g. "550 5.1.1 mailbox unavailable" for every RCPT
    transient: int = 0  # how many DATA commands answer "451" before the server accepts

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.transient > 0:
            self.transient -= 1
            return "451 4.3.0 try again later"
        self.messages.append(message_from_bytes(envelope.content, policy=default))  # type: ignore[arg-type]
        self.envelopes.append(list(envelope.rcpt_tos))
        return "250 Message accepted"

    def to(self) -> list[str]:
        return sorted(str(m["To"]) for m in self.messages)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Smtp:
    inbox: Inbox
    url: str
    sleeps: list[float]

    def mailer(self) -> Mailer:
        return Mailer(self.url, "Lumo <lumo@lumenbase.test>", timeout=5, sleep=self.sleeps.append)


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp(inbox, f"smtp://127.0.0.1:{port}", [])
    finally:
        controller.stop()


# --- data ------------------------------------------------------------------------------------------


@dataclass
class Book:
    numbers: dict[str, str]


@pytest.fixture
def book(session: Session) -> Book:
    """Manager m1 over reps u1 (Globex) and u2 (Initech), each with overdue work and tasks due."""
    f.basic_book(session)
    big = f.invoice(session, "a1", contacts=("c1",), days_overdue=25, amount=Decimal("12400.00"), currency="EUR")
    promised = f.invoice(
        session,
        "a1",
        contacts=("c1",),
        days_overdue=10,
        amount=Decimal("2000.00"),
        status="overdue",
        promise_to_pay_date=f.TODAY - dt.timedelta(days=3),
    )
    soon = f.invoice(session, "a1", contacts=("c1",), days_overdue=-2, amount=Decimal("500.00"))
    other = f.invoice(session, "a2", contacts=("c2",), days_overdue=40, amount=Decimal("7777.00"), status="overdue")
    f.task(session, "t1", "u1", f.TODAY, title="Call Hank about <script>alert(1)</script> & co", invoice_id=big.id)
    f.task(session, "t2", "u1", f.TODAY - dt.timedelta(days=2), title="Send the statement")
    f.task(session, "t3", "u1", f.TODAY - dt.timedelta(days=1), title="Already done", done=True)
    f.task(session, "t4", "u1", f.TODAY + dt.timedelta(days=1), title="Tomorrow's task")
    f.task(session, "t9", "u2", f.TODAY, title="Call Bill")
    session.commit()
    return Book({"big": big.number, "promised": promised.number, "soon": soon.number, "other": other.number})


def user(session: Session, uid: str) -> User:
    found = session.get(User, uid)
    assert found is not None
    return found


def runs(session_factory: sessionmaker[Session]) -> dict[str, tuple[str, int]]:
    with session_factory() as s:
        return {r.user_id: (r.status, r.attempts) for r in s.scalars(select(DigestRun))}


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    # CRLF on the wire; compare with the digest's own line ends.
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


# --- building ----------------------------------------------------------------------------------------


def test_digest_has_top_priorities_with_reasons_and_next_actions(session: Session, book: Book) -> None:
    digest = build_digest(session, user(session, "u1"), f.TODAY)
    ranked = [(p["kind"], p["invoice_number"]) for p in digest.sections["priorities"]]
    # EUR 12,400 overdue with a task due today outweighs USD 2,000 on a broken promise; the late task comes between.
    assert ranked[:3] == [("overdue", book.numbers["big"]), ("task_due", None), ("promise_broken", book.numbers["promised"])]
    big = digest.sections["priorities"][0]
    assert big["reasons"] == [
        "EUR 12,400.00 overdue 25 days",
        "status still 'sent'",
        "Globex has 1 other overdue invoice and 1 other broken promise",
        "task due today (2026-11-25): Call Hank about <script>alert(1)</script> & co",
    ]
    assert big["action"] == (
        f"Mark it overdue and send the firm reminder for {book.numbers['big']} (Hank Scorpio, c1@customer.test)"
    )
    assert (
        f"1. {book.numbers['big']} · Globex (overdue)\n   Why: {'; '.join(big['reasons'])}\n"
        f"   Next: {big['action']}" in digest.text
    )
    assert "Why: EUR 12,400.00 overdue 25 days; status still &#39;sent&#39;" in digest.html
    assert f"Next: {big['action']}" in digest.html
    for text in (digest.text, digest.html):
        assert f"promise to pay by {f.TODAY - dt.timedelta(days=3)} broken" in text


def test_digest_counts_overdue_amounts_by_currency_with_codes(session: Session, book: Book) -> None:
    digest = build_digest(session, user(session, "u1"), f.TODAY)
    # 4 priorities: the task on the big invoice is said on its line.
    assert digest.counts == {"priorities": 4, "overdue": 2, "stale": 2, "promises_broken": 1, "tasks_due": 2, "drafts": 1}
    assert digest.sections["overdue"]["by_currency"] == [
        {"currency": "EUR", "count": 1, "amount": "12400.00"},
        {"currency": "USD", "count": 1, "amount": "2000.00"},
    ]
    assert [k["kind"] for k in digest.sections["stale"]["by_kind"]] == ["overdue_not_marked", "promise_broken"]
    for text in (digest.text, digest.html):
        assert "EUR 12,400.00" in text and "USD 2,000.00" in text
        assert f"{book.numbers['promised']} · Globex" in text  # the broken promise is listed
    assert "Overdue: 2 invoices (EUR 12,400.00, USD 2,000.00)" in digest.text
    assert digest.subject == "Lumo digest for November 25, 2026: 2 overdue invoices, 2 tasks due"


def test_digest_lists_tasks_due_today_or_earlier_and_not_done(session: Session, book: Book) -> None:
    digest = build_digest(session, user(session, "u1"), f.TODAY)
    assert [t["task_id"] for t in digest.sections["tasks_due"]["items"]] == ["t2", "t1"]
    assert "Send the statement (due 2026-11-23, 2 days late)" in digest.text
    assert "Already done" not in digest.text and "Tomorrow's task" not in digest.text


def test_digest_html_escapes_crm_text_and_is_self_contained(session: Session, book: Book) -> None:
    digest = build_digest(session, user(session, "u1"), f.TODAY)
    assert "<script>alert(1)</script> & co" in digest.text
    assert "<script" not in digest.html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in digest.html
    assert digest.html.startswith("<!DOCTYPE html>") and "<table" in digest.html
    assert "<link" not in digest.html and "<img" not in digest.html and "<style" not in digest.html


def test_digest_shows_ready_drafts_with_subject_and_recipients(session: Session, book: Book) -> None:
    digest = build_digest(session, user(session, "u1"), f.TODAY)
    [ready] = digest.sections["drafts"]
    expected = draft_for_invoice(
        session, scope_for_email(session, "u1@acme.test"), book.numbers["big"], AsOf(f.TODAY, ZoneInfo("UTC"))
    )
    assert (ready["subject"], ready["to"]) == (expected.subject, ["c1@customer.test"])
    assert book.numbers["big"] in ready["invoice_numbers"] and book.numbers["promised"] in ready["invoice_numbers"]
    assert f'"{expected.subject}" to c1@customer.test' in digest.text
    assert "To: c1@customer.test" in digest.html


def test_digest_is_deterministic_for_a_day(session: Session, book: Book) -> None:
    u1 = user(session, "u1")
    assert build_digest(session, u1, f.TODAY) == build_digest(session, u1, f.TODAY)


def test_a_reps_digest_holds_nothing_of_another_reps_book(session: Session, book: Book) -> None:
    digest = build_digest(session, user(session, "u1"), f.TODAY)
    for text in (digest.text, digest.html, str(digest.sections)):
        assert "Initech" not in text and book.numbers["other"] not in text
        assert "Call Bill" not in text and "c2@customer.test" not in text
        assert "7,777.00" not in text


def test_a_managers_digest_covers_the_team(session: Session, book: Book) -> None:
    digest = build_digest(session, user(session, "m1"), f.TODAY)
    assert digest.counts["overdue"] == 3 and digest.counts["tasks_due"] == 3
    assert "Initech" in digest.text and "Globex" in digest.text and "team's book" in digest.text


# --- sending digests -------------------------------------------------------------------------------


def test_send_digests_delivers_one_message_per_rep_and_a_rerun_none(
    session_factory: sessionmaker[Session], book: Book, smtp: Smtp
) -> None:
    results = send_digests(session_factory, smtp.mailer(), f.TODAY, now=NOW)

    assert [(r.email, r.status) for r in results] == [
        ("m1@acme.test", "sent"),
        ("u1@acme.test", "sent"),
        ("u2@acme.test", "sent"),
    ]  # not the admin
    assert smtp.inbox.to() == ["m1@acme.test", "u1@acme.test", "u2@acme.test"]
    message = next(m for m in smtp.inbox.messages if m["To"] == "u1@acme.test")
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert text.strip() == results[1].digest.text and html.strip() == results[1].digest.html  # type: ignore[union-attr]
    assert message["Subject"] == results[1].digest.subject  # type: ignore[union-attr]
    assert runs(session_factory) == {"m1": ("sent", 1), "u1": ("sent", 1), "u2": ("sent", 1)}

    again = send_digests(session_factory, smtp.mailer(), f.TODAY, now=NOW)

    assert [r.status for r in again] == ["already_sent"] * 3 and len(smtp.inbox.messages) == 3


def test_a_refused_send_is_reported_not_marked_sent_and_the_next_run_sends_it(
    session_factory: sessionmaker[Session], book: Book, smtp: Smtp
) -> None:
    smtp.inbox.refuse = "550 5.1.1 mailbox unavailable"
    failed = send_digests(session_factory, smtp.mailer(), f.TODAY, user_email="u1@acme.test", now=NOW)

    assert [(r.status, r.error) for r in failed] == [("failed", "recipient u1@acme.test refused: 550 5.1.1 mailbox unavailable")]
    assert smtp.inbox.messages == [] and smtp.sleeps == []  # 5xx is permanent: no retry
    assert runs(session_factory) == {"u1": ("failed", 1)}

    smtp.inbox.refuse = None
    retried = send_digests(session_factory, smtp.mailer(), f.TODAY, user_email="u1@acme.test", now=NOW)

    assert [r.status for r in retried] == ["sent"] and smtp.inbox.to() == ["u1@acme.test"]
    assert runs(session_factory) == {"u1": ("sent", 2)}


def test_a_transient_failure_is_retried_with_backoff_then_sent(
    session_factory: sessionmaker[Session], book: Book, smtp: Smtp
) -> None:
    smtp.inbox.transient = 2
    results = send_digests(session_factory, smtp.mailer(), f.TODAY, user_email="u1@acme.test", now=NOW)

    assert [r.status for r in results] == ["sent"] and len(smtp.inbox.messages) == 1
    assert len(smtp.sleeps) == 2 and all(0 < s <= 30 for s in smtp.sleeps)


def test_transient_failures_beyond_the_attempts_are_a_failure(
    session_factory: sessionmaker[Session], book: Book, smtp: Smtp
) -> None:
    smtp.inbox.transient = 3
    [result] = send_digests(session_factory, smtp.mailer(), f.TODAY, user_email="u1@acme.test", now=NOW)

    assert result.status == "failed" and result.error is not None and "451" in result.error
    assert len(smtp.sleeps) == 2 and runs(session_factory) == {"u1": ("failed", 1)}


def test_concurrent_runs_send_each_digest_once(session_factory: sessionmaker[Session], book: Book, smtp: Smtp) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            send_digests(session_factory, smtp.mailer(), f.TODAY, now=NOW)
        except BaseException as exc:  # noqa: BLE001  (surfaced by the assert below)
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == [] and smtp.inbox.to() == ["m1@acme.test", "u1@acme.test", "u2@acme.test"]


def test_without_send_nothing_is_sent_or_recorded(session_factory: sessionmaker[Session], book: Book, smtp: Smtp) -> None:
    results = send_digests(session_factory, None, f.TODAY, send=False, now=NOW)
    assert [r.status for r in results] == ["built"] * 3 and all(r.digest for r in results)
    assert smtp.inbox.messages == [] and runs(session_factory) == {}


# --- the mailer ------------------------------------------------------------------------------------


def test_mailer_sends_cc_and_non_ascii_text(smtp: Smtp) -> None:
    smtp.mailer().send(["zoe@customer.test"], "Rappel : facture — €1 200,00", "Bonjour Zoë,\nmerci.", cc=["boss@acme.test"])
    [message] = smtp.inbox.messages
    assert smtp.inbox.envelopes == [["zoe@customer.test", "boss@acme.test"]]
    assert message["Subject"] == "Rappel : facture — €1 200,00" and message["Cc"] == "boss@acme.test"
    assert message.get_content_type() == "text/plain" and "Bonjour Zoë" in message.get_content()


def test_mailer_retries_a_refused_connection_then_raises() -> None:
    sleeps: list[float] = []
    mailer = Mailer(f"smtp://127.0.0.1:{free_port()}", "lumo@lumenbase.test", timeout=2, sleep=sleeps.append)
    with pytest.raises(MailError) as caught:
        mailer.send(["u1@acme.test"], "hi", "hello")
    assert caught.value.transient and caught.value.attempts == 3 and len(sleeps) == 2
    assert "ConnectionRefusedError" in str(caught.value)


def test_smtp_urls_of_each_form() -> None:
    plain = parse_smtp_url("smtp://127.0.0.1:8025")
    assert (plain.host, plain.port, plain.ssl, plain.starttls, plain.username) == ("127.0.0.1", 8025, False, False, None)
    tls = parse_smtp_url("smtps://lumo:p%40ss@mail.example.com")
    assert (tls.port, tls.ssl, tls.username, tls.password) == (465, True, "lumo", "p@ss")
    assert parse_smtp_url("smtp://mail.example.com:587?starttls=1").starttls
    with pytest.raises(InvalidInput):
        parse_smtp_url("http://mail.example.com")


# --- the outbox ------------------------------------------------------------------------------------


def queue_email(session_factory: sessionmaker[Session], numbers: list[str]) -> int:
    """An approved email to c1, copying m1, about `numbers`: committed, so the sender's sessions see it."""
    with session_factory() as s:
        outbox_id = f.outbox_email(s, numbers, subject=f"Reminder: {numbers[0]} is past due", cc="m1@acme.test", at=NOW)
        s.commit()
        return outbox_id


def test_an_approved_email_is_sent_once_and_logged_on_its_invoices(
    session_factory: sessionmaker[Session], book: Book, smtp: Smtp
) -> None:
    numbers = [book.numbers["big"], book.numbers["promised"]]
    outbox_id = queue_email(session_factory, numbers)

    [result] = send_outbox(session_factory, smtp.mailer(), NOW)

    assert (result.id, result.status) == (outbox_id, "sent")
    assert smtp.inbox.envelopes == [["c1@customer.test", "m1@acme.test"]]
    with session_factory() as s:
        email = s.get(OutboxEmail, outbox_id)
        assert email is not None and (email.status, email.sent_at, email.attempts) == ("sent", NOW, 1)
        logged = s.execute(
            select(Invoice.number, Activity.kind, Activity.by_id, Activity.text, Activity.at)
            .join(Invoice, Invoice.id == Activity.invoice_id)
            .order_by(Invoice.number)
        ).all()
        subject = f"Reminder: {numbers[0]} is past due"
        assert [tuple(r) for r in logged] == [(n, "email", "u1", f"Sent: {subject}", NOW) for n in sorted(numbers)]
        later = draft_for_invoice(s, scope_for_email(s, "u1@acme.test"), numbers[0], AsOf(f.TODAY, ZoneInfo("UTC")))
        assert later.skipped_reason == "cooldown"

    assert send_outbox(session_factory, smtp.mailer(), NOW) == [] and len(smtp.inbox.messages) == 1


def test_a_refused_outbox_email_is_marked_failed_with_the_error(
    session_factory: sessionmaker[Session], book: Book, smtp: Smtp
) -> None:
    outbox_id = queue_email(session_factory, [book.numbers["big"]])
    smtp.inbox.refuse = "550 5.7.1 relaying denied"

    [result] = send_outbox(session_factory, smtp.mailer(), NOW)

    assert result.status == "failed" and "550 5.7.1 relaying denied" in (result.error or "")
    with session_factory() as s:
        email = s.get(OutboxEmail, outbox_id)
        assert email is not None and (email.status, email.sent_at) == ("failed", None) and "550" in (email.last_error or "")
        assert s.scalars(select(Activity)).all() == []
    smtp.inbox.refuse = None
    assert send_outbox(session_factory, smtp.mailer(), NOW) == [] and smtp.inbox.messages == []


def test_an_outbox_email_that_failed_transiently_goes_out_on_the_next_run(
    session_factory: sessionmaker[Session], book: Book, smtp: Smtp
) -> None:
    outbox_id = queue_email(session_factory, [book.numbers["big"]])
    smtp.inbox.transient = 3

    [first] = send_outbox(session_factory, smtp.mailer(), NOW)
    [second] = send_outbox(session_factory, smtp.mailer(), NOW)

    assert (first.status, second.status) == ("queued", "sent") and len(smtp.inbox.messages) == 1
    with session_factory() as s:
        email = s.get(OutboxEmail, outbox_id)
        assert email is not None and (email.status, email.attempts, email.last_error) == ("sent", 2, None)


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture
def lumo(db_url: str, smtp: Smtp, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    monkeypatch.setenv("LUMO_SMTP_URL", smtp.url)

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["lumo", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    code, _, err = run("import", str(SMALL_BOOK))
    assert code == 0, err
    return run


def test_cli_digest_send_twice_sends_once(lumo: Any, smtp: Smtp) -> None:
    code, out, err = lumo("digest", "--date", "2026-11-25", "--send")
    assert code == 0, err
    assert out.splitlines() == [
        "dana@acme.test (2026-11-25): sent",
        "lee@acme.test (2026-11-25): sent",
        "maria@acme.test (2026-11-25): sent",
    ]
    assert smtp.inbox.to() == ["dana@acme.test", "lee@acme.test", "maria@acme.test"]

    code, out, err = lumo("digest", "--date", "2026-11-25", "--send")
    assert code == 0, err
    assert out.splitlines() == [f"{e} (2026-11-25): already sent" for e in ("dana@acme.test", "lee@acme.test", "maria@acme.test")]
    assert len(smtp.inbox.messages) == 3


def test_cli_digest_reports_a_failed_send_with_exit_code_1(lumo: Any, smtp: Smtp) -> None:
    smtp.inbox.refuse = "550 5.1.1 mailbox unavailable"
    code, out, _ = lumo("digest", "--date", "2026-11-25", "--rep", "dana@acme.test", "--send")
    assert code == 1
    assert out.strip() == "dana@acme.test (2026-11-25): failed: recipient dana@acme.test refused: 550 5.1.1 mailbox unavailable"


def test_cli_digest_preview_prints_the_text_and_sends_nothing(lumo: Any, smtp: Smtp) -> None:
    code, out, err = lumo("digest", "--date", "2026-11-25", "--rep", "dana@acme.test")
    assert code == 0, err
    assert out.startswith("To: dana@acme.test\nSubject: Lumo digest for November 25, 2026")
    assert "INV-1042 · Globex" in out and "EUR 12,000.00 overdue 25 days" in out and "Call Hank" in out
    assert "INV-2001" not in out and smtp.inbox.messages == []


def test_cli_outbox_send_with_nothing_queued(lumo: Any) -> None:
    code, out, err = lumo("outbox", "send")
    assert (code, out.strip()) == (0, "no queued emails"), err


def test_serving_with_digest_at_sends_due_digests_and_the_outbox(
    db_url: str,
    smtp: Smtp,
    book: Book,
    session_factory: sessionmaker[Session],
) -> None:
    """With the jobs in-process (SQLite's default), `lumo serve --digest-at` sends the due digests and the outbox
    beside the API, and stops on shutdown. (On PostgreSQL's queue, `lumo worker` does: tests/multihost.)"""
    import time

    from fastapi.testclient import TestClient

    from lumo.api.app import create_app
    from lumo.config import Settings

    with session_factory() as s:
        f.outbox_email(s, [], subject="Reminder", body="Hello", at=NOW)
        s.commit()
    # 00:00 has passed in every zone today, so every rep's digest is due at start-up.
    settings = Settings(database_url=db_url, smtp_url=smtp.url, digest_at="00:00", jobs="in-process")
    with TestClient(create_app(settings, env={})) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(smtp.inbox.messages) < 4:
            time.sleep(0.1)
        assert client.get("/healthz").status_code == 200
    subjects = [m["Subject"] for m in smtp.inbox.messages]
    assert "Reminder" in subjects and len(subjects) == 4  # the outbox email, two reps and the manager
