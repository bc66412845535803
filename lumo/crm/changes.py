"""What happened in a book since a day: status changes, emails, calls, notes and payments, newest first."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm.lifecycle import AsOf
from lumo.crm.money import amount_str
from lumo.crm.scope import Scope
from lumo.db.models import Account, Activity, Invoice, Payment


def _start(since: dt.date, as_of: AsOf) -> dt.datetime:
    """The first moment of `since` in the person's time zone."""
    return dt.datetime.combine(since, dt.time(), tzinfo=as_of.tz)


def changes_since(session: Session, scope: Scope, since: dt.date, as_of: AsOf) -> list[dict[str, Any]]:
    start = _start(since, as_of)
    end = _start(as_of.today + dt.timedelta(days=1), as_of)
    activities = session.execute(
        select(Activity.at, Activity.kind, Activity.text, Activity.from_status, Activity.to_status, Invoice.number, Account.name)
        .join(Invoice, Invoice.id == Activity.invoice_id)
        .join(Account, Account.id == Invoice.account_id)
        .where(scope.account_filter(), Activity.at >= start, Activity.at < end)
    ).all()
    payments = session.execute(
        select(Payment.paid_at, Payment.amount, Invoice.currency, Invoice.number, Account.name)
        .join(Invoice, Invoice.id == Payment.invoice_id)
        .join(Account, Account.id == Invoice.account_id)
        .where(scope.account_filter(), Payment.paid_at >= start, Payment.paid_at < end)
    ).all()
    changes: list[dict[str, Any]] = [
        {
            "date": as_of.local_date(at).isoformat(),
            "kind": kind,
            "invoice_number": number,
            "account": account,
            "text": text or "",
            "from": from_status,
            "to": to_status,
        }
        for at, kind, text, from_status, to_status, number, account in activities
    ]
    changes += [
        {
            "date": as_of.local_date(at).isoformat(),
            "kind": "payment",
            "invoice_number": number,
            "account": account,
            "amount": amount_str(amount),
            "currency": currency,
        }
        for at, amount, currency, number, account in payments
    ]
    changes.sort(key=lambda c: (c["date"], c["invoice_number"], c["kind"]), reverse=True)
    return changes
