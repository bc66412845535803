"""Recording what a customer said: approvable actions (chat, CLI, HTTP) whose events change priorities, drafts
and stale findings at once."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.agent.graph import DAY_PLAN_TOOLS
from lumo.crm.drafts import draft_for_invoice
from lumo.crm.errors import InvalidInput, NotFound
from lumo.crm.invoices import get_row
from lumo.crm.priorities import compute_priorities
from lumo.crm.stale import findings_for
from lumo.db.models import Activity, Invoice, Payment
from tests import factories as f
from tests.agent_support import AS_OF, NOW, TODAY, approve, ask, build_book, open_lumo, scope_of
from tests.clients import Cli, OpenApi
from tools import REGISTRY


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    return build_book(session)


def _events(session_factory: sessionmaker[Session], number: str) -> list[Activity]:
    with session_factory() as s:
        inv_id = s.scalar(select(Invoice.id).where(Invoice.number == number))
        return list(s.scalars(select(Activity).where(Activity.invoice_id == inv_id).order_by(Activity.id)))


async def _said_and_approved(db_url: str, session_factory: sessionmaker[Session], message: str) -> dict[str, Any]:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, message)
        assert out["pending_actions"], out["reply"]
        return await approve(lumo, scope, out["thread_id"])


async def test_a_promise_waits_for_approval_then_stops_the_reminders(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Gavin promised to pay INV-2001 by the 30th")
        [action] = out["pending_actions"]
        assert action["tool"] == "record_promise" and action["args"]["date"] == "2026-11-30"
        assert f.by_number(session_factory, "INV-2001").promise_to_pay_date is None  # nothing before approval
        done = await approve(lumo, scope, out["thread_id"])
    assert "2026-11-30" in done["reply"]
    assert f.by_number(session_factory, "INV-2001").promise_to_pay_date == dt.date(2026, 11, 30)
    event = _events(session_factory, "INV-2001")[-1]
    assert (event.kind, event.by_id, event.at) == ("note", "u1", NOW)
    assert event.text.startswith("Customer promised to pay the balance USD 900.00 of INV-2001 by 2026-11-30")
    with session_factory() as s:
        assert draft_for_invoice(s, scope, "INV-2001", AS_OF).skipped_reason == "promise_pending"
        [item] = [i for i in compute_priorities(s, scope, AS_OF) if i.invoice and i.invoice.number == "INV-2001"]
        assert "promised to pay by 2026-11-30" in item.reasons


async def test_a_partial_payment_marks_the_invoice_partially_paid(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    done = await _said_and_approved(db_url, session_factory, "We got a payment of USD 400 for INV-2001 by card")
    assert "balance USD 500.00" in done["reply"]
    inv = f.by_number(session_factory, "INV-2001")
    assert (inv.amount_paid, inv.status) == (Decimal("400.00"), "partially_paid")
    with session_factory() as s:
        assert [p.amount for p in s.scalars(select(Payment).where(Payment.invoice_id == inv.id))] == [Decimal("400.00")]
    note, change = _events(session_factory, "INV-2001")[-2:]
    assert "by card" in note.text and (change.from_status, change.to_status) == ("sent", "partially_paid")
    with session_factory() as s:
        draft = draft_for_invoice(s, scope_of(session_factory, "u1@acme.test"), "INV-2001", AS_OF)
    assert "$500.00" in draft.body and "$900.00" not in draft.body


async def test_a_payment_in_full_marks_it_paid_and_ends_the_chasing(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    await _said_and_approved(db_url, session_factory, "received USD 900.00 on INV-2001 yesterday")
    inv = f.by_number(session_factory, "INV-2001")
    assert inv.status == "paid" and inv.amount_paid == Decimal("900.00")
    with session_factory() as s:
        assert s.scalar(select(Payment.paid_at).where(Payment.invoice_id == inv.id)) == dt.datetime(
            2026, 11, 24, 12, tzinfo=dt.UTC
        )
        scope = scope_of(session_factory, "u1@acme.test")
        assert draft_for_invoice(s, scope, "INV-2001", AS_OF).skipped_reason == "paid"
        assert all(i.invoice is None or i.invoice.number != "INV-2001" for i in compute_priorities(s, scope, AS_OF))


async def test_opening_a_dispute_turns_the_reminder_into_a_dispute_follow_up(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    await _said_and_approved(db_url, session_factory, "INV-1042 is disputed: two seats were never delivered")
    inv = f.by_number(session_factory, "INV-1042")
    assert (inv.status, inv.dispute_reason) == ("disputed", "two seats were never delivered")
    event = _events(session_factory, "INV-1042")[-1]
    assert (event.from_status, event.to_status, event.by_id) == ("sent", "disputed", "u1")
    with session_factory() as s:
        assert draft_for_invoice(s, scope_of(session_factory, "u1@acme.test"), "INV-1042", AS_OF).tone == "dispute_resolution"


async def test_resolving_a_dispute_sets_the_status_the_facts_call_for(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    await _said_and_approved(db_url, session_factory, "Resolve the dispute on INV-2002: credit note for the extra seats")
    inv = f.by_number(session_factory, "INV-2002")
    assert (inv.status, inv.dispute_reason) == ("overdue", None)  # 20 days past due, balance open
    event = _events(session_factory, "INV-2002")[-1]
    assert event.text == "Dispute resolved (wrong seat count): credit note for the extra seats"


async def test_a_logged_call_counts_as_contact(db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]) -> None:
    await _said_and_approved(db_url, session_factory, "Log a call with Hank about INV-1042: he is checking with finance")
    event = _events(session_factory, "INV-1042")[-1]
    assert (event.kind, event.text) == ("call", "he is checking with finance")
    scope = scope_of(session_factory, "u1@acme.test")
    with session_factory() as s:
        assert draft_for_invoice(s, scope, "INV-1042", AS_OF).skipped_reason == "cooldown"
        assert "no_recent_activity" not in [f.kind for f in findings_for(get_row(s, scope, "INV-1042"), AS_OF)]


@pytest.mark.parametrize(
    ("message", "refusal"),
    [
        ("Gavin promised to pay INV-2001 by 2026-11-01", "in the past"),
        ("We got a payment of USD 5,000 for INV-2001", "more than the balance"),
        ("We got a payment of EUR 100 for INV-2001", "billed in USD, not EUR"),
        ("Resolve the dispute on INV-2001: all good", "not disputed"),
        ("Bill promised to pay INV-3001 by Friday", "couldn't find invoice INV-3001"),
    ],
)
async def test_a_record_that_cannot_be_true_is_refused_before_approval(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any], message: str, refusal: str
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, message)
    assert out["pending_actions"] == []
    assert refusal in out["reply"]
    with session_factory() as s:
        assert s.scalar(select(Payment.id)) is None


async def test_propose_refuses_an_invoice_outside_the_book(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        with pytest.raises(NotFound, match="INV-3001 not found"):
            await lumo.propose(
                scope, [("log_call", {"invoice_number": "INV-3001", "outcome": "hello"})], message="x", as_of=AS_OF, now=NOW
            )
        with pytest.raises(InvalidInput, match="outcome"):
            await lumo.propose(
                scope, [("log_call", {"invoice_number": "INV-2001", "outcome": ""})], message="x", as_of=AS_OF, now=NOW
            )


# --- CLI ----------------------------------------------------------------------------------------


def test_lumo_record_payment_then_approve(cli: Cli, session_factory: sessionmaker[Session], book: dict[str, Any]) -> None:
    rep = ("--rep", "u1@acme.test", "--date", TODAY.isoformat())
    code, out, err = cli("record", "payment", "INV-2001", "--amount", "250", "--method", "check", *rep, "--json")
    assert code == 0, err
    proposed = json.loads(out)
    [action] = proposed["pending_actions"]
    assert action["tool"] == "record_payment" and "USD 250.00" in action["description"]
    assert f.by_number(session_factory, "INV-2001").amount_paid == Decimal("0")
    code, out, err = cli("approve", proposed["thread_id"], *rep, "--json")
    assert code == 0, err
    assert f.by_number(session_factory, "INV-2001").amount_paid == Decimal("250.00")


def test_lumo_record_rejects_a_bad_date_in_one_line(cli: Cli, book: dict[str, Any]) -> None:
    code, out, err = cli("record", "promise", "INV-2001", "--by", "soon", "--rep", "u1@acme.test")
    assert code == 2 and err.strip() == "error: bad --by 'soon': use YYYY-MM-DD"
    code, out, err = cli("record", "call", "INV-3001", "--outcome", "hello", "--rep", "u1@acme.test")
    assert code == 3 and err.strip() == "error: invoice INV-3001 not found"


# --- HTTP ---------------------------------------------------------------------------------------


@pytest.fixture
def client(api: OpenApi, book: dict[str, Any]) -> TestClient:
    opened = api("u1")
    opened.client.headers.update(opened.auth("u1"))
    return opened.client


def test_http_record_is_a_pending_action_decided_like_any(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    body = {"tool": "open_dispute", "args": {"invoice_number": "INV-2001", "reason": "wrong PO number"}, "date": "2026-11-25"}
    response = client.post("/v1/record", json=body)
    assert response.status_code == 200, response.text
    thread = response.json()["thread_id"]
    assert [a["tool"] for a in response.json()["pending_actions"]] == ["open_dispute"]
    decided = client.post(f"/v1/threads/{thread}/decision", json={"decision": "approve", "date": "2026-11-25"})
    assert decided.status_code == 200
    assert f.by_number(session_factory, "INV-2001").status == "disputed"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"tool": "log_call", "args": {"invoice_number": "INV-3001", "outcome": "hi there"}}, 404),  # outside the book
        ({"tool": "record_payment", "args": {"invoice_number": "INV-2001", "amount": "-5"}}, 422),
        ({"tool": "send_email", "args": {}}, 422),  # only records through this route
    ],
)
def test_http_record_errors_are_clear(client: TestClient, body: dict[str, Any], status: int) -> None:
    response = client.post("/v1/record", json=body)
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text


class _ToolsSeen:
    """A model that answers in words and remembers which tools each call offered."""

    name = "seen"

    def __init__(self) -> None:
        self.offered: list[set[str]] = []

    async def complete(self, messages: list[dict[str, Any]], tools: Any = None, tool_choice: Any = None) -> Any:
        from lumo.llm.client import ModelReply, Usage

        self.offered.append({t["function"]["name"] for t in tools or []})
        return ModelReply("Here is your day.", [], Usage(), "seen", 1, "stop")


async def test_every_tool_is_offered_except_on_a_prepared_priorities_turn(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    model = _ToolsSeen()
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, model) as lumo:
        await ask(lumo, scope, "What should I do today?")
        await ask(lumo, scope, "Gavin told me he would settle INV-2001 next week")
    today, other = model.offered
    assert today == DAY_PLAN_TOOLS  # the daily question's prompt budget: the tools that act on its items
    assert other == set(REGISTRY)
    assert {"record_promise", "record_payment", "open_dispute", "resolve_dispute", "log_call"} <= other
