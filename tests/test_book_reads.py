"""The reads behind the new questions: a team's books per rep, open tasks, what changed, contacts, names."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from lumo.crm import ledger
from lumo.crm.book import book_names
from lumo.crm.changes import changes_since
from lumo.crm.contacts import account_contacts
from lumo.crm.errors import NotFound
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import scope_for_email
from lumo.crm.tasks import open_tasks
from lumo.crm.team import rep_books
from tests import factories as f

AS_OF = AsOf(f.TODAY, ZoneInfo("UTC"))


def test_the_team_breakdown_puts_the_rep_with_most_overdue_in_base_currency_first(session: Session) -> None:
    f.basic_book(session)
    f.invoice(session, "a1", days_overdue=10, amount=Decimal("1000.00"), currency="USD")
    f.invoice(session, "a2", days_overdue=40, amount=Decimal("1000.00"), currency="GBP")  # USD 1,270.00
    manager = scope_for_email(session, "m1@acme.test")
    books, base = rep_books(session, manager, AS_OF)
    assert base == "USD" and [(b.rep_id, b.overdue_base, b.most_days_overdue) for b in books] == [
        ("u2", Decimal("1270.00"), 40),
        ("u1", Decimal("1000.00"), 10),
    ]


def test_one_reps_book_outside_the_team_is_not_found(session: Session) -> None:
    f.basic_book(session)
    f.user(session, "u9")
    rep = scope_for_email(session, "u1@acme.test")
    with pytest.raises(NotFound, match="rep User U2 not found"):
        rep_books(session, rep, AS_OF, rep="User U2")
    manager = scope_for_email(session, "m1@acme.test")
    with pytest.raises(NotFound):
        rep_books(session, manager, AS_OF, rep="User U9")
    [one], _ = rep_books(session, manager, AS_OF, rep="user u2")
    assert one.rep_id == "u2"


def test_open_tasks_are_the_scopes_own_and_due_by_the_day_asked(session: Session) -> None:
    f.basic_book(session)
    f.task(session, "t1", "u1", f.TODAY - dt.timedelta(days=3))
    f.task(session, "t2", "u1", f.TODAY + dt.timedelta(days=5))
    f.task(session, "t3", "u1", f.TODAY, done=True)
    f.task(session, "t4", "u2", f.TODAY)
    rep = scope_for_email(session, "u1@acme.test")
    assert [(t["task_id"], t["days_late"]) for t in open_tasks(session, rep, f.TODAY, f.TODAY)] == [("t1", 3)]
    assert [t["task_id"] for t in open_tasks(session, rep, f.TODAY)] == ["t1", "t2"]


def test_changes_since_a_day_hold_its_events_and_payments_but_nothing_before_or_out_of_scope(session: Session) -> None:
    f.basic_book(session)
    mine = f.invoice(session, "a1", days_overdue=5, number="INV-1")
    theirs = f.invoice(session, "a2", days_overdue=5, number="INV-2")
    yesterday = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
    ledger.record_activity(session, mine, kind="note", at=yesterday - dt.timedelta(days=2), by_id="u1", text="old")
    ledger.record_activity(session, mine, kind="call", at=yesterday, by_id="u1", text="left a message")
    ledger.record_activity(session, theirs, kind="call", at=yesterday, by_id="u2", text="not yours")
    f.pay(session, mine, "250.00", at=f.NOON)
    rep = scope_for_email(session, "u1@acme.test")
    changes = changes_since(session, rep, f.TODAY - dt.timedelta(days=1), AS_OF)
    assert [(c["date"], c["kind"], c["invoice_number"]) for c in changes if c["kind"] != "status_change"] == [
        ("2026-11-25", "payment", "INV-1"),
        ("2026-11-24", "call", "INV-1"),
    ]
    assert {"amount": "250.00", "currency": "USD"}.items() <= changes[0].items()


def test_contacts_of_another_reps_account_are_not_found(session: Session) -> None:
    f.basic_book(session)
    rep = scope_for_email(session, "u1@acme.test")
    assert account_contacts(session, rep, "glob")[1][0]["name"] == "Hank Scorpio"
    with pytest.raises(NotFound):
        account_contacts(session, rep, "Initech")


def test_book_names_hold_only_the_scopes_accounts_and_a_managers_reps(session: Session) -> None:
    f.basic_book(session)
    rep = book_names(session, scope_for_email(session, "u1@acme.test"))
    assert rep.accounts == ("Globex",) and rep.contacts == (("Hank Scorpio", "Globex"),) and rep.reps == ()
    manager = book_names(session, scope_for_email(session, "m1@acme.test"))
    assert manager.accounts == ("Globex", "Initech") and [n for _, n in manager.reps] == ["User U1", "User U2"]
