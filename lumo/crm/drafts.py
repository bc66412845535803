"""Outreach drafts from the tone ladder's templates (ARCHITECTURE.md section 3). A draft is never sent here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from typing_extensions import TypedDict  # pydantic reads TypedDicts from typing_extensions on Python 3.11

from lumo.crm.accounts import resolve_account
from lumo.crm.addresses import address_key, one_line
from lumo.crm.contacts import ContactRow, invoice_contacts
from lumo.crm.errors import NotFound
from lumo.crm.invoices import fetch_rows, get_row, rows_query
from lumo.crm.lifecycle import CHASEABLE_STATUSES, CLOSED_STATUSES, OPEN_STATUSES, AsOf, InvoiceRow, days_overdue, promise_pending
from lumo.crm.money import amount_str, totals_by_currency
from lumo.crm.outbox import queued_invoice_numbers
from lumo.crm.scope import Scope
from lumo.crm.tone import MANAGER_CC_TONES, Tone, tone_for
from lumo.db.models import Invoice, InvoiceContact, User
from lumo.templates import render

COOLDOWN_DAYS = 3


class DraftJson(TypedDict):
    """A draft as `lumo draft --json` prints it and GET /v1/invoices/{number}/draft returns it."""

    to: list[str]
    cc: list[str]
    subject: str
    body: str
    tone: Tone | None
    invoice_numbers: list[str]
    facts: dict[str, Any]
    skipped_reason: str | None  # why no email should go out (None: send it once approved)


@dataclass
class Draft:
    to: list[str]
    cc: list[str]
    subject: str
    body: str
    tone: Tone | None
    invoice_numbers: list[str]
    facts: dict[str, Any]
    skipped_reason: str | None = None
    sender: str = ""

    def as_json(self) -> DraftJson:
        return DraftJson(
            to=self.to,
            cc=self.cc,
            subject=self.subject,
            body=self.body,
            tone=self.tone,
            invoice_numbers=self.invoice_numbers,
            facts=self.facts,
            skipped_reason=self.skipped_reason,
        )


def skip_reason(inv: InvoiceRow, as_of: AsOf, cooldown_days: int = COOLDOWN_DAYS) -> str | None:
    """Why no email should go out about this invoice today, or None."""
    if inv.status in CLOSED_STATUSES:
        return inv.status
    if inv.balance <= 0:
        return "zero_balance"
    if inv.status not in OPEN_STATUSES:
        return "not_sent"
    if inv.customer_replied_at is not None:
        return "customer_replied"  # the customer answered: the rep reads it before anyone chases again
    if inv.status != "disputed":
        if promise_pending(inv, as_of.today):
            return "promise_pending"
        if tone_for(inv.due_date, as_of.today) is None:
            return "not_due"
    if inv.last_contacted_at is not None and as_of.days_since(inv.last_contacted_at) < cooldown_days:
        return "cooldown"
    return None


def _facts(invoices: list[InvoiceRow], contact: ContactRow | None, as_of: AsOf, tone: Tone | None) -> dict[str, Any]:
    return {
        "today": as_of.today.isoformat(),
        "tone": tone,
        "contact": {"name": contact.name, "email": contact.email} if contact else None,
        "invoices": [
            {
                "number": inv.number,
                "account": inv.account_name,
                "status": inv.status,
                "amount": amount_str(inv.balance),
                "original_amount": amount_str(inv.amount),
                "currency": inv.currency,
                "issue_date": inv.issue_date.isoformat(),
                "due_date": inv.due_date.isoformat(),
                "days_overdue": days_overdue(inv, as_of.today),
                "payment_url": inv.payment_url,
                "dispute_reason": inv.dispute_reason,
                "promise_to_pay_date": inv.promise_to_pay_date.isoformat() if inv.promise_to_pay_date else None,
            }
            for inv in invoices
        ],
        "totals": [
            {"currency": c, "amount": amount_str(a)}
            for c, a in totals_by_currency((i.balance, i.currency) for i in invoices).items()
        ],
    }


def _skipped(inv: InvoiceRow, reason: str, as_of: AsOf, contact: ContactRow | None) -> Draft:
    tone = "dispute_resolution" if inv.status == "disputed" else tone_for(inv.due_date, as_of.today)
    return Draft([], [], "", "", tone, [inv.number], _facts([inv], contact, as_of, tone), reason)


def _companions(session: Session, scope: Scope, inv: InvoiceRow, contact: ContactRow, as_of: AsOf) -> list[InvoiceRow]:
    """The contact's other invoices that may be chased today, to cover in the same email."""
    ids = select(InvoiceContact.invoice_id).where(InvoiceContact.contact_id == contact.id)
    query = rows_query(scope).where(Invoice.id.in_(ids), Invoice.id != inv.id, Invoice.status.in_(sorted(CHASEABLE_STATUSES)))
    rows = [r for r in fetch_rows(session, query) if skip_reason(r, as_of) is None]
    queued = queued_invoice_numbers(session, [r.number for r in rows])
    return [r for r in rows if r.number not in queued]


