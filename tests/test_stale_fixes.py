"""Stale findings carry their fix as an action; "fix all my stale statuses" proposes them for one approval; the
holes in detection (paid with a balance, partial payment still sent, sent never viewed, an open dispute)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.config import Settings
from lumo.crm.invoices import actionable_rows
from lumo.crm.priorities import compute_priorities
from lumo.crm.scope import scope_for_email
from lumo.crm.stale import StaleThresholds, findings_for, fix_calls, stale_findings
from lumo.db.models import Invoice, Task
from tests import factories as f
from tests.agent_support import AS_OF, NOW, approve, ask, build_book, open_lumo, scope_of

PAST = f.NOON - dt.timedelta(days=30)


def kinds(**overrides: Any) -> list[str]:
    return [x.kind for x in findings_for(f.row(**overrides), AS_OF)]


@pytest.mark.parametrize(
    ("overrides", "kind", "tool", "args"),
    [
        ({"due_date": f.TODAY - dt.timedelta(days=9)}, "overdue_not_marked", "update_invoice_status", {"status": "overdue"}),
        ({"amount_paid": Decimal("1000.00"), "status": "viewed"}, "paid_not_marked", "update_invoice_status", {"status": "paid"}),
        ({"status_updated_at": PAST}, "no_recent_activity", "create_follow_up_task", {"due_date": "2026-11-25"}),
        ({"status": "draft", "issue_date": f.TODAY - dt.timedelta(days=9)}, "draft_not_sent", "create_follow_up_task", {}),
        (
            {"promise_to_pay_date": f.TODAY - dt.timedelta(days=1), "status": "overdue"},
            "promise_broken",
            "create_follow_up_task",
            {},
        ),
        ({"status": "disputed", "status_updated_at": PAST}, "dispute_stalled", "create_follow_up_task", {}),
        ({"status": "paid", "amount_paid": Decimal("600.00")}, "paid_with_balance", "update_invoice_status", {}),
        ({"amount_paid": Decimal("300.00")}, "partial_not_marked", "update_invoice_status", {"status": "partially_paid"}),
    ],
)
def test_every_stale_finding_carries_its_fix_as_an_action(
    overrides: dict[str, Any], kind: str, tool: str, args: dict[str, Any]
) -> None:
    [finding] = [x for x in findings_for(f.row(**overrides), AS_OF) if x.kind == kind]
    assert finding.action["tool"] == tool
    assert finding.action["args"]["invoice_number"] == "INV-1001"
    assert args.items() <= finding.action["args"].items()
    assert finding.as_json()["action"] == finding.action


def test_paid_with_an_open_balance_is_flagged_and_fixed_to_the_truth() -> None:
    [finding] = findings_for(f.row(status="paid", amount_paid=Decimal("600.00"), due_date=f.TODAY - dt.timedelta(days=3)), AS_OF)
    assert finding.kind == "paid_with_balance"
    assert "USD 400.00 open" in finding.evidence
    assert finding.action["args"]["status"] == "overdue"


def test_a_partial_payment_still_sent_is_flagged_until_it_is_past_due() -> None:
    assert "partial_not_marked" in kinds(amount_paid=Decimal("300.00"), due_date=f.TODAY + dt.timedelta(days=5))
    late = kinds(amount_paid=Decimal("300.00"), due_date=f.TODAY - dt.timedelta(days=5))
    assert "partial_not_marked" not in late and "overdue_not_marked" in late


def test_sent_and_never_viewed_after_n_days() -> None:
    rules = StaleThresholds()
    due = f.TODAY + dt.timedelta(days=20)
    sent = f.NOON - dt.timedelta(days=rules.not_viewed_days)
    assert "sent_not_viewed" not in kinds(due_date=due, status_updated_at=sent)
    assert "sent_not_viewed" in kinds(due_date=due, status_updated_at=sent - dt.timedelta(days=1))
    assert "sent_not_viewed" not in kinds(due_date=due, status="viewed", status_updated_at=sent - dt.timedelta(days=1))


def test_one_day_is_said_in_the_singular() -> None:
    [finding] = findings_for(f.row(due_date=f.TODAY - dt.timedelta(days=1)), AS_OF)
    assert "1 day ago" in finding.evidence


def test_fix_calls_take_one_action_of_a_kind_per_invoice_the_most_specific_first() -> None:
    row = f.row(
        promise_to_pay_date=f.TODAY - dt.timedelta(days=2), status_updated_at=PAST, due_date=f.TODAY - dt.timedelta(days=9)
    )
    found = [x.as_json() for x in findings_for(row, AS_OF)]
    assert [x["kind"] for x in found] == ["overdue_not_marked", "no_recent_activity", "promise_broken"]
    calls = fix_calls(found)
    assert [name for name, _ in calls] == ["update_invoice_status", "create_follow_up_task"]
    assert "broken promise" in calls[1][1]["title"]
    assert len(fix_calls(found * 3, limit=1)) == 1


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    out = build_book(session)
    f.invoice(session, "a1", contacts=("c1",), days_overdue=5, number="INV-1050", status="paid", amount_paid=Decimal("250.00"))
    session.commit()
    return out


def test_a_paid_invoice_with_a_balance_is_read_by_the_stale_rules(session: Session, book: dict[str, Any]) -> None:
    rows = actionable_rows(session, scope_for_email(session, "u1@acme.test"))
    assert [x.kind for x in stale_findings(rows, AS_OF) if x.invoice_number == "INV-1050"] == ["paid_with_balance"]


def test_an_open_dispute_not_yet_stalled_is_on_the_list(session: Session, book: dict[str, Any]) -> None:
    inv = session.scalar(select(Invoice).where(Invoice.number == "INV-2002"))
    assert inv is not None
    inv.status_updated_at = NOW - dt.timedelta(days=2)  # disputed two days ago: not stalled
    session.commit()
    items = compute_priorities(session, scope_for_email(session, "u1@acme.test"), AS_OF)
    [item] = [i for i in items if i.invoice and i.invoice.number == "INV-2002"]
    assert item.kind == "dispute_open" and "dispute open since 2026-11-23: wrong seat count" in item.reasons
    assert "Follow up on the dispute of INV-2002" in item.action


async def test_fix_all_my_stale_statuses_proposes_every_fix_for_one_approval(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    with session_factory() as s:
        expected = fix_calls([x.as_json() for x in stale_findings(actionable_rows(s, scope), AS_OF)])
    assert len(expected) >= 3
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "fix all my stale statuses")
        assert [(a["tool"], a["args"]) for a in out["pending_actions"]] == [(n, a) for n, a in expected]
        done = await approve(lumo, scope, out["thread_id"])
    assert done["pending_actions"] == [] and "stale status" not in done["reply"]
    assert "Done: INV-1042 changed from 'sent' to 'overdue'" in done["reply"]
    with session_factory() as s:
        left = [x.kind for x in stale_findings(actionable_rows(s, scope), AS_OF)]
        tasks = s.scalars(select(Task.title)).all()
    assert "overdue_not_marked" not in left and "paid_with_balance" not in left
    assert len(tasks) == sum(1 for n, _ in expected if n == "create_follow_up_task")


def test_http_fix_stale_approve_some_and_reject_the_rest(
    db_url: str, session: Session, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    token = create_token(session, "u1@acme.test", NOW, "test")
    stalled = session.scalar(select(Invoice).where(Invoice.number == "INV-2002"))
    assert stalled is not None
    stalled.status_updated_at = NOW - dt.timedelta(days=30)  # a stalled dispute: its fix is a task
    session.commit()
    app = create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        proposed = client.post("/v1/stale/fix", json={"date": "2026-11-25"}).json()
        waiting = proposed["pending_actions"]
        statuses = [a for a in waiting if a["tool"] == "update_invoice_status"]
        assert len(statuses) >= 2 and len(waiting) > len(statuses)
        some = ",".join(a["id"] for a in statuses)
        thread = proposed["thread_id"]
        first = client.post(f"/v1/threads/{thread}/decision", json={"action_id": some, "date": "2026-11-25"}).json()
        assert {a["id"] for a in first["pending_actions"]} == {a["id"] for a in waiting} - {a["id"] for a in statuses}
        last = client.post(f"/v1/threads/{thread}/decision", json={"decision": "reject", "reason": "later", "date": "2026-11-25"})
        assert last.status_code == 200 and last.json()["pending_actions"] == []
    with session_factory() as s:
        assert s.scalar(select(Invoice.status).where(Invoice.number == "INV-1042")) == "overdue"
        assert s.scalars(select(Task)).all() == []
