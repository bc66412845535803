"""Rules every outgoing email meets, whoever wrote it: recipients, no-chase rules, disputes, the outbox."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from lumo.crm.accounts import resolve_account
from lumo.crm.drafts import draft_for_invoice
from lumo.crm.errors import InvalidInput, NotFound
from lumo.crm.lifecycle import AsOf
from lumo.crm.outreach import check_email
from lumo.crm.scope import scope_for_email
from tests import factories as f

AS_OF = AsOf(f.TODAY, ZoneInfo("UTC"))


def check(session: Session, numbers: list[str], to: list[str], cc: list[str] = (), text: str = "Hello") -> None:  # type: ignore[assignment]
    check_email(session, scope_for_email(session, "u1@acme.test"), numbers=numbers, to=to, cc=list(cc), text=text, as_of=AS_OF)


def test_an_email_to_the_invoice_contact_passes(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=10)
    check(session, [inv.number], ["c1@customer.test"], ["m1@acme.test"])


def test_strangers_in_cc_are_refused(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=10)
    with pytest.raises(InvalidInput, match="may not be copied"):
        check(session, [inv.number], ["c1@customer.test"], ["collections@agency.test"])


def test_paid_invoices_are_not_chased_even_when_approved_late(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=10, status="paid")
    with pytest.raises(InvalidInput, match="paid"):
        check(session, [inv.number], ["c1@customer.test"])


def test_a_demand_for_a_disputed_invoice_is_refused_but_a_follow_up_passes(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=20, status="disputed", dispute_reason="seats")
    with pytest.raises(InvalidInput, match="disputed"):
        check(session, [inv.number], ["c1@customer.test"], text="This invoice is overdue, pay now")
    check(session, [inv.number], ["c1@customer.test"], text="Following up on your question about the seats")


def test_one_email_covers_one_account(session: Session) -> None:
    f.basic_book(session)
    f.account(session, "a9", "u1", name="Other")
    f.contact(session, "c9", "a9")
    a = f.invoice(session, "a1", contacts=("c1",), days_overdue=10)
    b = f.invoice(session, "a9", contacts=("c9",), days_overdue=10)
    with pytest.raises(InvalidInput, match="one account"):
        check(session, [a.number, b.number], ["c1@customer.test"])


def test_a_queued_email_starts_the_cooldown(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(session, "a1", contacts=("c1",), days_overdue=10)
    f.outbox_email(session, ["INV-0", inv.number], at=dt.datetime(2026, 11, 25, 9, tzinfo=dt.UTC))
    scope = scope_for_email(session, "u1@acme.test")
    assert draft_for_invoice(session, scope, inv.number, AS_OF).skipped_reason == "cooldown"
    with pytest.raises(InvalidInput, match="cooldown"):
        check(session, [inv.number], ["c1@customer.test"])


def test_an_ambiguous_account_name_asks_which(session: Session) -> None:
    f.basic_book(session)
    f.account(session, "a8", "u1", name="Acme Labs")
    f.account(session, "a9", "u1", name="Acme Foods")
    scope = scope_for_email(session, "u1@acme.test")
    with pytest.raises(InvalidInput, match="which one"):
        resolve_account(session, scope, "Acme")
    assert resolve_account(session, scope, "acme labs") == ("a8", "Acme Labs")
    with pytest.raises(NotFound):
        resolve_account(session, scope, "Initech")  # another rep's
