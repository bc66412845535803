"""What a customer told the rep, recorded on an invoice: a promise to pay, a payment, a dispute, a call.

Each kind has a `check_*` that validates against the invoice as it is and says in words what will happen
(writing nothing), and a `record_*` that writes it through the ledger: every one leaves an event row with
who, when and why, and sets the invoice columns that priorities, drafts and stale findings read, so those
change at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from lumo.crm import ledger
from lumo.crm.errors import InvalidInput
from lumo.crm.lifecycle import OPEN_STATUSES, AsOf
from lumo.crm.money import amount_str, format_code
from lumo.db.models import Invoice

# How each record's event text begins: the history reads as sentences, and a reader (the evals) can tell them apart.
EVENT_PREFIXES = {
    "record_promise": "Customer promised ",
    "record_payment": "Payment received: ",
    "open_dispute": "Dispute opened: ",
    "resolve_dispute": "Dispute resolved ",
}
MAX_PROMISE_DAYS = 366  # a promise further out than a year is a payment plan, not a promise
PAYMENT_METHODS = ("bank_transfer", "card", "check", "cash", "direct_debit", "other")


def _balance(inv: Invoice) -> Decimal:
    return max(inv.amount - (inv.amount_paid or Decimal("0")), Decimal("0"))


def _require_open(inv: Invoice, what: str) -> None:
    if inv.status not in OPEN_STATUSES or _balance(inv) <= 0:
        raise InvalidInput(f"{inv.number} is '{inv.status}' with nothing left to pay: no {what} to record")


def _require_currency(inv: Invoice, currency: str | None) -> None:
    if currency is not None and currency.upper() != inv.currency:
        raise InvalidInput(f"{inv.number} is billed in {inv.currency}, not {currency.upper()}")


def _moment(day: dt.date, as_of: AsOf, now: dt.datetime) -> dt.datetime:
    """When something said to happen on `day` happened: now if today, else noon that day in the rep's zone."""
    if day == as_of.today:
        return now
    return dt.datetime.combine(day, dt.time(12), as_of.tz)


# --- promise to pay ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Promise:
    date: dt.date
    amount: Decimal | None = None
    currency: str | None = None
    note: str = ""


def check_promise(inv: Invoice, p: Promise, as_of: AsOf) -> str:
    _require_open(inv, "promise to pay")
    _require_currency(inv, p.currency)
    if p.date < as_of.today:
        raise InvalidInput(f"the promised date {p.date} is in the past")
    if (p.date - as_of.today).days > MAX_PROMISE_DAYS:
        raise InvalidInput(f"the promised date {p.date} is more than a year ahead")
    if p.amount is not None and not Decimal("0") < p.amount <= _balance(inv):
        raise InvalidInput(
            f"the promised amount must be above 0 and at most the balance {format_code(_balance(inv), inv.currency)}"
        )
    what = (
        format_code(p.amount, inv.currency) if p.amount is not None else f"the balance {format_code(_balance(inv), inv.currency)}"
    )
    return f"Record that the customer promised to pay {what} of {inv.number} by {p.date.isoformat()}"


def record_promise(session: Session, inv: Invoice, p: Promise, *, as_of: AsOf, now: dt.datetime, by_id: str) -> dict[str, Any]:
    text = check_promise(inv, p, as_of).removeprefix("Record that the customer promised").strip()
    before = inv.promise_to_pay_date
    inv.promise_to_pay_date = p.date
    event = EVENT_PREFIXES["record_promise"] + text + (f" (was {before.isoformat()})" if before else "")
    event += f": {p.note}" if p.note else ""
    ledger.record_activity(session, inv, kind="note", at=now, by_id=by_id, text=event)
    return {
        "invoice_number": inv.number,
        "promise_to_pay_date": p.date.isoformat(),
        "amount": _opt_amount(p.amount),
        "currency": inv.currency,
    }


def _opt_amount(amount: Decimal | None) -> str | None:
    return amount_str(amount) if amount is not None else None


# --- payment received -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentIn:
    amount: Decimal
    date: dt.date
    method: str = "bank_transfer"
    currency: str | None = None
    reference: str = ""


def status_after_payment(inv: Invoice, amount: Decimal) -> str:
    """The status an invoice should have once `amount` more is paid: paid in full, or partially paid."""
    if amount >= _balance(inv):
        return "paid"
    return "partially_paid" if inv.status in ("sent", "viewed") else inv.status


def check_payment(inv: Invoice, p: PaymentIn, as_of: AsOf) -> str:
    _require_open(inv, "payment")
    _require_currency(inv, p.currency)
    if p.method not in PAYMENT_METHODS:
        raise InvalidInput(f"unknown payment method {p.method!r}: use one of {', '.join(PAYMENT_METHODS)}")
    if p.amount <= 0:
        raise InvalidInput("the payment amount must be above 0")
    if p.amount > _balance(inv):
        raise InvalidInput(
            f"{format_code(p.amount, inv.currency)} is more than the balance {format_code(_balance(inv), inv.currency)} "
            f"of {inv.number}"
        )
    if p.date > as_of.today:
        raise InvalidInput(f"the payment date {p.date} is in the future")
    if p.date < inv.issue_date:
        raise InvalidInput(f"the payment date {p.date} is before the invoice was issued ({inv.issue_date})")
    to = status_after_payment(inv, p.amount)
    change = f"; status '{inv.status}' -> '{to}'" if to != inv.status else ""
    kind = "payment in full" if to == "paid" else "partial payment"
    return (
        f"Record a {kind} of {format_code(p.amount, inv.currency)} on {inv.number} received {p.date.isoformat()} "
        f"by {p.method.replace('_', ' ')}{change}"
    )


