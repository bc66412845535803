"""Side-effect tools that record what a customer told the rep; thin wrappers over lumo.crm.recording."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from lumo.crm import recording
from lumo.crm.invoices import get_invoice
from lumo.db.models import Invoice
from tools.base import Args, ToolContext, tool

Number = Field(min_length=1, max_length=64, description="Invoice number, e.g. INV-1042.")
Currency = Field(default=None, min_length=3, max_length=3, description="ISO-4217; must be the invoice's.")
Method = Literal["bank_transfer", "card", "check", "cash", "direct_debit", "other"]


def _invoice(ctx: ToolContext, session: Session, number: str) -> Invoice:
    return get_invoice(session, ctx.scope, number)  # NotFound outside scope


class PromiseArgs(Args):
    invoice_number: str = Number
    date: dt.date = Field(description="YYYY-MM-DD the customer promised to pay by.")
    amount: Decimal | None = Field(default=None, gt=0, max_digits=16, decimal_places=2, description="Omit: the balance.")
    currency: str | None = Currency
    note: str = Field(default="", max_length=1000, description="Who promised, in their words.")

    def promise(self) -> recording.Promise:
        return recording.Promise(self.date, self.amount, self.currency, self.note)


def _describe_promise(ctx: ToolContext, args: PromiseArgs, session: Session) -> str:
    return recording.check_promise(_invoice(ctx, session, args.invoice_number), args.promise(), ctx.as_of)


@tool(PromiseArgs, side_effect=True, describe=_describe_promise)
def record_promise(ctx: ToolContext, args: PromiseArgs, session: Session) -> dict[str, Any]:
    """Record a customer's promise to pay an invoice by a date (needs the rep's approval)."""
    inv = _invoice(ctx, session, args.invoice_number)
    return recording.record_promise(session, inv, args.promise(), as_of=ctx.as_of, now=ctx.now, by_id=ctx.scope.user_id)


class PaymentArgs(Args):
    invoice_number: str = Number
    amount: Decimal = Field(gt=0, max_digits=16, decimal_places=2, description="Amount received, e.g. 500.00.")
    date: dt.date | None = Field(default=None, description="YYYY-MM-DD received; default today.")
    method: Method = "bank_transfer"
    currency: str | None = Currency
    reference: str = Field(default="", max_length=200)

    def payment(self, today: dt.date) -> recording.PaymentIn:
        return recording.PaymentIn(self.amount, self.date or today, self.method, self.currency, self.reference)


def _describe_payment(ctx: ToolContext, args: PaymentArgs, session: Session) -> str:
    inv = _invoice(ctx, session, args.invoice_number)
    return recording.check_payment(inv, args.payment(ctx.as_of.today), ctx.as_of)


@tool(PaymentArgs, side_effect=True, describe=_describe_payment)
def record_payment(ctx: ToolContext, args: PaymentArgs, session: Session) -> dict[str, Any]:
    """Record a payment received on an invoice, in full or partial (needs the rep's approval)."""
    inv = _invoice(ctx, session, args.invoice_number)
    payment = args.payment(ctx.as_of.today)
    return recording.record_payment(session, inv, payment, as_of=ctx.as_of, now=ctx.now, by_id=ctx.scope.user_id)


class DisputeArgs(Args):
    invoice_number: str = Number
    reason: str = Field(min_length=3, max_length=1000, description="What the customer disputes.")


def _describe_dispute(ctx: ToolContext, args: DisputeArgs, session: Session) -> str:
    return recording.check_dispute(_invoice(ctx, session, args.invoice_number), args.reason)


@tool(DisputeArgs, side_effect=True, describe=_describe_dispute)
def open_dispute(ctx: ToolContext, args: DisputeArgs, session: Session) -> dict[str, Any]:
    """Open a dispute on an invoice with the customer's reason (needs the rep's approval)."""
    inv = _invoice(ctx, session, args.invoice_number)
    return recording.open_dispute(session, inv, args.reason, now=ctx.now, by_id=ctx.scope.user_id)


class ResolveArgs(Args):
    invoice_number: str = Number
    resolution: str = Field(min_length=3, max_length=1000, description="How it was settled.")
    status: Literal["paid", "partially_paid", "overdue", "sent", "void", "written_off"] | None = Field(
        default=None, description="Omit: what the balance and due date say."
    )


def _describe_resolve(ctx: ToolContext, args: ResolveArgs, session: Session) -> str:
    inv = _invoice(ctx, session, args.invoice_number)
    return recording.check_resolution(inv, args.resolution, args.status, ctx.as_of)


@tool(ResolveArgs, side_effect=True, describe=_describe_resolve)
def resolve_dispute(ctx: ToolContext, args: ResolveArgs, session: Session) -> dict[str, Any]:
    """Resolve an invoice's dispute with how it was settled (needs the rep's approval)."""
    inv = _invoice(ctx, session, args.invoice_number)
    by = ctx.scope.user_id
    return recording.resolve_dispute(session, inv, args.resolution, args.status, as_of=ctx.as_of, now=ctx.now, by_id=by)


class CallArgs(Args):
    invoice_number: str = Number
    outcome: str = Field(min_length=3, max_length=4000, description="What was said and agreed.")
    date: dt.date | None = Field(default=None, description="YYYY-MM-DD of the call; default today.")


def _describe_call(ctx: ToolContext, args: CallArgs, session: Session) -> str:
    inv = _invoice(ctx, session, args.invoice_number)
    return recording.check_call(inv, args.outcome, args.date or ctx.as_of.today, ctx.as_of)


@tool(CallArgs, side_effect=True, describe=_describe_call)
def log_call(ctx: ToolContext, args: CallArgs, session: Session) -> dict[str, Any]:
    """Log a call with the customer about an invoice, with its outcome (needs the rep's approval)."""
    inv = _invoice(ctx, session, args.invoice_number)
    day = args.date or ctx.as_of.today
    return recording.log_call(session, inv, args.outcome, day, as_of=ctx.as_of, now=ctx.now, by_id=ctx.scope.user_id)
