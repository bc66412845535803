"""Tools with side effects. The graph runs them only after the rep approves; each checks scope again."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from sqlalchemy.orm import Session

from lumo.crm import invoices, ledger, outbox, tasks
from lumo.crm.accounts import resolve_account
from lumo.crm.addresses import header_text, parse_address
from lumo.crm.errors import InvalidInput
from lumo.crm.money import format_code
from lumo.crm.outreach import check_email
from lumo.db.models import Invoice
from tools.base import Args, ToolContext, tool
from tools.read import Status


def _invoice(ctx: ToolContext, session: Session, number: str) -> Invoice:
    return invoices.get_invoice(session, ctx.scope, number)  # NotFound outside scope


def _account_id(ctx: ToolContext, session: Session, account: str) -> str:
    return resolve_account(session, ctx.scope, account)[0]


class TaskArgs(Args):
    title: str = Field(min_length=3, max_length=300, description="What to do, e.g. 'Call Hank about INV-1042'.")
    due_date: dt.date | None = Field(default=None, description="YYYY-MM-DD; default tomorrow.")
    invoice_number: str | None = None
    account: str | None = Field(default=None, description="Account name or id.")


def _describe_task(ctx: ToolContext, args: TaskArgs, session: Session) -> str:
    if args.invoice_number:
        _invoice(ctx, session, args.invoice_number)
    if args.account:
        _account_id(ctx, session, args.account)
    due = args.due_date or ctx.as_of.today + dt.timedelta(days=1)
    if due < ctx.as_of.today:
        raise InvalidInput(f"due date {due} is in the past")
    about = f" for {args.invoice_number}" if args.invoice_number else f" for {args.account}" if args.account else ""
    return f"Create task '{args.title}'{about}, due {due.isoformat()}"


@tool(TaskArgs, side_effect=True, describe=_describe_task)
def create_follow_up_task(ctx: ToolContext, args: TaskArgs, session: Session) -> dict[str, Any]:
    """Create a follow-up task for the rep (needs the rep's approval)."""
    _describe_task(ctx, args, session)
    invoice = _invoice(ctx, session, args.invoice_number) if args.invoice_number else None
    account_id = None if invoice or not args.account else _account_id(ctx, session, args.account)
    return tasks.create_task(
        session,
        owner_id=ctx.scope.user_id,
        title=args.title,
        due_date=args.due_date or ctx.as_of.today + dt.timedelta(days=1),
        invoice=invoice,
        account_id=account_id,
    )


class NoteArgs(Args):
    invoice_number: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=4000, description="The note, as the rep would write it.")


def _describe_note(ctx: ToolContext, args: NoteArgs, session: Session) -> str:
    _invoice(ctx, session, args.invoice_number)
    return f"Log a note on {args.invoice_number}: {args.text[:200]}"


@tool(NoteArgs, side_effect=True, describe=_describe_note)
def log_note(ctx: ToolContext, args: NoteArgs, session: Session) -> dict[str, Any]:
    """Log a note on an invoice's history (needs the rep's approval)."""
    inv = _invoice(ctx, session, args.invoice_number)
    ledger.record_activity(session, inv, kind="note", at=ctx.now, by_id=ctx.scope.user_id, text=args.text)
    return {"invoice_number": inv.number, "logged": True}


class StatusArgs(Args):
    invoice_number: str = Field(min_length=1, max_length=64)
    status: Status
    reason: str = Field(min_length=3, max_length=1000, description="Why the status changes (kept in the history).")


def _unpaid_balance(inv: Invoice) -> Decimal:
    return max(inv.amount - inv.amount_paid, Decimal("0"))


def _describe_status(ctx: ToolContext, args: StatusArgs, session: Session) -> str:
    inv = _invoice(ctx, session, args.invoice_number)
    if inv.status == args.status:
        raise InvalidInput(f"{inv.number} is already '{args.status}'")
    text = f"Change {inv.number} from '{inv.status}' to '{args.status}' because: {args.reason}"
    balance = _unpaid_balance(inv)
    if args.status == "paid" and balance > 0:
        # A status is not money: say so, so nobody approves this believing the payment is now on record.
        text += f". This records no payment: {format_code(balance, inv.currency)} stays unpaid in the payment history"
    return text


@tool(StatusArgs, side_effect=True, describe=_describe_status)
def update_invoice_status(ctx: ToolContext, args: StatusArgs, session: Session) -> dict[str, Any]:
    """Change an invoice's status with a reason, recorded in its history (needs the rep's approval)."""
    _describe_status(ctx, args, session)
    inv = _invoice(ctx, session, args.invoice_number)
    unpaid = args.status == "paid" and _unpaid_balance(inv) > 0
    event = ledger.change_status(session, inv, to_status=args.status, at=ctx.now, by_id=ctx.scope.user_id, reason=args.reason)
    result: dict[str, Any] = {
        "invoice_number": inv.number,
        "from": event.from_status,
        "to": event.to_status,
        "reason": args.reason,
    }
    if unpaid:
        result["payment_recorded"] = False
    return result


def _one_address(value: str) -> str:
    try:
        return parse_address(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


def _one_line(value: str) -> str:
    try:
        return header_text(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


# One addr-spec each (parsed, not pattern-matched); each must also be a contact, checked against the database.
Address = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320), AfterValidator(_one_address)]
# A header: a line break in it would end the message's headers (and stop the outbox).
Subject = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_one_line)]


class EmailArgs(Args):
    to: list[Address] = Field(min_length=1, max_length=10)
    cc: list[Address] = Field(default_factory=list, max_length=10)
    subject: Subject
    body: str = Field(min_length=1, max_length=20000)
    invoice_numbers: list[str] = Field(min_length=1, max_length=50, description="Invoices the email is about.")


def _describe_email(ctx: ToolContext, args: EmailArgs, session: Session) -> str:
    check_email(
        session,
        ctx.scope,
        numbers=args.invoice_numbers,
        to=args.to,
        cc=args.cc,
        text=f"{args.subject}\n{args.body}",
        as_of=ctx.as_of,
    )
    return f"Send '{args.subject}' to {', '.join(args.to)}" + (f" (cc {', '.join(args.cc)})" if args.cc else "")


@tool(EmailArgs, side_effect=True, describe=_describe_email)
def send_email(ctx: ToolContext, args: EmailArgs, session: Session) -> dict[str, Any]:
    """Send an email to invoice contacts: queued in the outbox for the mail sender (needs the rep's approval)."""
    _describe_email(ctx, args, session)
    numbers = [invoices.get_row(session, ctx.scope, n).number for n in args.invoice_numbers]  # as stored, in any case typed
    outbox_id = outbox.queue_email(
        session,
        action_id=ctx.action_id or f"{ctx.thread_id}:{uuid.uuid4().hex}",
        user_id=ctx.scope.user_id,
        to=args.to,
        cc=args.cc,
        subject=args.subject,
        body=args.body,
        invoice_numbers=numbers,
        now=ctx.now,
    )
    return {
        "outbox_id": outbox_id,
        "status": "queued",
        "subject": args.subject,  # what was queued, an edit included: the reply names this, not the first draft's
        "to": list(args.to),
        "invoice_numbers": numbers,
    }
