from __future__ import annotations

import datetime as dt
from decimal import Decimal  # noqa: F401
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from lumo.crm.drafts import draft_for_invoice
from lumo.crm.errors import NotFound
from lumo.crm.grounding import check_grounding
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import scope_for_email
from tests import factories as f

AS_OF = AsOf(f.TODAY, ZoneInfo("UTC"))


def draft(session: Session, number: str, who: str = "u1@acme.test"):  # type: ignore[no-untyped-def]
    return draft_for_invoice(session, scope_for_email(session, who), number, AS_OF)


@pytest.mark.parametrize(
    ("days", "tone"), [(0, "courtesy"), (1, "gentle"), (8, "firm"), (31, "escalation"), (61, "final_notice")]
)
def test_draft_takes_the_tone_of_the_ladder_and_passes_the_guard(session: Session, days: int, tone: str) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=days, payment_url="https://pay.example/x")
    d = draft(session, inv.number)
    assert d.skipped_reason is None and d.tone == tone
    assert d.to == ["c1@acme.test".replace("acme", "customer")]
    assert check_grounding(d.subject + "\n" + d.body, d.facts) == []
    assert "https://pay.example/x" in d.body
    assert ("disregard" in d.body) == (tone != "courtesy")


def test_escalation_copies_the_owners_manager(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=40)
    assert draft(session, inv.number).cc == ["m1@acme.test"]
    firm = f.invoice(session, "a2", contacts=("c2",), days_overdue=10)
    assert draft(session, firm.number, "u2@acme.test").cc == []


@pytest.mark.parametrize("status", ["paid", "void", "written_off"])
def test_no_collection_email_for_closed_invoices(session: Session, status: str) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=20, status=status)
    d = draft(session, inv.number)
    assert d.skipped_reason == status and d.body == "" and d.to == []


def test_no_collection_email_for_zero_balance(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=20)
    f.pay(session, inv, "1000.00")
    assert draft(session, inv.number).skipped_reason == "zero_balance"


def test_disputed_invoice_gets_dispute_resolution_not_a_demand(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=45, status="disputed", dispute_reason="wrong seat count")
    d = draft(session, inv.number)
    assert d.tone == "dispute_resolution" and d.cc == []
    assert "wrong seat count" in d.body
    assert "overdue" not in d.body.lower() and "pay" not in d.subject.lower()


def test_do_not_contact_contact_is_skipped(session: Session) -> None:
    f.basic_book(session)
    f.contact(session, "c9", "a1", do_not_contact=True)
    inv = f.invoice(session, "a1", contacts=("c9",), days_overdue=10)
    assert draft(session, inv.number).skipped_reason == "do_not_contact"
    both = f.invoice(session, "a1", contacts=("c9", "c1"), days_overdue=10)
    assert draft(session, both.number).to == ["c1@customer.test"]


def test_cooldown_skips_an_invoice_contacted_within_3_days(session: Session) -> None:
    f.basic_book(session)
    recent = f.invoice(session, "a1", contacts=("c1",), days_overdue=10)
    f.email_sent(session, recent, days_ago=2)
    assert draft(session, recent.number).skipped_reason == "cooldown"
    older = f.invoice(session, "a2", contacts=("c2",), days_overdue=10)
    f.email_sent(session, older, days_ago=3)
    assert draft(session, older.number, "u2@acme.test").skipped_reason is None


def test_pending_promise_skips_and_broken_promise_resumes(session: Session) -> None:
    f.basic_book(session)
    pending = f.invoice(session, "a1", contacts=("c1",), days_overdue=10, promise_to_pay_date=f.TODAY + dt.timedelta(days=2))
    assert draft(session, pending.number).skipped_reason == "promise_pending"
    broken = f.invoice(session, "a2", contacts=("c2",), days_overdue=10, promise_to_pay_date=f.TODAY - dt.timedelta(days=1))
    assert draft(session, broken.number, "u2@acme.test").skipped_reason is None


def test_one_email_covers_a_contacts_overdue_invoices_with_totals_per_currency(session: Session) -> None:
    f.basic_book(session)
    a = f.invoice(session, "a1", contacts=("c1",), days_overdue=5)
    b = f.invoice(session, "a1", contacts=("c1",), days_overdue=35, amount=f.Decimal("500.00"))
    c = f.invoice(session, "a1", contacts=("c1",), days_overdue=12, currency="EUR", amount=f.Decimal("200.00"))
    disputed = f.invoice(session, "a1", contacts=("c1",), days_overdue=50, status="disputed")
    d = draft(session, a.number)
    assert d.invoice_numbers == [b.number, c.number, a.number]
    assert disputed.number not in d.invoice_numbers
    assert d.tone == "escalation"  # the most overdue one's
    assert d.facts["totals"] == [{"currency": "EUR", "amount": "200.00"}, {"currency": "USD", "amount": "1500.00"}]
    assert "€200.00" in d.body and "$1,500.00" in d.body
    assert check_grounding(d.body, d.facts) == []


def test_too_early_is_not_due(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=-10)
    assert draft(session, inv.number).skipped_reason == "not_due"


def test_another_reps_invoice_is_not_found(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a2", contacts=("c2",), days_overdue=10)
    with pytest.raises(NotFound):
        draft(session, inv.number, "u1@acme.test")
    with pytest.raises(NotFound):
        draft(session, "INV-NOPE")


def test_an_email_covering_an_invoice_due_today_is_not_titled_overdue(session: Session) -> None:
    f.basic_book(session)
    late = f.invoice(session, "a1", contacts=("c1",), days_overdue=10)
    due_today = f.invoice(session, "a1", contacts=("c1",), days_overdue=0)
    d = draft(session, late.number)
    assert d.tone == "firm" and d.invoice_numbers == [late.number, due_today.number]
    assert not d.subject.startswith("Overdue") and "past the due date" not in d.body
    alone = f.invoice(session, "a2", contacts=("c2",), days_overdue=10)
    assert draft(session, alone.number, "u2@acme.test").subject.startswith("Overdue:")


def test_one_day_overdue_is_singular(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=1)
    d = draft(session, inv.number)
    assert "(1 day overdue)" in d.body and "1 days" not in d.body
    assert check_grounding(d.subject + "\n" + d.body, d.facts) == []
