"""Invoice numbers are found in any letter case, and stored as the CRM spells them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm.errors import NotFound
from lumo.crm.invoices import get_row
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import scope_for_email
from lumo.db.models import OutboxEmail
from tests import factories as f
from tests.agent_support import NOW, TODAY, build_book, scope_of
from tools.actions import EmailArgs, send_email
from tools.base import ToolContext
from tools.read import InvoiceArgs, get_invoice


def test_any_case_finds_the_invoice_and_out_of_scope_stays_not_found(session: Session) -> None:
    f.basic_book(session)
    mixed = f.invoice(session, "a1", number="Inv-77a")
    f.invoice(session, "a2", number="INV-88")
    scope = scope_for_email(session, "u1@acme.test")
    for typed in ("Inv-77a", "INV-77A", "inv-77a", " iNv-77A "):
        assert get_row(session, scope, typed).number == mixed.number
    with pytest.raises(NotFound, match="invoice inv-88 not found"):
        get_row(session, scope, "inv-88")


def test_tools_read_and_email_with_a_lowercase_number(session: Session, session_factory: sessionmaker[Session]) -> None:
    build_book(session)
    scope = scope_of(session_factory, "u1@acme.test")
    ctx = ToolContext(session_factory, scope, AsOf(TODAY, scope.tz), NOW, thread_id="t", action_id="a1")
    assert get_invoice(ctx, InvoiceArgs(invoice_number="inv-1042"), session)["invoice_number"] == "INV-1042"
    args = EmailArgs(to=["c1@customer.test"], subject="Reminder", body="A friendly reminder.", invoice_numbers=["inv-1042"])
    assert send_email(ctx, args, session)["invoice_numbers"] == ["INV-1042"]
    assert session.scalars(select(OutboxEmail.invoice_numbers)).all() == ["INV-1042"]  # what the cooldown reads
