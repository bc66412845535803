"""Small builders of CRM data for tests: pure rows for the rules, ORM rows for the database."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm import ledger, outbox
from lumo.crm.lifecycle import InvoiceRow
from lumo.db.models import Account, Contact, FxRate, Invoice, InvoiceContact, Task, User, Workspace

TODAY = dt.date(2026, 11, 25)
NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
_ids = itertools.count(1)


def row(**overrides: Any) -> InvoiceRow:
    """An open 'sent' invoice of USD 1000.00 due today, touched today; override any field."""
    fields: dict[str, Any] = dict(
        id="i1",
        number="INV-1001",
        account_id="a1",
        account_name="Globex",
        account_tier="standard",
        renewal_date=None,
        owner_id="u1",
        issue_date=TODAY - dt.timedelta(days=30),
        due_date=TODAY,
        amount=Decimal("1000.00"),
        currency="USD",
        amount_paid=Decimal("0.00"),
        status="sent",
        status_updated_at=NOON,
        promise_to_pay_date=None,
        dispute_reason=None,
        payment_url=None,
        last_activity_at=None,
        last_contacted_at=None,
    )
    fields.update(overrides)
    return InvoiceRow(**fields)


def workspace(session: Session, base: str = "USD", rates: dict[str, str] | None = None) -> None:
    session.add(Workspace(id=1, name="Acme Corp", base_currency=base))
    for currency, rate in (rates or {"EUR": "1.08", "GBP": "1.27"}).items():
        session.add(FxRate(currency=currency, rate=Decimal(rate)))
    session.flush()


def user(session: Session, uid: str, role: str = "rep", manager_id: str | None = None, tz: str = "UTC") -> User:
    u = User(id=uid, email=f"{uid}@acme.test", name=f"User {uid.upper()}", role=role, manager_id=manager_id, timezone=tz)
    session.add(u)
    session.flush()
    return u


def account(
    session: Session,
    aid: str,
    owner_id: str,
    name: str | None = None,
    tier: str = "standard",
    renewal_date: dt.date | None = None,
) -> Account:
    a = Account(id=aid, name=name or f"Account {aid}", owner_id=owner_id, tier=tier, renewal_date=renewal_date)
    session.add(a)
    session.flush()
    return a


def contact(session: Session, cid: str, account_id: str, do_not_contact: bool = False, name: str | None = None) -> Contact:
    c = Contact(
        id=cid,
        account_id=account_id,
        name=name or f"Pat {cid.upper()}",
        email=f"{cid}@customer.test",
        role="billing",
        do_not_contact=do_not_contact,
    )
    session.add(c)
    session.flush()
    return c


def invoice(
    session: Session,
    account_id: str,
    *,
    contacts: tuple[str, ...] = (),
    days_overdue: int = 0,
    today: dt.date = TODAY,
    **overrides: Any,
) -> Invoice:
    """An invoice due `days_overdue` days before `today` (negative: in the future)."""
    n = next(_ids)
    due = today - dt.timedelta(days=days_overdue)
    fields: dict[str, Any] = dict(
        id=f"inv{n}",
        number=f"INV-{1000 + n}",
        account_id=account_id,
        issue_date=due - dt.timedelta(days=30),
        due_date=due,
        amount=Decimal("1000.00"),
        currency="USD",
        amount_paid=Decimal("0"),
        status="sent",
        status_updated_at=dt.datetime.combine(today, dt.time(9), dt.UTC) - dt.timedelta(days=1),
    )
    fields.update(overrides)
    inv = Invoice(**fields)
    session.add(inv)
    session.flush()
    for position, cid in enumerate(contacts):
        session.add(InvoiceContact(invoice_id=inv.id, contact_id=cid, position=position))
    session.flush()
    return inv


def by_number(factory: sessionmaker[Session], number: str) -> Invoice:
    """The invoice as the database holds it now (a session of its own: what another request committed)."""
    with factory() as s:
        inv = s.scalar(select(Invoice).where(Invoice.number == number))
        assert inv is not None, number
        return inv


def pay(session: Session, inv: Invoice, amount: str, at: dt.datetime = NOON) -> None:
    ledger.add_payment(session, inv, amount=Decimal(amount), paid_at=at)
    session.flush()


def email_sent(session: Session, inv: Invoice, days_ago: int, today: dt.date = TODAY) -> None:
    at = dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(10), dt.UTC)
    ledger.record_activity(session, inv, kind="email", at=at, by_id=None, text="reminder sent")
    session.flush()


def task(session: Session, tid: str, owner_id: str, due: dt.date, **overrides: Any) -> Task:
    t = Task(id=tid, owner_id=owner_id, title=overrides.pop("title", f"Task {tid}"), due_date=due, **overrides)
    session.add(t)
    session.flush()
    return t


def outbox_email(
    session: Session,
    numbers: Sequence[str],
    *,
    subject: str | None = None,
    to: str = "c1@customer.test",
    cc: str = "",
    body: str = "Hi Pat,\nplease pay.",
    action_id: str | None = None,
    user_id: str = "u1",
    at: dt.datetime = NOON,
) -> int:
    """An approved email about `numbers` queued in the outbox, as the send_email tool queues one; its outbox id."""
    return outbox.queue_email(
        session,
        action_id=action_id or f"act-{next(_ids)}",
        user_id=user_id,
        to=[to],
        cc=[cc] if cc else [],
        subject=subject or (f"Reminder: {numbers[0]}" if numbers else "Reminder"),
        body=body,
        invoice_numbers=numbers,
        now=at,
    )


def basic_book(session: Session) -> dict[str, Any]:
    """Workspace with a manager m1 over reps u1 and u2, one account and contact each."""
    workspace(session)
    m1 = user(session, "m1", role="manager")
    u1 = user(session, "u1", manager_id="m1")
    u2 = user(session, "u2", manager_id="m1")
    user(session, "admin", role="admin")
    a1 = account(session, "a1", "u1", name="Globex")
    a2 = account(session, "a2", "u2", name="Initech")
    contact(session, "c1", "a1", name="Hank Scorpio")
    contact(session, "c2", "a2", name="Bill Lumbergh")
    return {"m1": m1, "u1": u1, "u2": u2, "a1": a1, "a2": a2}
