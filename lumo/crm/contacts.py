"""Who to write to about an invoice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm.accounts import resolve_account
from lumo.crm.scope import Scope
from lumo.db.models import Contact, InvoiceContact


@dataclass(frozen=True)
class ContactRow:
    id: str
    name: str
    email: str
    do_not_contact: bool


def invoice_contacts(session: Session, invoice_ids: Sequence[str]) -> dict[str, list[ContactRow]]:
    """Each invoice's contacts in their listed order."""
    out: dict[str, list[ContactRow]] = {}
    if not invoice_ids:
        return out
    rows = (
        session.connection()
        .execute(
            select(InvoiceContact.invoice_id, Contact.id, Contact.name, Contact.email, Contact.do_not_contact)
            .join(Contact, Contact.id == InvoiceContact.contact_id)
            .where(InvoiceContact.invoice_id.in_(list(invoice_ids)))
            .order_by(InvoiceContact.invoice_id, InvoiceContact.position)
        )
        .all()
    )
    for invoice_id, contact_id, name, email, do_not_contact in rows:
        out.setdefault(invoice_id, []).append(ContactRow(contact_id, name, email, do_not_contact))
    return out


def primary_contacts(session: Session, invoice_ids: Sequence[str]) -> dict[str, ContactRow]:
    """Who to write to about each invoice: its first contact not marked do-not-contact, else its first."""
    return {k: next((c for c in v if not c.do_not_contact), v[0]) for k, v in invoice_contacts(session, invoice_ids).items() if v}


def account_contacts(session: Session, scope: Scope, account: str) -> tuple[str, list[dict[str, Any]]]:
    """The account's name and its contacts (name, email, role, do-not-contact), billing first."""
    account_id, name = resolve_account(session, scope, account)
    rows = session.execute(
        select(Contact.name, Contact.email, Contact.role, Contact.do_not_contact)
        .where(Contact.account_id == account_id)
        .order_by(Contact.role != "billing", Contact.name)
    ).all()
    return name, [{"name": n, "email": e, "role": r, "do_not_contact": d} for n, e, r, d in rows]
