"""Reading invoices under a scope: rows for the rules, and the paged invoice search."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from babel.numbers import is_currency
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from lumo.crm import stale
from lumo.crm.errors import InvalidInput, NotFound
from lumo.crm.lifecycle import (
    ACTIONABLE_STATUSES,
    CHASEABLE_STATUSES,
    STATUSES,
    AsOf,
    InvoiceRow,
    aging_bucket,
    bucket_range,
    days_overdue,
)
from lumo.crm.money import amount_str
from lumo.crm.scope import Scope
from lumo.db.models import Account, Activity, Contact, Invoice, InvoiceContact, Payment

ROW_COLUMNS = (
    Invoice.id,
    Invoice.number,
    Invoice.account_id,
    Account.name,
    Account.tier,
    Account.renewal_date,
    Account.owner_id,
    Invoice.issue_date,
    Invoice.due_date,
    Invoice.amount,
    Invoice.currency,
    Invoice.amount_paid,
    Invoice.status,
    Invoice.status_updated_at,
    Invoice.promise_to_pay_date,
    Invoice.dispute_reason,
    Invoice.payment_url,
    Invoice.last_activity_at,
    Invoice.last_contacted_at,
    Invoice.customer_replied_at,
)
MAX_PAGE_SIZE = 500


def rows_query(scope: Scope) -> Select[*tuple[Any, ...]]:
    return select(*ROW_COLUMNS).join(Account, Account.id == Invoice.account_id).where(scope.account_filter())


def fetch_rows(session: Session, query: Select[*tuple[Any, ...]]) -> list[InvoiceRow]:
    # Core execution: these are plain column rows, so the ORM's loading machinery is pure overhead.
    return [InvoiceRow(*cast(tuple[Any, ...], r)) for r in session.connection().execute(query)]


def actionable_clause() -> Any:
    """Invoices a rule can act on: the actionable statuses, and 'paid' ones with money still open (stale)."""
    return or_(
        Invoice.status.in_(sorted(ACTIONABLE_STATUSES)), and_(Invoice.status == "paid", Invoice.amount > Invoice.amount_paid)
    )


def actionable_rows(session: Session, scope: Scope, account_id: str | None = None) -> list[InvoiceRow]:
    """Every invoice in scope that a rule of staleness, priorities or drafting can act on."""
    query = rows_query(scope).where(actionable_clause())
    if account_id is not None:
        query = query.where(Invoice.account_id == account_id)
    return fetch_rows(session, query)


def get_row(session: Session, scope: Scope, number: str) -> InvoiceRow:
    """One invoice by number, in any letter case; out of scope is reported exactly like missing."""
    wanted = number.strip()
    # The usual spellings first, through the index on number; then any case, over the scope's invoices only.
    spellings = sorted({wanted, wanted.upper(), wanted.lower()})
    rows = fetch_rows(session, rows_query(scope).where(Invoice.number.in_(spellings)))
    if not rows:
        rows = fetch_rows(session, rows_query(scope).where(func.lower(Invoice.number) == wanted.lower()))
    exact = [r for r in rows if r.number == wanted]
    if not rows:
        raise NotFound(f"invoice {number} not found")
    return (exact or sorted(rows, key=lambda r: r.number))[0]


def get_invoice(session: Session, scope: Scope, number: str) -> Invoice:
    """The invoice itself, for a write: found like `get_row`, so out of scope is reported exactly like missing."""
    invoice = session.get(Invoice, get_row(session, scope, number).id)
    if invoice is None:  # deleted between the two reads
        raise NotFound(f"invoice {number} not found")
    return invoice


def overdue_clause(today: dt.date) -> Any:
    return and_(Invoice.status.in_(sorted(CHASEABLE_STATUSES)), Invoice.due_date < today, Invoice.amount > Invoice.amount_paid)


@dataclass(frozen=True)
class InvoiceFilter:
    status: Sequence[str] = ()
    overdue: bool = False
    stale: bool = False
    account: str | None = None
    bucket: str | None = None
    currency: str | None = None
    page: int = 1
    page_size: int = 50

    def validate(self) -> None:
        bad = [s for s in self.status if s not in STATUSES]
        if bad:
            raise InvalidInput(f"unknown status {bad[0]!r}: use one of {', '.join(STATUSES)}")
        if self.bucket is not None:
            bucket_range(self.bucket)
        if self.currency is not None and not is_currency(self.currency.strip().upper()):
            raise InvalidInput(f"unknown currency {self.currency!r}: use an ISO-4217 code such as USD or EUR")
        if self.page < 1 or not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(f"page must be >= 1 and page size between 1 and {MAX_PAGE_SIZE}")


def invoice_filter(
    *,
    status: Sequence[str] | None = None,
    overdue: bool = False,
    stale: bool = False,
    account: str | None = None,
    bucket: str | None = None,
    currency: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> InvoiceFilter:
    """The filter of `lumo invoices` and GET /v1/invoices from their options, validated: the same error everywhere."""
    flt = InvoiceFilter(
        status=tuple(status or ()),
        overdue=overdue,
        stale=stale,
        account=account,
        bucket=bucket,
        currency=currency,
        page=page,
        page_size=page_size,
    )
    flt.validate()
    return flt


@dataclass(frozen=True)
class InvoicePage:
    items: list[InvoiceRow]
    total: int
    page: int
    page_size: int

    def as_json(self, as_of: AsOf) -> dict[str, Any]:
        """The page as `lumo invoices --json` prints it and GET /v1/invoices returns it."""
        return {
            "items": [invoice_json(r, as_of) for r in self.items],
            "total": self.total,
            "page": self.page,
            "page_size": self.page_size,
        }


def filtered_query(scope: Scope, flt: InvoiceFilter, as_of: AsOf) -> Select[*tuple[Any, ...]]:
    """The SQL part of a filter (everything but staleness), ordered by due date then number."""
    flt.validate()
    query = rows_query(scope)
    if flt.status:
        query = query.where(Invoice.status.in_(list(flt.status)))
    if flt.overdue or (flt.bucket and flt.bucket != "current"):
        query = query.where(overdue_clause(as_of.today))
    if flt.bucket:
        low, high = bucket_range(flt.bucket)
        if flt.bucket == "current":
            query = query.where(~overdue_clause(as_of.today))
        else:
            query = query.where(Invoice.due_date <= as_of.today - dt.timedelta(days=low))
            if high is not None:
                query = query.where(Invoice.due_date >= as_of.today - dt.timedelta(days=high))
    if flt.currency:
        query = query.where(Invoice.currency == flt.currency.strip().upper())
    if flt.account:
        needle = flt.account.strip()
        query = query.where(or_(Account.id == needle, func.lower(Account.name).contains(needle.lower())))
    if flt.stale:
        query = query.where(actionable_clause())
    return query.order_by(Invoice.due_date, Invoice.number)


def matching_rows(session: Session, scope: Scope, flt: InvoiceFilter, as_of: AsOf) -> list[InvoiceRow]:
    """Every invoice matching the filter, unpaged."""
    rows = fetch_rows(session, filtered_query(scope, flt, as_of))
    return [r for r in rows if stale.stale_kinds(r, as_of)] if flt.stale else rows


def search_invoices(session: Session, scope: Scope, flt: InvoiceFilter, as_of: AsOf) -> InvoicePage:
    start = (flt.page - 1) * flt.page_size
    if flt.stale:  # staleness is a rule in Python, so page after it
        rows = matching_rows(session, scope, flt, as_of)
        return InvoicePage(rows[start : start + flt.page_size], len(rows), flt.page, flt.page_size)
    query = filtered_query(scope, flt, as_of)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = fetch_rows(session, query.limit(flt.page_size).offset(start))
    return InvoicePage(rows, total, flt.page, flt.page_size)


def invoice_json(row: InvoiceRow, as_of: AsOf) -> dict[str, Any]:
    days = days_overdue(row, as_of.today)
    return {
        "invoice_number": row.number,
        "account": row.account_name,
        "status": row.status,
        "amount": amount_str(row.amount),
        "amount_paid": amount_str(row.amount_paid),
        "balance": amount_str(row.balance),
        "currency": row.currency,
        "issue_date": row.issue_date.isoformat(),
        "due_date": row.due_date.isoformat(),
        "days_overdue": days,
        "bucket": aging_bucket(days),
        "promise_to_pay_date": row.promise_to_pay_date.isoformat() if row.promise_to_pay_date else None,
        "dispute_reason": row.dispute_reason,
    }


def invoice_history(session: Session, scope: Scope, number: str, as_of: AsOf) -> dict[str, Any]:
    """One invoice's story: its fields, contacts, payments and every event in order."""
    row = get_row(session, scope, number)
    contacts = session.execute(
        select(Contact.name, Contact.email, Contact.do_not_contact)
        .join(InvoiceContact, InvoiceContact.contact_id == Contact.id)
        .where(InvoiceContact.invoice_id == row.id)
        .order_by(InvoiceContact.position)
    ).all()
    payments = session.execute(
        select(Payment.amount, Payment.paid_at).where(Payment.invoice_id == row.id).order_by(Payment.paid_at)
    ).all()
    events = session.execute(
        select(
            Activity.kind, Activity.at, Activity.by_id, Activity.text, Activity.from_status, Activity.to_status, Activity.source
        )
        .where(Activity.invoice_id == row.id)
        .order_by(Activity.at, Activity.id)
    ).all()
    return {
        **invoice_json(row, as_of),
        "payment_url": row.payment_url,
        "contacts": [{"name": n, "email": e, "do_not_contact": d} for n, e, d in contacts],
        "payments": [{"amount": amount_str(a), "paid_at": p.isoformat()} for a, p in payments],
        "history": [
            # A provider's event says who in its source ("stripe:evt_..."): by = stripe.
            {"kind": k, "at": at.isoformat(), "by": by or (src.split(":")[0] if src else None), "text": text, "from": f, "to": t}
            for k, at, by, text, f, t, src in events
        ],
        "stale": [f.as_json() for f in stale.findings_for(row, as_of)],
    }
