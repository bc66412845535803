"""The HTTP API in process: auth, the reads that mirror the CLI, chat and approvals, and the error contract.

Every test runs the real app (its lifespan opens the database, the checkpointer and the offline Lumo) on SQLite
and PostgreSQL, over the small book of tests.agent_support: rep u1 (Globex: INV-1042; Hooli: INV-2001 and the
disputed INV-2002), rep u2 (Initech: INV-3001), their manager m1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.cli import main as cli_main
from lumo.config import Settings
from lumo.crm.drafts import draft_for_invoice
from lumo.crm.lifecycle import AsOf
from lumo.crm.priorities import compute_priorities
from lumo.db.models import Activity, ApiToken, Invoice
from tests.agent_support import NOW, TODAY, build_book, scope_of

DATE = TODAY.isoformat()
AS_OF = AsOf(TODAY, ZoneInfo("UTC"))
U1_INVOICES = {"INV-1042", "INV-2001", "INV-2002"}
PAY_1042 = "mark INV-1042 as paid because the wire arrived"


def _no_leak(response: httpx.Response) -> None:
    """Every response of every test: no server error, no stack trace."""
    response.read()
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text


@pytest.fixture
def tokens(session: Session) -> dict[str, str]:
    build_book(session)
    minted = {who: create_token(session, f"{who}@acme.test", NOW, "test") for who in ("u1", "u2", "m1")}
    session.commit()
    return minted


@pytest.fixture
def client(db_url: str, tokens: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as c:
        c.event_hooks = {"request": [], "response": [_no_leak]}
        yield c


def auth(tokens: dict[str, str], who: str = "u1") -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[who]}"}


def invoice_numbers(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["invoice_number"] for i in response.json()["items"]]


def chat(client: TestClient, tokens: dict[str, str], message: str, who: str = "u1", **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/chat", json={"message": message, "date": DATE, **extra}, headers=auth(tokens, who))
    assert response.status_code == 200, response.text
    return response.json()


def decide(client: TestClient, tokens: dict[str, str], thread_id: str, who: str = "u1", **body: Any) -> httpx.Response:
    return client.post(f"/v1/threads/{thread_id}/decision", json={"date": DATE, **body}, headers=auth(tokens, who))


def status_of(session_factory: sessionmaker[Session], number: str) -> str | None:
    with session_factory() as s:
        return s.scalar(select(Invoice.status).where(Invoice.number == number))


def status_changes(session_factory: sessionmaker[Session], number: str) -> list[tuple[str | None, str | None, str | None]]:
    with session_factory() as s:
        rows = s.execute(
            select(Activity.from_status, Activity.to_status, Activity.text)
            .join(Invoice, Invoice.id == Activity.invoice_id)
            .where(Invoice.number == number, Activity.kind == "status_change")
        ).all()
    return [tuple(r) for r in rows]


# --- auth -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/priorities"),
        ("GET", "/v1/invoices"),
        ("GET", "/v1/invoices/INV-1042"),
        ("GET", "/v1/stale"),
        ("GET", "/v1/accounts"),
        ("POST", "/v1/chat"),
        ("GET", "/v1/threads/t1"),
    ],
)
def test_every_v1_path_needs_a_bearer_token(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"message": "hi"} if method == "POST" else None)
    assert response.status_code == 401
    assert response.json() == {"error": "missing bearer token"}


@pytest.mark.parametrize("header", ["Bearer lumo_not-a-real-token", "Bearer ", "Basic dTE6cGFzc3dvcmQ=", "lumo_x"])
def test_a_bad_token_gets_401_json(client: TestClient, header: str) -> None:
    response = client.get("/v1/priorities", headers={"Authorization": header})
    assert response.status_code == 401
    assert set(response.json()) == {"error"}


def test_a_revoked_token_gets_401(client: TestClient, tokens: dict[str, str], session: Session) -> None:
    session.execute(update(ApiToken).values(revoked=True))
    session.commit()
    response = client.get("/v1/priorities", headers=auth(tokens))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid, revoked or expired token"}


# --- reads ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["u1", "u2", "m1"])
def test_priorities_are_the_items_of_lumo_priorities_json(
    client: TestClient, tokens: dict[str, str], session_factory: sessionmaker[Session], who: str
) -> None:
    scope = scope_of(session_factory, f"{who}@acme.test")
    with session_factory() as s:
        expected = [i.as_json() for i in compute_priorities(s, scope, AS_OF, limit=20)]  # the CLI's default limit
    response = client.get("/v1/priorities", params={"date": DATE}, headers=auth(tokens, who))
    assert response.status_code == 200
    assert response.json() == {"items": expected}
    assert expected  # every one of them has work today


def test_priorities_take_a_limit(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.get("/v1/priorities", params={"date": DATE, "limit": 1}, headers=auth(tokens))
    assert [i["invoice_number"] for i in response.json()["items"]] == ["INV-1042"]


def test_a_bad_date_is_422_with_a_message(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.get("/v1/priorities", params={"date": "25/11/2026"}, headers=auth(tokens))
    assert response.status_code == 422
    assert response.json() == {"error": "bad date '25/11/2026': use YYYY-MM-DD"}


def test_invoices_of_a_rep_are_their_own_ordered_by_due_date(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.get("/v1/invoices", params={"date": DATE}, headers=auth(tokens))
    assert invoice_numbers(response) == ["INV-1042", "INV-2002", "INV-2001"]
    assert (response.json()["total"], response.json()["page"], response.json()["page_size"]) == (3, 1, 50)
    first = response.json()["items"][0]
    assert (first["balance"], first["currency"], first["days_overdue"], first["bucket"]) == ("12400.00", "EUR", 38, "31-60")


def test_a_manager_sees_the_invoices_of_the_team(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.get("/v1/invoices", params={"date": DATE}, headers=auth(tokens, "m1"))
    assert set(invoice_numbers(response)) == U1_INVOICES | {"INV-3001"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "disputed"}, ["INV-2002"]),
        ({"status": ["sent", "disputed"]}, ["INV-1042", "INV-2002", "INV-2001"]),
        ({"status": "paid"}, []),
        ({"overdue": "true"}, ["INV-1042", "INV-2001"]),
        ({"bucket": "31-60"}, ["INV-1042"]),
        ({"bucket": "1-30"}, ["INV-2001"]),
        ({"bucket": "current"}, ["INV-2002"]),
        ({"account": "hooli"}, ["INV-2002", "INV-2001"]),
        ({"account": "a1"}, ["INV-1042"]),
        ({"account": "Initech"}, []),  # another rep's account matches nothing
        ({"currency": "eur"}, ["INV-1042"]),
        ({"stale": "true"}, ["INV-1042", "INV-2001"]),
        ({"overdue": "true", "currency": "USD"}, ["INV-2001"]),
    ],
)
def test_invoice_filters(client: TestClient, tokens: dict[str, str], params: dict[str, Any], expected: list[str]) -> None:
    response = client.get("/v1/invoices", params={"date": DATE, **params}, headers=auth(tokens))
    assert invoice_numbers(response) == expected
    assert response.json()["total"] == len(expected)


def test_invoice_pages_split_the_same_ordering(client: TestClient, tokens: dict[str, str]) -> None:
    pages = [
        client.get("/v1/invoices", params={"date": DATE, "page": n, "page_size": 2}, headers=auth(tokens)).json()
        for n in (1, 2, 3)
    ]
    assert [[i["invoice_number"] for i in p["items"]] for p in pages] == [["INV-1042", "INV-2002"], ["INV-2001"], []]
    assert [(p["total"], p["page"], p["page_size"]) for p in pages] == [(3, 1, 2), (3, 2, 2), (3, 3, 2)]


def test_stale_invoices_are_paged_too(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.get("/v1/invoices", params={"date": DATE, "stale": "true", "page": 2, "page_size": 1}, headers=auth(tokens))
    assert invoice_numbers(response) == ["INV-2001"] and response.json()["total"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bucket": "120+"}, "bucket"),
        ({"status": "lost"}, "status"),
        ({"page": 0}, "page"),
        ({"page_size": 501}, "page_size"),
        ({"overdue": "maybe"}, "overdue"),
        ({"currency": "EURO"}, "currency"),
    ],
)
def test_bad_invoice_filters_are_422_naming_the_field(
    client: TestClient, tokens: dict[str, str], params: dict[str, Any], field: str
) -> None:
    response = client.get("/v1/invoices", params=params, headers=auth(tokens))
    assert response.status_code == 422
    assert set(response.json()) == {"error"} and field in response.json()["error"]


def test_one_invoice_has_its_history(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.get("/v1/invoices/INV-2001", params={"date": DATE}, headers=auth(tokens))
    assert response.status_code == 200
    body = response.json()
    assert (body["invoice_number"], body["account"], body["days_overdue"]) == ("INV-2001", "Hooli", 5)
    assert [c["name"] for c in body["contacts"]] == ["Gavin Belson"]
    assert [e["kind"] for e in body["history"]] == ["note"]


@pytest.mark.parametrize("suffix", ["", "/draft"])
def test_another_reps_invoice_is_404_exactly_like_a_missing_one(client: TestClient, tokens: dict[str, str], suffix: str) -> None:
    theirs = client.get(f"/v1/invoices/INV-3001{suffix}", params={"date": DATE}, headers=auth(tokens))
    missing = client.get(f"/v1/invoices/INV-3999{suffix}", params={"date": DATE}, headers=auth(tokens))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == {"error": "invoice INV-3001 not found"}
    assert missing.json() == {"error": "invoice INV-3999 not found"}
    assert client.get(f"/v1/invoices/INV-3001{suffix}", params={"date": DATE}, headers=auth(tokens, "u2")).status_code == 200


def test_draft_is_the_reminder_of_lumo_draft_json(
    client: TestClient, tokens: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as s:
        expected = draft_for_invoice(s, scope_of(session_factory, "u1@acme.test"), "INV-1042", AS_OF).as_json()
    response = client.get("/v1/invoices/INV-1042/draft", params={"date": DATE}, headers=auth(tokens))
    assert response.status_code == 200
    assert response.json() == expected
    assert response.json()["tone"] == "escalation" and response.json()["skipped_reason"] is None


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("u1", {"INV-1042", "INV-2001"}),
        ("u2", {"INV-3001"}),
        ("m1", {"INV-1042", "INV-2001", "INV-3001"}),
    ],
)
def test_stale_findings_are_scoped(client: TestClient, tokens: dict[str, str], who: str, expected: set[str]) -> None:
    response = client.get("/v1/stale", params={"date": DATE}, headers=auth(tokens, who))
    assert response.status_code == 200
    assert {f["invoice_number"] for f in response.json()["items"]} == expected
    assert all(set(f) == {"invoice_number", "kind", "evidence", "fix", "action"} for f in response.json()["items"])


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("u1", {"Globex", "Hooli"}),
        ("u2", {"Initech"}),
        ("m1", {"Globex", "Hooli", "Initech"}),
    ],
)
def test_accounts_are_scoped(client: TestClient, tokens: dict[str, str], who: str, expected: set[str]) -> None:
    response = client.get("/v1/accounts", params={"date": DATE}, headers=auth(tokens, who))
    assert response.status_code == 200
    assert {a["account"] for a in response.json()["accounts"]} == expected
    assert "revenue_at_risk" in response.json()


READ_PATHS = (
    "/v1/priorities",
    "/v1/invoices",
    "/v1/invoices/INV-1042",
    "/v1/invoices/INV-1042/draft",
    "/v1/stale",
    "/v1/accounts",
)


@pytest.mark.parametrize("date", ["1970-01-01", "2200-12-31"])
def test_reads_answer_for_every_day_in_range(client: TestClient, tokens: dict[str, str], date: str) -> None:
    for path in READ_PATHS:
        assert client.get(path, params={"date": date}, headers=auth(tokens)).status_code == 200, path


@pytest.mark.parametrize("date", ["0001-01-01", "9999-12-31"])
def test_days_out_of_range_are_a_clear_422(client: TestClient, tokens: dict[str, str], date: str) -> None:
    for path in READ_PATHS:
        response = client.get(path, params={"date": date}, headers=auth(tokens))
        assert response.status_code == 422 and "must be between" in response.json()["error"], path


# --- chat -------------------------------------------------------------------------------------------------------


def test_chat_answers_what_lumo_ask_json_answers(
    client: TestClient,
    tokens: dict[str, str],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = chat(client, tokens, "what should I do today?")
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    monkeypatch.setenv("LUMO_LLM", "offline")
    monkeypatch.setattr(
        sys, "argv", ["lumo", "ask", "what should I do today?", "--rep", "u1@acme.test", "--date", DATE, "--json"]
    )
    capsys.readouterr()
    try:
        cli_main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    cli = json.loads(capsys.readouterr().out)
    assert set(body) >= {"thread_id", "reply", "model", "items", "drafts", "pending_actions"}
    assert set(body) == set(cli)
    assert {k: v for k, v in body.items() if k != "thread_id"} == {k: v for k, v in cli.items() if k != "thread_id"}
    assert body["items"][0]["invoice_number"] == "INV-1042" and "EUR 12,400.00" in body["reply"]


def test_chat_continues_a_thread_it_names(client: TestClient, tokens: dict[str, str]) -> None:
    first = chat(client, tokens, "what should I do today?")
    second = chat(client, tokens, "Tell me about INV-1042", thread_id=first["thread_id"])
    assert first["thread_id"] == second["thread_id"]
    assert "INV-1042" in second["reply"]


def test_a_rep_gets_nothing_of_another_reps_invoice_in_chat(client: TestClient, tokens: dict[str, str]) -> None:
    body = chat(client, tokens, "Tell me about INV-3001")
    assert body["items"] == [] and body["pending_actions"] == [] and "7,777" not in json.dumps(body)


def test_a_change_waits_for_approval_and_changes_nothing_yet(
    client: TestClient, tokens: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    body = chat(client, tokens, PAY_1042)
    [action] = body["pending_actions"]
    assert action["tool"] == "update_invoice_status"
    assert action["args"] == {"invoice_number": "INV-1042", "status": "paid", "reason": "the wire arrived"}
    assert action["id"] in body["reply"]
    assert status_of(session_factory, "INV-1042") == "sent" and status_changes(session_factory, "INV-1042") == []


def test_approving_over_http_changes_the_status_and_logs_it(
    client: TestClient, tokens: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    thread_id = chat(client, tokens, PAY_1042)["thread_id"]
    response = decide(client, tokens, thread_id, decision="approve")
    assert response.status_code == 200
    assert response.json()["pending_actions"] == [] and "paid" in response.json()["reply"]
    assert status_of(session_factory, "INV-1042") == "paid"
    assert status_changes(session_factory, "INV-1042") == [("sent", "paid", "the wire arrived")]


def test_the_thread_shows_the_latest_turn(client: TestClient, tokens: dict[str, str]) -> None:
    thread_id = chat(client, tokens, PAY_1042)["thread_id"]
    done = decide(client, tokens, thread_id, decision="approve").json()
    response = client.get(f"/v1/threads/{thread_id}", headers=auth(tokens))
    assert response.status_code == 200 and response.json() == done


def test_editing_changes_the_arguments_before_running(
    client: TestClient, tokens: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    body = chat(client, tokens, PAY_1042)
    [action] = body["pending_actions"]
    response = decide(
        client,
        tokens,
        body["thread_id"],
        decision="edit",
        action_id=action["id"],
        args={"status": "disputed", "reason": "customer disputes the rate"},
    )
    assert response.status_code == 200 and response.json()["pending_actions"] == []
    assert status_of(session_factory, "INV-1042") == "disputed"
    assert status_changes(session_factory, "INV-1042") == [("sent", "disputed", "customer disputes the rate")]


def test_an_edit_without_args_is_422_and_keeps_the_action_waiting(
    client: TestClient, tokens: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    thread_id = chat(client, tokens, PAY_1042)["thread_id"]
    response = decide(client, tokens, thread_id, decision="edit")
    assert response.status_code == 422 and "args" in response.json()["error"]
    assert len(client.get(f"/v1/threads/{thread_id}", headers=auth(tokens)).json()["pending_actions"]) == 1
    assert status_of(session_factory, "INV-1042") == "sent"


def test_rejecting_changes_nothing_and_tells_lumo_why(
    client: TestClient, tokens: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    thread_id = chat(client, tokens, PAY_1042)["thread_id"]
    response = decide(client, tokens, thread_id, decision="reject", reason="the wire has not cleared yet")
    assert response.status_code == 200
    assert response.json()["pending_actions"] == [] and "the wire has not cleared yet" in response.json()["reply"]
    assert status_of(session_factory, "INV-1042") == "sent" and status_changes(session_factory, "INV-1042") == []


def test_a_second_decision_is_409_with_the_real_outcome(
    client: TestClient, tokens: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    thread_id = chat(client, tokens, PAY_1042)["thread_id"]
    assert decide(client, tokens, thread_id, decision="approve").status_code == 200
    again = decide(client, tokens, thread_id, decision="reject")
    assert again.status_code == 409
    assert again.json()["error"].startswith(f"thread {thread_id} has no action waiting for approval: ")
    assert "was already approved and done" in again.json()["error"]
    assert again.json()["outcome"]["decision"] == "approve" and again.json()["outcome"]["result"] == "done"
    assert len(status_changes(session_factory, "INV-1042")) == 1


def test_a_decision_on_an_unknown_thread_is_404(client: TestClient, tokens: dict[str, str]) -> None:
    response = decide(client, tokens, "no-such-thread", decision="approve")
    assert response.status_code == 404 and set(response.json()) == {"error"}


def test_another_user_cannot_see_or_decide_a_thread(
    client: TestClient, tokens: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    thread_id = chat(client, tokens, PAY_1042)["thread_id"]
    for who in ("u2", "m1"):  # not even the manager: threads belong to the user who started them
        assert decide(client, tokens, thread_id, who=who, decision="approve").status_code == 404
        assert client.get(f"/v1/threads/{thread_id}", headers=auth(tokens, who)).status_code == 404
    assert status_of(session_factory, "INV-1042") == "sent"
    assert decide(client, tokens, thread_id, decision="approve").status_code == 200  # still waiting for its owner


def test_a_due_date_out_of_the_calendar_is_not_a_server_error(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.post(
        "/v1/chat", json={"message": "create a task to call Hank about INV-1042 in 99999999 days"}, headers=auth(tokens)
    )
    assert response.status_code in (200, 422)


def test_a_thread_waiting_for_approval_refuses_a_new_message(client: TestClient, tokens: dict[str, str]) -> None:
    thread_id = chat(client, tokens, PAY_1042)["thread_id"]
    for path in ("/v1/chat", "/v1/chat/stream"):  # the stream refuses before it starts
        response = client.post(path, json={"message": "what should I do today?", "thread_id": thread_id}, headers=auth(tokens))
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/json"
        assert "waiting for approval" in response.json()["error"]


def test_chat_streams_the_turn_as_events(client: TestClient, tokens: dict[str, str]) -> None:
    with client.stream(
        "POST", "/v1/chat/stream", json={"message": "what should I do today?", "date": DATE}, headers=auth(tokens)
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    assert events[0] == "thread" and events[-1] == "message" and "step" in events


# --- the error contract -----------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_json(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.post("/v1/chat", json={"message": "x" * 70_000}, headers=auth(tokens))
    assert response.status_code == 413
    assert response.json() == {"error": "request body too large"}


def test_a_streamed_body_over_the_limit_is_413_json(client: TestClient, tokens: dict[str, str]) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body arrives
        yield b'{"message": "'
        for _ in range(70):
            yield b"x" * 1000
        yield b'"}'

    response = client.post("/v1/chat", content=chunks(), headers={**auth(tokens), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": "request body too large"}


@pytest.mark.parametrize("body", [b'{"message": ', b"not json", b"\xff\xfe"])
def test_malformed_json_is_422_json(client: TestClient, tokens: dict[str, str], body: bytes) -> None:
    response = client.post("/v1/chat", content=body, headers={**auth(tokens), "Content-Type": "application/json"})
    assert response.status_code == 422
    assert set(response.json()) == {"error"} and response.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/chat", {"message": "hi", "temperature": 2}, "temperature"),
        ("/v1/threads/t1/decision", {"decision": "approve", "force": True}, "force"),
    ],
)
def test_unknown_fields_are_422(client: TestClient, tokens: dict[str, str], path: str, body: dict[str, Any], field: str) -> None:
    response = client.post(path, json=body, headers=auth(tokens))
    assert response.status_code == 422
    assert field in response.json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message": ""},
        {"message": "   "},
        {"message": "x" * 4001},
        {"message": 42},
        {"message": "hi", "thread_id": "../etc"},
        {"message": "hi", "date": "tomorrow"},
    ],
)
def test_a_bad_chat_request_is_422_with_a_message(client: TestClient, tokens: dict[str, str], body: dict[str, Any]) -> None:
    response = client.post("/v1/chat", json=body, headers=auth(tokens))
    assert response.status_code == 422
    assert set(response.json()) == {"error"} and response.json()["error"]


def test_a_bad_decision_is_422(client: TestClient, tokens: dict[str, str]) -> None:
    response = decide(client, tokens, "t1", decision="maybe")
    assert response.status_code == 422 and "decision" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/invoices/INV-1042%00",
        "/v1/invoices/INV-1042%00/draft",
        "/v1/invoices?account=Glo%00bex",
        "/v1/invoices?currency=E%00R",
        "/v1/accounts?account=%00",
        "/v1/threads/t%00",
    ],
)
def test_a_nul_character_in_the_path_or_query_is_422_on_every_database(
    client: TestClient, tokens: dict[str, str], path: str
) -> None:
    response = client.get(path, headers=auth(tokens))  # PostgreSQL cannot compare text with NUL: it used to 500
    assert response.status_code == 422
    assert response.json() == {"error": "the request contains a NUL character"}


def test_no_error_response_carries_a_stack_trace(client: TestClient, tokens: dict[str, str]) -> None:
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/chat", {"content": b"{", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/v1/chat", {"content": b'{"message": "hi"}', "headers": {"Content-Type": "text/plain"}}),
        ("POST", "/v1/chat", {"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/v1/chat", {"content": b"x" * 70_000}),
        ("POST", "/v1/chat", {"json": {"message": "hi", "date": "2026-02-30"}}),
        ("GET", "/v1/priorities", {"params": {"date": "0000-00-00", "limit": "lots"}}),
        ("GET", "/v1/invoices", {"params": {"page": "-1", "bucket": "🙂"}}),
        ("GET", "/v1/invoices/%00", {}),
        ("GET", "/v1/threads/%2e%2e", {}),
        ("DELETE", "/v1/priorities", {}),
        ("GET", "/v1/nothing-here", {}),
    ]
    for method, path, kwargs in requests:
        headers = {**auth(tokens), **kwargs.pop("headers", {})}
        response = client.request(method, path, headers=headers, **kwargs)
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
        assert "Traceback" not in response.text and 'File "' not in response.text
        assert set(response.json()) >= {"error"}, (method, path, response.text)


# --- health -----------------------------------------------------------------------------------------------------


def test_healthz_needs_no_token(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_says_the_database_answers(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


@pytest.mark.parametrize("suffix", ["", "/draft"])
def test_invoice_numbers_are_case_insensitive(client: TestClient, tokens: dict[str, str], suffix: str) -> None:
    mine = client.get(f"/v1/invoices/inv-1042{suffix}", params={"date": DATE}, headers=auth(tokens))
    assert mine.status_code == 200
    assert (mine.json().get("invoice_number") or mine.json()["invoice_numbers"][0]) == "INV-1042"
    theirs = client.get(f"/v1/invoices/inv-3001{suffix}", params={"date": DATE}, headers=auth(tokens))
    assert theirs.status_code == 404 and theirs.json() == {"error": "invoice inv-3001 not found"}
