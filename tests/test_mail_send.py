"""Approved emails from a rep with a connected mailbox leave through Gmail or Graph, once, in the invoice's thread."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import respx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.db.models import Activity, Mailbox, MailThread, OutboxEmail, Task
from lumo.digest.run import send_outbox
from lumo.mail.providers import Providers
from tests.factories import NOON, basic_book, invoice, outbox_email
from tests.mail_support import (
    CONFIG,
    GOOGLE_TOKEN,
    GRAPH,
    RecordingSmtp,
    connect_mailbox,
    gmail_providers,
    gmail_raw,
    google_token,
    graph_mime,
    microsoft_login,
    ok,
)

SENT_ITEMS = f"{GRAPH}/me/mailFolders/sentitems/messages"


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    b = basic_book(session)
    b["inv"] = invoice(session, "a1", contacts=("c1",), days_overdue=10)
    session.commit()
    return b


def _queue(factory: sessionmaker[Session], number: str, subject: str = "Reminder") -> int:
    with factory() as session:
        outbox_id = outbox_email(session, [number], subject=subject)
        session.commit()
        return outbox_id


def _connect(factory: sessionmaker[Session], provider: str) -> None:
    with factory() as session:
        connect_mailbox(session, "u1", provider)
        session.commit()


def _email(factory: sessionmaker[Session], outbox_id: int) -> OutboxEmail:
    with factory() as session:
        return session.get_one(OutboxEmail, outbox_id)


def _sends(providers: Providers) -> list[tuple[Any, Any]]:
    return [
        gmail_raw(body)
        for uri, method, body, _ in providers.gmail_http.request_sequence
        if uri.endswith("/messages/send?alt=json")
    ]


def test_without_a_mailbox_the_outbox_still_sends_by_smtp(session_factory: sessionmaker[Session], book: Any) -> None:
    outbox_id = _queue(session_factory, book["inv"].number)
    smtp = RecordingSmtp()
    [result] = send_outbox(session_factory, smtp, NOON, mailboxes=Providers(CONFIG))
    assert result.status == "sent" and [s["message_id"] for s in smtp.sent] == ["<smtp-1@lumenbase.test>"]
    assert _email(session_factory, outbox_id).sent_via == "smtp"


def test_gmail_sends_once_as_the_rep_and_follow_ups_reply_in_the_thread(
    session_factory: sessionmaker[Session], book: Any
) -> None:
    _connect(session_factory, "gmail")
    number = book["inv"].number
    first = _queue(session_factory, number, "Invoice reminder")
    providers = gmail_providers(
        google_token(),
        ok({"id": "g-msg-1", "threadId": "g-thread-1"}),
        ok({"id": "g-msg-2", "threadId": "g-thread-1"}),
    )
    smtp = RecordingSmtp()
    [result] = send_outbox(session_factory, smtp, NOON, mailboxes=providers)
    assert result.status == "sent" and smtp.sent == []
    sent = _email(session_factory, first)
    assert sent.status == "sent" and sent.sent_via == "gmail" and sent.message_id and sent.message_id.endswith("@acme.test>")
    [(message, thread_id)] = _sends(providers)
    assert thread_id is None and message["From"] == "User U1 <u1@acme.test>" and message["Message-ID"] == sent.message_id
    assert message["In-Reply-To"] is None and message["To"] == "c1@customer.test"
    assert send_outbox(session_factory, smtp, NOON, mailboxes=providers) == []  # a second run sends nothing again
    second = _queue(session_factory, number, "Second reminder")
    [result] = send_outbox(session_factory, smtp, NOON + dt.timedelta(days=7), mailboxes=providers)
    assert result.status == "sent"
    (_, _), (reply, reply_thread) = _sends(providers)
    assert reply_thread == "g-thread-1"
    assert reply["In-Reply-To"] == sent.message_id and reply["References"] == sent.message_id
    assert reply["Message-ID"] == _email(session_factory, second).message_id
    with session_factory() as session:
        thread = session.scalars(select(MailThread)).one()
        assert thread.provider_thread_id == "g-thread-1" and thread.message_ids.split() == [sent.message_id, reply["Message-ID"]]
        emails = session.scalars(select(Activity.text).where(Activity.kind == "email")).all()
        assert emails == ["Sent: Invoice reminder", "Sent: Second reminder"]


def test_gmail_refreshes_on_401_and_waits_out_a_429(session_factory: sessionmaker[Session], book: Any) -> None:
    _connect(session_factory, "gmail")
    _queue(session_factory, book["inv"].number)
    slept: list[float] = []
    providers = gmail_providers(
        google_token("ya29.first"),
        ok({"error": {"code": 401, "message": "Invalid Credentials"}}, status=401),
        google_token("ya29.second"),
        ok({"error": {"code": 429, "message": "Rate Limit Exceeded"}}, status=429, **{"Retry-After": "7"}),
        ok({"id": "g-msg-1", "threadId": "g-thread-1"}),
        slept=slept,
    )
    [result] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=providers)
    assert result.status == "sent" and slept == [7.0]
    calls = providers.gmail_http.request_sequence
    assert [c[0] for c in calls].count(GOOGLE_TOKEN) == 2 and calls[-1][3]["authorization"] == "Bearer ya29.second"
    assert len(_sends(providers)) == 3  # 401, 429, then the one that went: Gmail took it once


def test_revoked_gmail_consent_fails_the_email_marks_the_mailbox_and_asks_the_rep(
    session_factory: sessionmaker[Session], book: Any
) -> None:
    _connect(session_factory, "gmail")
    outbox_id = _queue(session_factory, book["inv"].number)
    revoked = ok({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, status=400)
    providers = gmail_providers(revoked)
    [result] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=providers)
    assert result.status == "failed" and "needs reconnecting: `lumo mail connect gmail --user u1@acme.test`" in str(result.error)
    assert f"`lumo outbox retry {outbox_id}`" in str(result.error)
    with session_factory() as session:
        box = session.scalars(select(Mailbox)).one()
        assert box.status == "needs_reconnect" and "invalid_grant" in str(box.last_error)
        [task] = session.scalars(select(Task)).all()
        assert task.owner_id == "u1" and task.title.startswith("Reconnect your Gmail mailbox in Lumo")
        assert session.scalars(select(Activity).where(Activity.kind == "email")).all() == []
    # The next email waits too, without a second task or a request to Google.
    _queue(session_factory, book["inv"].number, "Another")
    [again] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=providers)
    assert again.status == "failed" and len(providers.gmail_http.request_sequence) == 1
    with session_factory() as session:
        assert len(session.scalars(select(Task)).all()) == 1


def test_graph_sends_once_with_thread_headers_and_keeps_the_conversation(
    session_factory: sessionmaker[Session], book: Any
) -> None:
    _connect(session_factory, "outlook")
    number = book["inv"].number
    first = _queue(session_factory, number, "Invoice reminder")
    with respx.mock(assert_all_called=True) as router:
        login = microsoft_login(router, refresh_token="outlook-rt-rotated")
        send = router.post(f"{GRAPH}/me/sendMail").respond(202)
        router.get(SENT_ITEMS).respond(json={"value": [{"id": "AAMk1", "conversationId": "conv-1"}]})
        providers = Providers(CONFIG)
        [result] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=providers)
        assert result.status == "sent" and send.call_count == 1
        sent = _email(session_factory, first)
        message = graph_mime(send.calls[0].request.content)
        assert send.calls[0].request.headers["Content-Type"] == "text/plain"
        assert message["Message-ID"] == sent.message_id and message["From"] == "User U1 <u1@acme.test>"
        assert send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=providers) == []
        _queue(session_factory, number, "Second reminder")
        [result] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=providers)
        reply = graph_mime(send.calls[1].request.content)
        assert reply["In-Reply-To"] == sent.message_id and reply["References"] == sent.message_id
        assert login.call_count == 2  # Microsoft rotated the refresh token: the kept one is a new grant, a new client
    with session_factory() as session:
        assert session.scalars(select(MailThread.provider_thread_id)).one() == "conv-1"
        from lumo.mail.secrets import Vault
        from tests.mail_support import KEY

        assert Vault(KEY).open(session.scalars(select(Mailbox.refresh_token)).one()) == "outlook-rt-rotated"


def test_graph_refreshes_on_401_and_waits_out_a_429(session_factory: sessionmaker[Session], book: Any) -> None:
    _connect(session_factory, "outlook")
    _queue(session_factory, book["inv"].number)
    slept: list[float] = []
    with respx.mock(assert_all_called=True) as router:
        login = microsoft_login(router)
        send = router.post(f"{GRAPH}/me/sendMail")
        send.side_effect = [
            respx.MockResponse(401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
            respx.MockResponse(429, headers={"Retry-After": "3"}, json={"error": {"code": "TooManyRequests"}}),
            respx.MockResponse(202),
        ]
        router.get(SENT_ITEMS).respond(json={"value": []})
        [result] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=Providers(CONFIG, sleep=slept.append))
    assert result.status == "sent" and slept == [3.0] and login.call_count == 2 and send.call_count == 3
    with session_factory() as session:
        assert session.scalars(select(MailThread.provider_thread_id)).one() is None  # not filed yet: headers still thread


def test_revoked_outlook_consent_fails_the_email_and_asks_the_rep(session_factory: sessionmaker[Session], book: Any) -> None:
    _connect(session_factory, "outlook")
    _queue(session_factory, book["inv"].number)
    with respx.mock(assert_all_called=True) as router:
        microsoft_login(router, error="invalid_grant")
        [result] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=Providers(CONFIG))
    assert result.status == "failed" and "invalid_grant" in str(result.error) and "lumo mail connect outlook" in str(result.error)
    with session_factory() as session:
        assert session.scalars(select(Mailbox.status)).one() == "needs_reconnect"
        assert session.scalars(select(OutboxEmail.status)).one() == "failed"
        assert len(session.scalars(select(Task)).all()) == 1


def test_a_graph_server_error_on_send_is_uncertain_never_resent(session_factory: sessionmaker[Session], book: Any) -> None:
    _connect(session_factory, "outlook")
    _queue(session_factory, book["inv"].number)
    with respx.mock(assert_all_called=True) as router:
        microsoft_login(router)
        send = router.post(f"{GRAPH}/me/sendMail").respond(502, json={"error": {"code": "BadGateway"}})
        [result] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=Providers(CONFIG))
        assert result.status == "uncertain" and send.call_count == 1
        assert send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=Providers(CONFIG)) == []
        assert send.call_count == 1


def test_a_follow_up_gmail_files_in_a_new_thread_keeps_both_threads_watched(
    session_factory: sessionmaker[Session], book: Any
) -> None:
    _connect(session_factory, "gmail")
    number = book["inv"].number
    _queue(session_factory, number, "Invoice reminder")
    _queue(session_factory, number, "Final notice")  # Gmail keeps a thread only while the subject matches
    providers = gmail_providers(
        google_token(), ok({"id": "g-msg-1", "threadId": "g-thread-1"}), ok({"id": "g-msg-2", "threadId": "g-thread-2"})
    )
    results = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=providers)
    assert [r.status for r in results] == ["sent", "sent"]
    (first, _), (second, thread_asked) = _sends(providers)
    assert thread_asked == "g-thread-1" and second["In-Reply-To"] == first["Message-ID"]
    with session_factory() as session:
        rows = session.scalars(select(MailThread).order_by(MailThread.id)).all()
        assert [r.provider_thread_id for r in rows] == ["g-thread-1", "g-thread-2"]
        assert rows[1].message_ids.split() == [first["Message-ID"], second["Message-ID"]]


def test_no_connection_to_graph_sends_nothing_and_a_later_run_tries_again(
    session_factory: sessionmaker[Session], book: Any
) -> None:
    import httpx

    _connect(session_factory, "outlook")
    outbox_id = _queue(session_factory, book["inv"].number)
    with respx.mock(assert_all_called=True) as router:
        microsoft_login(router)
        send = router.post(f"{GRAPH}/me/sendMail")
        send.side_effect = [httpx.ConnectError("connection refused"), respx.MockResponse(202)]
        router.get(SENT_ITEMS).respond(json={"value": []})
        [first] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=Providers(CONFIG))
        assert first.status == "queued" and "could not be reached" in str(first.error)
        [second] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=Providers(CONFIG))
    assert second.status == "sent" and _email(session_factory, outbox_id).attempts == 2


@pytest.mark.parametrize(
    ("message", "status", "mailbox"),
    [
        ("User-rate limit exceeded.", "queued", "connected"),
        ("Request had insufficient authentication scopes.", "failed", "needs_reconnect"),
    ],
)
def test_a_gmail_403_is_a_rate_limit_or_a_missing_scope(
    session_factory: sessionmaker[Session], book: Any, message: str, status: str, mailbox: str
) -> None:
    _connect(session_factory, "gmail")
    _queue(session_factory, book["inv"].number)
    providers = gmail_providers(google_token(), ok({"error": {"code": 403, "message": message}}, status=403))
    [result] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=providers)
    assert result.status == status and message in str(result.error)
    with session_factory() as session:
        assert session.scalars(select(Mailbox.status)).one() == mailbox