def record_payment(session: Session, inv: Invoice, p: PaymentIn, *, as_of: AsOf, now: dt.datetime, by_id: str) -> dict[str, Any]:
    text = check_payment(inv, p, as_of).removeprefix("Record a ")
    to = status_after_payment(inv, p.amount)
    ledger.add_payment(session, inv, amount=p.amount, paid_at=_moment(p.date, as_of, now))
    event = EVENT_PREFIXES["record_payment"] + text + (f" (ref {p.reference})" if p.reference else "")
    ledger.record_activity(session, inv, kind="note", at=now, by_id=by_id, text=event)
    if to != inv.status:
        ledger.change_status(
            session, inv, to_status=to, at=now, by_id=by_id, reason=f"Payment of {format_code(p.amount, inv.currency)} received"
        )
    return {
        "invoice_number": inv.number,
        "amount": amount_str(p.amount),
        "currency": inv.currency,
        "balance": amount_str(_balance(inv)),
        "status": inv.status,
    }


# --- disputes ---------------------------------------------------------------------------------------


def check_dispute(inv: Invoice, reason: str) -> str:
    if inv.status == "disputed":
        raise InvalidInput(f"{inv.number} is already disputed ({inv.dispute_reason or 'no reason recorded'})")
    _require_open(inv, "dispute")
    if len(reason.strip()) < 3:
        raise InvalidInput("say what the customer disputes")
    return f"Open a dispute on {inv.number} ('{inv.status}' -> 'disputed'): {reason.strip()}"


def open_dispute(session: Session, inv: Invoice, reason: str, *, now: dt.datetime, by_id: str) -> dict[str, Any]:
    check_dispute(inv, reason)
    inv.dispute_reason = reason.strip()
    event = ledger.change_status(
        session, inv, to_status="disputed", at=now, by_id=by_id, reason=EVENT_PREFIXES["open_dispute"] + reason.strip()
    )
    return {"invoice_number": inv.number, "from": event.from_status, "to": "disputed", "dispute_reason": inv.dispute_reason}


def status_after_dispute(inv: Invoice, today: dt.date) -> str:
    """What the status says once a dispute is settled: the invoice's truth, not the status it had before."""
    if _balance(inv) <= 0:
        return "paid"
    if inv.due_date < today:
        return "overdue"
    return "partially_paid" if (inv.amount_paid or 0) > 0 else "sent"


RESOLVED_STATUSES = ("paid", "partially_paid", "overdue", "sent", "void", "written_off")


def check_resolution(inv: Invoice, resolution: str, status: str | None, as_of: AsOf) -> str:
    if inv.status != "disputed":
        raise InvalidInput(f"{inv.number} is '{inv.status}', not disputed: there is no dispute to resolve")
    if len(resolution.strip()) < 3:
        raise InvalidInput("say how the dispute was resolved")
    if status is not None and status not in RESOLVED_STATUSES:
        raise InvalidInput(f"a resolved dispute leaves the invoice {', '.join(RESOLVED_STATUSES)}, not {status!r}")
    to = status or status_after_dispute(inv, as_of.today)
    return f"Resolve the dispute on {inv.number} ('disputed' -> '{to}'): {resolution.strip()}"


def resolve_dispute(
    session: Session, inv: Invoice, resolution: str, status: str | None, *, as_of: AsOf, now: dt.datetime, by_id: str
) -> dict[str, Any]:
    check_resolution(inv, resolution, status, as_of)
    to = status or status_after_dispute(inv, as_of.today)
    was = inv.dispute_reason or "no reason recorded"
    inv.dispute_reason = None
    reason = EVENT_PREFIXES["resolve_dispute"] + f"({was}): {resolution.strip()}"
    ledger.change_status(session, inv, to_status=to, at=now, by_id=by_id, reason=reason)
    return {"invoice_number": inv.number, "from": "disputed", "to": to}


# --- calls ------------------------------------------------------------------------------------------


def check_call(inv: Invoice, outcome: str, day: dt.date, as_of: AsOf) -> str:
    if len(outcome.strip()) < 3:
        raise InvalidInput("say what came out of the call")
    if day > as_of.today:
        raise InvalidInput(f"the call date {day} is in the future")
    when = "today" if day == as_of.today else day.isoformat()
    return f"Log a call {when} about {inv.number}: {outcome.strip()}"


def log_call(
    session: Session, inv: Invoice, outcome: str, day: dt.date, *, as_of: AsOf, now: dt.datetime, by_id: str
) -> dict[str, Any]:
    check_call(inv, outcome, day, as_of)
    ledger.record_activity(session, inv, kind="call", at=_moment(day, as_of, now), by_id=by_id, text=outcome.strip())
    return {"invoice_number": inv.number, "logged": True, "date": day.isoformat()}