def _manager_email(session: Session, owner_id: str) -> str | None:
    return session.scalar(
        select(User.email).where(User.id == select(User.manager_id).where(User.id == owner_id).scalar_subquery())
    )


def draft_for_invoice(session: Session, scope: Scope, number: str, as_of: AsOf) -> Draft:
    """The email a rep should send about this invoice today, or a draft that says why none."""
    inv = get_row(session, scope, number)
    contacts = invoice_contacts(session, [inv.id]).get(inv.id, [])
    # A contact whose address is not one addr-spec (imported before addresses were parsed) is never written to.
    valid = [c for c in contacts if address_key(c.email) is not None]
    reachable = [c for c in valid if not c.do_not_contact]
    primary = reachable[0] if reachable else (contacts[0] if contacts else None)
    reason = skip_reason(inv, as_of)
    if reason is None and queued_invoice_numbers(session, [inv.number]):
        reason = "cooldown"  # an approved email about it is waiting in the outbox
    if reason is None and not contacts:
        reason = "no_contact"
    elif reason is None and not valid:
        reason = "invalid_address"
    elif reason is None and not reachable:
        reason = "do_not_contact"
    if reason is not None:
        return _skipped(inv, reason, as_of, primary)
    assert primary is not None
    tone: Tone | None
    if inv.status == "disputed":
        group, tone = [inv], "dispute_resolution"
    else:
        group = sorted([inv, *_companions(session, scope, inv, primary, as_of)], key=lambda r: (r.due_date, r.number))
        tone = tone_for(group[0].due_date, as_of.today)
        assert tone is not None
    cc = []
    manager = _manager_email(session, inv.owner_id) if tone in MANAGER_CC_TONES else None
    if manager and address_key(manager) is not None:
        cc.append(manager)
    facts = _facts(group, primary, as_of, tone)
    sender = session.scalar(select(User.name).where(User.id == inv.owner_id)) or scope.name
    subject, body = render_email(tone, facts, sender)
    return Draft(
        to=[c.email for c in reachable],
        cc=cc,
        subject=subject,
        body=body,
        tone=tone,
        invoice_numbers=[r.number for r in group],
        facts=facts,
        sender=sender,
    )


def render_email(tone: Tone, facts: dict[str, Any], sender: str) -> tuple[str, str]:
    """Subject and body of the template email for a tone, from a draft's facts."""
    contact = dict(facts["contact"])
    contact["first_name"] = contact["name"].split()[0] if contact["name"] else "there"
    numbers = ", ".join(i["number"] for i in facts["invoices"])
    text = render(
        f"emails/{tone}.txt.j2",
        contact=contact,
        invoices=facts["invoices"],
        totals=facts["totals"],
        numbers=numbers,
        sender=sender,
    )
    first, _, rest = text.partition("\n")
    # The subject is a header: data in it (an account name with a line break) must not break it.
    return one_line(first.removeprefix("Subject:")), rest.strip()


def draft_for_account(session: Session, scope: Scope, account: str, as_of: AsOf) -> Draft:
    """The reminder for an account's most overdue invoice that may be chased today (covering its contact's others)."""
    account_id, name = resolve_account(session, scope, account)
    query = rows_query(scope).where(Invoice.account_id == account_id, Invoice.status.in_(sorted(OPEN_STATUSES)))
    rows = sorted(fetch_rows(session, query), key=lambda r: (r.due_date, r.number))
    if not rows:
        raise NotFound(f"no open invoices for account {name}")
    chaseable = [r for r in rows if skip_reason(r, as_of) is None and r.status != "disputed"]
    return draft_for_invoice(session, scope, (chaseable or rows)[0].number, as_of)


def facts_for_invoices(session: Session, scope: Scope, numbers: list[str], as_of: AsOf) -> dict[str, Any]:
    """The facts an email about these invoices may state (for the grounding guard)."""
    rows = [get_row(session, scope, n) for n in numbers]
    return _facts(rows, None, as_of, None)
