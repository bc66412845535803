"""The one writer of an invoice's history and of the columns derived from it.

`amount_paid`, `last_activity_at` and `last_contacted_at` on invoices mirror the payments and
activities tables so that reads need no aggregates; only this module sets them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lumo.db.models import Activity, Invoice, Payment

CONTACT_KINDS = ("email", "call")


def recompute_derived(session: Session, invoice_ids: Iterable[str]) -> None:
    """Set the mirrored columns of these invoices from their payments and activities."""
    ids = list(invoice_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        paid = dict(
            session.execute(
                select(Payment.invoice_id, func.coalesce(func.sum(Payment.amount), 0))
                .where(Payment.invoice_id.in_(chunk))
                .group_by(Payment.invoice_id)
            ).all()
        )
        last_any = dict(
            session.execute(
                select(Activity.invoice_id, func.max(Activity.at))
                .where(Activity.invoice_id.in_(chunk))
                .group_by(Activity.invoice_id)
            ).all()
        )
        last_contact = dict(
            session.execute(
                select(Activity.invoice_id, func.max(Activity.at))
                .where(Activity.invoice_id.in_(chunk), Activity.kind.in_(CONTACT_KINDS))
                .group_by(Activity.invoice_id)
            ).all()
        )
        # One executemany of UPDATE ... WHERE id = ? for the chunk (ORM bulk update by primary key).
        session.execute(
            update(Invoice),
            [
                {
                    "id": invoice_id,
                    # SQLite sums money as floats: round back to cents.
                    "amount_paid": Decimal(str(paid.get(invoice_id, 0))).quantize(Decimal("0.01")),
                    "last_activity_at": _aware(last_any.get(invoice_id)),
                    "last_contacted_at": _aware(last_contact.get(invoice_id)),
                }
                for invoice_id in chunk
            ],
        )


def _aware(value: dt.datetime | str | None) -> dt.datetime | None:
    # Aggregates bypass the column type, so SQLite hands back naive datetimes or strings.
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def record_activity(
    session: Session,
    invoice: Invoice,
    *,
    kind: str,
    at: dt.datetime,
    by_id: str | None,
    text: str = "",
    from_status: str | None = None,
    to_status: str | None = None,
    source: str | None = None,
) -> Activity:
    activity = Activity(
        invoice_id=invoice.id,
        kind=kind,
        at=at,
        by_id=by_id,
        text=text,
        from_status=from_status,
        to_status=to_status,
        source=source,
    )
    session.add(activity)
    if invoice.last_activity_at is None or at > invoice.last_activity_at:
        invoice.last_activity_at = at
    if kind in CONTACT_KINDS and (invoice.last_contacted_at is None or at > invoice.last_contacted_at):
        invoice.last_contacted_at = at
    if by_id is not None and invoice.customer_replied_at is not None and at >= invoice.customer_replied_at:
        invoice.customer_replied_at = None  # the rep acted on the customer's reply: chasing may resume
    return activity


def change_status(
    session: Session,
    invoice: Invoice,
    *,
    to_status: str,
    at: dt.datetime,
    by_id: str | None,
    reason: str,
    source: str | None = None,
) -> Activity:
    """Change an invoice's status, keeping the old one in an event row (who, when, from, to, why)."""
    from_status = invoice.status
    invoice.status = to_status
    invoice.status_updated_at = at
    return record_activity(
        session,
        invoice,
        kind="status_change",
        at=at,
        by_id=by_id,
        text=reason,
        from_status=from_status,
        to_status=to_status,
        source=source,
    )


def add_payment(
    session: Session, invoice: Invoice, *, amount: Decimal, paid_at: dt.datetime, source: str | None = None
) -> Payment:
    """A payment row (negative: a refund), kept in `amount_paid`; `source` when a provider, not a person, said so."""
    payment = Payment(invoice_id=invoice.id, amount=amount, paid_at=paid_at, source=source)
    session.add(payment)
    invoice.amount_paid = (invoice.amount_paid or Decimal("0")) + amount
    return payment
