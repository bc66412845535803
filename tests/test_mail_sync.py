"""Replies come back: new messages in the invoices' threads pause chasing, are logged, and suggest actions to approve."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import respx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm.drafts import skip_reason
from lumo.crm.invoices import get_row
from lumo.crm.lifecycle import AsOf
from lumo.crm.priorities import compute_priorities
from lumo.crm.scope import scope_for_email
from lumo.db.models import Activity, Invoice, Mailbox, MailMessage, MailThread, Payment
from lumo.digest.run import send_outbox
from lumo.mail.providers import Providers
from lumo.mail.sync import sync_mailboxes
from tests.clients import run_cli
from tests.factories import NOON, TODAY, basic_book, invoice, outbox_email
from tests.llm_support import LLM_MOCKER
from tests.mail_support import (
    CONFIG,
    GRAPH,
    RecordingSmtp,
    connect_mailbox,
    gmail_providers,
    google_token,
    microsoft_login,
    ok,
)

LATER = NOON + dt.timedelta(days=1)
DELTA = f"{GRAPH}/me/mailFolders/inbox/messages/delta"


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    b = basic_book(session)
    b["inv"] = invoice(session, "a1", contacts=("c1",), days_overdue=10)
    session.commit()
    return b


def _gmail_message(
    mid: str, text: str, *, sender: str = "Hank Scorpio <c1@customer.test>", **headers: str
) -> tuple[dict[str, str], str]:
    all_headers = [{"name": "From", "value": sender}, {"name": "Subject", "value": "Re: Invoice reminder"}]
    all_headers += [{"name": k.replace("_", "-"), "value": v} for k, v in headers.items()]
    data = base64.urlsafe_b64encode(text.encode()).decode()
    body = {
        "id": mid,
        "threadId": "g-thread-1",
        "internalDate": str(int((NOON + dt.timedelta(hours=3)).timestamp() * 1000)),
        "payload": {
            "mimeType": "multipart/alternative",
            "headers": all_headers,
            "parts": [{"mimeType": "text/plain", "body": {"data": data}}],
        },
    }
    return ok(body)


PAID = "We paid this yesterday.\n\nOn Tue, Nov 25, 2026 at 12:00 User U1 <u1@acme.test> wrote:\n> Please pay INV-1001 by Friday?"
OUT_OF_OFFICE = "I am out of the office until December 1st and will reply when I am back. Will pay when I return?"


def _thread(factory: sessionmaker[Session], provider: str, thread_id: str, cursor: str | None) -> None:
    with factory() as session:
        box = connect_mailbox(session, "u1", provider, cursor=cursor)
        inv = session.scalars(select(Invoice)).one()
        session.add(
            MailThread(
                mailbox_id=box.id,
                invoice_id=inv.id,
                provider_thread_id=thread_id,
                subject="Invoice reminder",
                message_ids="<m1@acme.test>",
                updated_at=NOON,
            )
        )
        session.commit()


def _invoice(factory: sessionmaker[Session]) -> Invoice:
    with factory() as session:
        return session.scalars(select(Invoice)).one()


def _replies(factory: sessionmaker[Session]) -> list[MailMessage]:
    with factory() as session:
        return list(session.scalars(select(MailMessage).order_by(MailMessage.id)))


def _reply_activities(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(Activity.text).where(Activity.source.is_not(None))))


def test_done_when_a_gmail_reminder_then_a_paid_claim_pauses_chasing_and_an_out_of_office_changes_nothing(
    session_factory: sessionmaker[Session], book: Any
) -> None:
    with session_factory() as session:
        connect_mailbox(session, "u1", "gmail", cursor="100")
        outbox_email(session, [book["inv"].number], subject="Invoice reminder")
        session.commit()
    providers = gmail_providers(
        google_token(),
        ok({"id": "g-sent-1", "threadId": "g-thread-1"}),
        ok(
            {
                "history": [
                    {"id": "101", "messagesAdded": [{"message": {"id": "g-sent-1", "threadId": "g-thread-1"}}]},
                    {"id": "102", "messagesAdded": [{"message": {"id": "r1", "threadId": "g-thread-1"}}]},
                    {"id": "103", "messagesAdded": [{"message": {"id": "o1", "threadId": "g-thread-1"}}]},
                    {"id": "104", "messagesAdded": [{"message": {"id": "x1", "threadId": "someone-else"}}]},
                ],
                "historyId": "105",
            }
        ),
        _gmail_message("g-sent-1", "Please pay.", sender="User U1 <u1@acme.test>"),
        _gmail_message("r1", PAID),
        _gmail_message("o1", OUT_OF_OFFICE, Auto_Submitted="auto-replied", X_Auto_Response_Suppress="All"),
    )
    [sent] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=providers)
    assert sent.status == "sent"
    [result] = sync_mailboxes(session_factory, LATER, providers=providers)
    assert (result.status, result.replies, result.auto_replies, result.resynced) == ("synced", 1, 1, False)
    history_call = [c for c in providers.gmail_http.request_sequence if "/history" in c[0]][0][0]
    assert "startHistoryId=100" in history_call and "historyTypes=messageAdded" in history_call
    reply, auto = _replies(session_factory)
    assert (reply.provider_message_id, reply.kind, reply.meaning, reply.excerpt) == (
        "r1",
        "reply",
        "paid_claim",
        "We paid this yesterday.",
    )
    assert (auto.provider_message_id, auto.kind, auto.proposals) == ("o1", "auto_reply", "[]")
    tools = [p["tool"] for p in json.loads(reply.proposals)]
    assert tools == ["log_note", "create_follow_up_task"]
    task = json.loads(reply.proposals)[1]["args"]
    assert task["title"] == f"Verify the payment c1@customer.test says was made for {book['inv'].number}, then record it"
    with session_factory() as session:
        assert session.scalars(select(Mailbox.cursor)).one() == "105"
        assert session.scalars(select(Payment)).all() == []  # a claim is never a payment
        inv = session.scalars(select(Invoice)).one()
        assert inv.status == "sent" and inv.customer_replied_at == NOON + dt.timedelta(hours=3)
        scope = scope_for_email(session, "u1@acme.test")
        as_of = AsOf(TODAY + dt.timedelta(days=1), ZoneInfo("UTC"))
        assert skip_reason(get_row(session, scope, inv.number), as_of) == "customer_replied"
        [item] = compute_priorities(session, scope, as_of)
        assert item.kind == "customer_replied" and item.reasons[1] == "customer replied by email on 2026-11-25: chasing waits"
    assert _reply_activities(session_factory) == ["Customer replied (c1@customer.test): We paid this yesterday."]


def test_the_rep_acting_on_the_invoice_resumes_chasing(session_factory: sessionmaker[Session], book: Any) -> None:
    from lumo.crm import ledger

    with session_factory() as session:
        inv = session.scalars(select(Invoice)).one()
        ledger.record_activity(session, inv, kind="email", at=NOON, by_id=None, text="Customer replied", source="gmail:r1")
        inv.customer_replied_at = NOON
        ledger.record_activity(session, inv, kind="note", at=NOON + dt.timedelta(hours=1), by_id="u1", text="Called: verifying")
        session.commit()
        assert inv.customer_replied_at is None


def test_an_expired_gmail_history_id_reads_the_threads_again_without_doubling(
    session_factory: sessionmaker[Session], book: Any
) -> None:
    _thread(session_factory, "gmail", "g-thread-1", cursor="100")
    first = gmail_providers(
        google_token(),
        ok(
            {
                "history": [{"id": "101", "messagesAdded": [{"message": {"id": "r1", "threadId": "g-thread-1"}}]}],
                "historyId": "101",
            }
        ),
        _gmail_message("r1", PAID),
    )
    [result] = sync_mailboxes(session_factory, LATER, providers=first)
    assert result.replies == 1
    expired = gmail_providers(
        google_token(),
        ok({"error": {"code": 404, "message": "Requested entity was not found."}}, status=404),
        ok({"emailAddress": "u1@acme.test", "historyId": "900"}),
        ok(
            {
                "id": "g-thread-1",
                "messages": [
                    json.loads(_gmail_message("r1", PAID)[1]),
                    json.loads(_gmail_message("r2", "Is there a late fee?")[1]),
                ],
            }
        ),
    )
    [again] = sync_mailboxes(session_factory, LATER, providers=expired)
    assert (again.status, again.replies, again.resynced) == ("synced", 1, True)
    assert [m.provider_message_id for m in _replies(session_factory)] == ["r1", "r2"]
    assert _replies(session_factory)[1].meaning == "question"
    with session_factory() as session:
        assert session.scalars(select(Mailbox.cursor)).one() == "900"
    assert len(_reply_activities(session_factory)) == 2  # r1 once, r2 once


def _graph_message(mid: str, text: str, headers: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "id": mid,
        "conversationId": "conv-1",
        "internetMessageId": f"<{mid}@customer.test>",
        "subject": "RE: Invoice reminder",
        "from": {"emailAddress": {"name": "Hank Scorpio", "address": "c1@customer.test"}},
        "receivedDateTime": "2026-11-25T15:00:00Z",
        "bodyPreview": text[:50],
        "body": {"contentType": "text", "content": text},
        "internetMessageHeaders": headers or [{"name": "Received", "value": "from mx"}],
    }


def test_done_when_a_graph_reminder_then_a_paid_claim_and_an_out_of_office(
    session_factory: sessionmaker[Session], book: Any
) -> None:
    with session_factory() as session:
        connect_mailbox(session, "u1", "outlook")
        outbox_email(session, [book["inv"].number], subject="Invoice reminder")
        session.commit()
    link = f"{DELTA}?$deltatoken=abc"
    with respx.mock(assert_all_called=True) as router:
        microsoft_login(router)
        router.post(f"{GRAPH}/me/sendMail").respond(202)
        router.get(f"{GRAPH}/me/mailFolders/sentitems/messages").respond(
            json={"value": [{"id": "S1", "conversationId": "conv-1"}]}
        )
        start = router.get(
            DELTA, params={"$select": "id,conversationId,internetMessageId,subject,from,receivedDateTime,bodyPreview"}
        )
        start.respond(
            json={
                "value": [
                    {"id": "AAr1", "conversationId": "conv-1"},
                    {"id": "AAo1", "conversationId": "conv-1"},
                    {"id": "AAx", "conversationId": "elsewhere"},
                ],
                "@odata.deltaLink": link,
            }
        )
        router.get(f"{GRAPH}/me/messages/AAr1").respond(json=_graph_message("AAr1", "Hi, we paid this yesterday. Regards, Hank"))
        oof = [{"name": "X-Auto-Response-Suppress", "value": "All"}, {"name": "Auto-Submitted", "value": "auto-generated"}]
        router.get(f"{GRAPH}/me/messages/AAo1").respond(json=_graph_message("AAo1", OUT_OF_OFFICE, oof))
        providers = Providers(CONFIG)
        [sent] = send_outbox(session_factory, RecordingSmtp(), NOON, mailboxes=providers)
        assert sent.status == "sent"
        [result] = sync_mailboxes(session_factory, LATER, providers=providers)
        assert "receivedDateTime ge 2026-11-20T09:00:00Z" == start.calls[0].request.url.params["$filter"]
    assert (result.status, result.replies, result.auto_replies) == ("synced", 1, 1)
    reply, auto = _replies(session_factory)
    assert reply.meaning == "paid_claim" and auto.kind == "auto_reply"
    assert [p["tool"] for p in json.loads(reply.proposals)] == ["log_note", "create_follow_up_task"]
    with session_factory() as session:
        assert session.scalars(select(Mailbox.cursor)).one() == link
    assert _invoice(session_factory).customer_replied_at is not None


def test_an_expired_graph_delta_link_starts_over_and_a_401_refreshes(session_factory: sessionmaker[Session], book: Any) -> None:
    old = f"{DELTA}?$deltatoken=old"
    _thread(session_factory, "outlook", "conv-1", cursor=old)
    with respx.mock(assert_all_called=True) as router:
        login = microsoft_login(router)
        expired = router.get(DELTA, params={"$deltatoken": "old"})
        expired.side_effect = [
            respx.MockResponse(401, json={"error": {"code": "InvalidAuthenticationToken"}}),
            respx.MockResponse(410, json={"error": {"code": "SyncStateNotFound", "message": "expired"}}),
        ]
        fresh = router.get(
            DELTA, params={"$select": "id,conversationId,internetMessageId,subject,from,receivedDateTime,bodyPreview"}
        )
        fresh.respond(
            json={"value": [{"id": "AAp1", "conversationId": "conv-1"}], "@odata.deltaLink": f"{DELTA}?$deltatoken=new"}
        )
        router.get(f"{GRAPH}/me/messages/AAp1").respond(json=_graph_message("AAp1", "We will pay on December 4."))
        [result] = sync_mailboxes(session_factory, LATER, providers=Providers(CONFIG))
    assert (result.status, result.replies, result.resynced) == ("synced", 1, True) and login.call_count == 2
    [reply] = _replies(session_factory)
    assert reply.meaning == "promise"
    [promise] = json.loads(reply.proposals)
    assert promise["tool"] == "record_promise" and promise["args"]["date"] == "2026-12-04"


def test_a_429_on_sync_waits_and_revoked_consent_asks_the_rep(session_factory: sessionmaker[Session], book: Any) -> None:
    _thread(session_factory, "outlook", "conv-1", cursor=f"{DELTA}?$deltatoken=t")
    slept: list[float] = []
    with respx.mock(assert_all_called=True) as router:
        microsoft_login(router)
        delta = router.get(DELTA, params={"$deltatoken": "t"})
        delta.side_effect = [
            respx.MockResponse(429, headers={"Retry-After": "2"}, json={"error": {"code": "TooManyRequests"}}),
            respx.MockResponse(200, json={"value": [], "@odata.deltaLink": f"{DELTA}?$deltatoken=t2"}),
        ]
        [result] = sync_mailboxes(session_factory, LATER, providers=Providers(CONFIG, sleep=slept.append))
    assert result.status == "synced" and slept == [2.0]
    with respx.mock(assert_all_called=True) as router:
        microsoft_login(router, error="invalid_grant")
        [revoked] = sync_mailboxes(session_factory, LATER, providers=Providers(CONFIG))
    assert revoked.status == "needs_reconnect" and "invalid_grant" in str(revoked.error)
    with session_factory() as session:
        assert session.scalars(select(Mailbox.status)).one() == "needs_reconnect"
    assert sync_mailboxes(session_factory, LATER, providers=Providers(CONFIG)) == []  # waits for the rep to reconnect


def test_a_reply_s_suggestions_are_proposed_for_approval_never_applied(
    db_url: str,
    session_factory: sessionmaker[Session],
    book: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _thread(session_factory, "gmail", "g-thread-1", cursor="100")
    providers = gmail_providers(
        google_token(),
        ok(
            {
                "history": [{"id": "101", "messagesAdded": [{"message": {"id": "r1", "threadId": "g-thread-1"}}]}],
                "historyId": "101",
            }
        ),
        _gmail_message("r1", PAID),
    )
    sync_mailboxes(session_factory, LATER, providers=providers)
    [reply] = _replies(session_factory)
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    monkeypatch.setenv("LUMO_LLM", "offline")
    code, out, err = run_cli(monkeypatch, capsys, "mail", "replies", "--user", "u1@acme.test")
    assert code == 0 and f"#{reply.id} " in out and "(paid_claim): We paid this yesterday." in out
    code, out, err = run_cli(monkeypatch, capsys, "mail", "propose", str(reply.id), "--user", "u1@acme.test", "--json")
    assert code == 0, err
    pending = json.loads(out)["pending_actions"]
    assert [p["tool"] for p in pending] == ["log_note", "create_follow_up_task"]
    with session_factory() as session:
        assert session.scalars(select(Activity).where(Activity.kind == "note")).all() == []  # waits for approval
    code, out, err = run_cli(monkeypatch, capsys, "mail", "propose", str(reply.id), "--user", "u2@acme.test")
    assert code == 3 and "no reply" in err


LLM_URL = "http://llm.test/v1"


def _read_reply_completion(arguments: str) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "read_reply", "arguments": arguments}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
    return {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice]}


@pytest.mark.parametrize(
    ("answer", "meaning", "tools"),
    [
        ('{"meaning": "paid_claim"}', "paid_claim", ["log_note", "create_follow_up_task"]),
        (
            '{"meaning": "promise", "promise_date": "2020-01-01"}',
            "promise",
            ["create_follow_up_task"],
        ),  # a past day is no promise
        ("not json", "other", ["create_follow_up_task"]),
    ],
)
def test_the_model_reads_only_what_the_rules_could_not_and_only_proposes(
    session_factory: sessionmaker[Session], book: Any, answer: str, meaning: str, tools: list[str]
) -> None:
    from lumo.agent.reply_reader import reply_reader
    from lumo.llm import LLMSettings

    _thread(session_factory, "gmail", "g-thread-1", cursor="100")
    remittance = "Please find our remittance advice attached, from the AP team."
    history = {
        "history": [{"id": "101", "messagesAdded": [{"message": {"id": "r9", "threadId": "g-thread-1"}}]}],
        "historyId": "101",
    }
    providers = gmail_providers(google_token(), ok(history), _gmail_message("r9", remittance))
    reader = reply_reader(LLMSettings(api_key="k", base_url=LLM_URL, max_attempts=1))
    with respx.mock(base_url=LLM_URL, using=LLM_MOCKER) as llm:
        chat = llm.post("/chat/completions").respond(json=_read_reply_completion(answer))
        [result] = sync_mailboxes(session_factory, LATER, providers=providers, reader=reader)
    assert result.replies == 1 and chat.call_count == 1
    assert "remittance advice attached" in json.loads(chat.calls[0].request.content)["messages"][0]["content"]
    [reply] = _replies(session_factory)
    assert reply.meaning == meaning and [p["tool"] for p in json.loads(reply.proposals)] == tools
    with session_factory() as session:
        assert session.scalars(select(Payment)).all() == [] and session.scalars(select(Invoice.status)).one() == "sent"


def test_a_reply_the_rules_read_never_asks_the_model(session_factory: sessionmaker[Session], book: Any) -> None:
    _thread(session_factory, "gmail", "g-thread-1", cursor="100")
    history = {
        "history": [{"id": "101", "messagesAdded": [{"message": {"id": "r1", "threadId": "g-thread-1"}}]}],
        "historyId": "101",
    }
    providers = gmail_providers(google_token(), ok(history), _gmail_message("r1", PAID))

    def reader(text: str, numbers: Any, today: dt.date) -> None:
        raise AssertionError("the model was asked about a reply the rules read")

    [result] = sync_mailboxes(session_factory, LATER, providers=providers, reader=reader)
    assert result.replies == 1 and _replies(session_factory)[0].meaning == "paid_claim"


def test_replies_over_http_listed_and_proposed_for_approval_in_one_s_own_book(
    db_url: str, session_factory: sessionmaker[Session], book: Any
) -> None:
    from fastapi.testclient import TestClient

    from lumo.api.app import create_app
    from lumo.auth import create_token
    from lumo.config import Settings

    _thread(session_factory, "gmail", "g-thread-1", cursor="100")
    history = {
        "history": [{"id": "101", "messagesAdded": [{"message": {"id": "r1", "threadId": "g-thread-1"}}]}],
        "historyId": "101",
    }
    sync_mailboxes(session_factory, LATER, providers=gmail_providers(google_token(), ok(history), _gmail_message("r1", PAID)))
    with session_factory() as session:
        tokens = {who: create_token(session, f"{who}@acme.test", NOON, "test") for who in ("u1", "u2")}
        session.commit()
    app = create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as c:
        mine = {"Authorization": f"Bearer {tokens['u1']}"}
        [listed] = c.get("/v1/mail/replies", headers=mine).json()["replies"]
        assert (listed["meaning"], listed["excerpt"]) == ("paid_claim", "We paid this yesterday.")
        proposed = c.post(f"/v1/mail/replies/{listed['id']}/propose", headers=mine)
        assert proposed.status_code == 200, proposed.text
        assert [p["tool"] for p in proposed.json()["pending_actions"]] == ["log_note", "create_follow_up_task"]
        theirs = {"Authorization": f"Bearer {tokens['u2']}"}
        assert c.get("/v1/mail/replies", headers=theirs).json() == {"replies": []}
        assert c.post(f"/v1/mail/replies/{listed['id']}/propose", headers=theirs).status_code == 404
