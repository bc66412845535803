"""Read-only tools: thin wrappers over lumo.crm; results compact (ids, numbers, reasons) and limited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field
from sqlalchemy.orm import Session

from lumo.crm import drafts, dso, health, invoices, priorities, stale
from lumo.crm.accounts import ensure_account, resolve_account
from lumo.crm.lifecycle import Bucket, InvoiceRow, InvoiceStatus, days_overdue
from lumo.crm.money import amount_str, load_fx, totals_by_currency
from tools.base import Args, ToolContext, tool

Limit = Field(default=10, ge=1, le=50, description="At most this many rows.")
Status = InvoiceStatus  # the short name the tools' argument schemas use


def compact(row: InvoiceRow, ctx: ToolContext) -> dict[str, Any]:
    return {
        "invoice_number": row.number,
        "account": row.account_name,
        "status": row.status,
        "balance": amount_str(row.balance),
        "currency": row.currency,
        "due_date": row.due_date.isoformat(),
        "days_overdue": days_overdue(row, ctx.as_of.today),
    }


class SearchArgs(Args):
    status: list[Status] | None = Field(default=None, description="Only these statuses.")
    overdue: bool = Field(default=False, description="Only overdue invoices.")
    stale: bool = Field(default=False, description="Only invoices whose status is stale.")
    account: str | None = Field(default=None, description="Account name (or part of it) or id.")
    bucket: Bucket | None = Field(default=None, description="Aging bucket.")
    currency: str | None = Field(default=None, min_length=3, max_length=3, description="ISO-4217 code.")
    limit: int = Limit
    page: int = Field(default=1, ge=1)


def _search(ctx: ToolContext, args: SearchArgs, session: Session) -> dict[str, Any]:
    if args.account:
        ensure_account(session, ctx.scope, args.account)
    flt = invoices.invoice_filter(
        status=args.status,
        overdue=args.overdue,
        stale=args.stale,
        account=args.account,
        bucket=args.bucket,
        currency=args.currency,
        page=args.page,
        page_size=args.limit,
    )
    page = invoices.search_invoices(session, ctx.scope, flt, ctx.as_of)
    return {"total": page.total, "page": page.page, "invoices": [compact(r, ctx) for r in page.items]}


@tool(SearchArgs)
def search_invoices(ctx: ToolContext, args: SearchArgs, session: Session) -> dict[str, Any]:
    """Search the rep's invoices by status, overdue, stale, account, aging bucket or currency (paged)."""
    return _search(ctx, args, session)


class OverdueArgs(Args):
    account: str | None = Field(default=None, description="Account name (or part of it) or id.")
    bucket: Bucket | None = None
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    min_days_overdue: int | None = Field(
        default=None, ge=1, le=36500, description="Only invoices more than this many days overdue."
    )
    min_balance: Decimal | None = Field(
        default=None, gt=0, description="Only open balances of at least this, in the base currency."
    )
    in_base_currency: bool = Field(default=False, description="Also give the grand total converted to the base currency.")
    limit: int = Limit


@tool(OverdueArgs)
def overdue_invoices(ctx: ToolContext, args: OverdueArgs, session: Session) -> dict[str, Any]:
    """List overdue invoices (all, or of one account, bucket, currency or age), most overdue first, with totals per currency."""
    if args.account:
        ensure_account(session, ctx.scope, args.account)
    flt = invoices.InvoiceFilter(overdue=True, account=args.account, bucket=args.bucket, currency=args.currency)
    rows = invoices.matching_rows(session, ctx.scope, flt, ctx.as_of)
    if args.min_days_overdue is not None:
        rows = [r for r in rows if days_overdue(r, ctx.as_of.today) > args.min_days_overdue]
    if args.min_balance is not None:
        fx = load_fx(session)
        rows = [r for r in rows if fx.to_base(r.balance, r.currency) >= args.min_balance]
    rows.sort(key=lambda r: (r.due_date, r.number))
    totals = totals_by_currency((r.balance, r.currency) for r in rows)
    out: dict[str, Any] = {
        "total": len(rows),
        "totals": [{"currency": c, "amount": amount_str(a)} for c, a in totals.items()],
        "invoices": [compact(r, ctx) for r in rows[: args.limit]],
    }
    if args.in_base_currency:
        out["total_base"] = converted_total(session, totals)
    if args.min_balance is not None:
        out["min_balance"] = {"currency": fx.base, "amount": amount_str(args.min_balance)}
    return out


def converted_total(session: Session, totals: dict[str, Decimal]) -> dict[str, Any]:
    """The totals per currency summed in the base currency with the stored rates, and the rates used."""
    fx = load_fx(session)
    amount = sum((fx.to_base(a, c) for c, a in totals.items()), Decimal("0"))
    rates = {c: f"{fx.rates[c].normalize():f}" for c in totals if c != fx.base}
    return {"currency": fx.base, "amount": amount_str(amount), "rates": rates}


class InvoiceArgs(Args):
    invoice_number: str = Field(min_length=1, max_length=64, description="Invoice number, e.g. INV-1042.")


@tool(InvoiceArgs)
def get_invoice(ctx: ToolContext, args: InvoiceArgs, session: Session) -> dict[str, Any]:
    """Get one invoice's details, contacts, payments, stale findings and history of events."""
    story = invoices.invoice_history(session, ctx.scope, args.invoice_number, ctx.as_of)
    story["history"] = story["history"][-20:]
    return story


class StaleArgs(Args):
    account: str | None = Field(default=None, description="Account name (or part of it) or id.")
    kind: stale.StaleKind | None = Field(default=None, description="Only this kind of finding.")
    limit: int = Limit


@tool(StaleArgs)
def stale_findings(ctx: ToolContext, args: StaleArgs, session: Session) -> dict[str, Any]:
    """Find invoices whose recorded status is stale, with the evidence and the fix for each."""
    if args.account:
        ensure_account(session, ctx.scope, args.account)
    rows = invoices.actionable_rows(session, ctx.scope)
    if args.account:
        needle = args.account.lower()
        rows = [r for r in rows if needle in r.account_name.lower() or r.account_id == args.account]
    found = [f for f in stale.stale_findings(rows, ctx.as_of) if args.kind is None or f.kind == args.kind]
    counts: dict[str, int] = {}
    for f in found:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return {"total": len(found), "by_kind": counts, "findings": [f.as_json() for f in found[: args.limit]]}


class PrioritiesArgs(Args):
    limit: int = Limit


@tool(PrioritiesArgs)
def todays_priorities(ctx: ToolContext, args: PrioritiesArgs, session: Session) -> dict[str, Any]:
    """Today's ranked work for the rep, each item with its reasons and suggested next action."""
    items = priorities.priorities_json(session, ctx.scope, ctx.as_of, limit=args.limit, versions=ctx.versions)
    # The rank is the order; the internal score would only tempt the model to reason about it.
    shown = [{k: v for k, v in i.items() if k != "score"} for i in items]
    return {"date": ctx.as_of.today.isoformat(), "items": shown}


class HealthArgs(Args):
    account: str | None = Field(default=None, description="One account's name or id; omit for the worst accounts.")
    limit: int = Field(default=5, ge=1, le=50)


@tool(HealthArgs)
def account_health(ctx: ToolContext, args: HealthArgs, session: Session) -> dict[str, Any]:
    """Account health: score, grade and the reasons (overdue, lateness, disputes, stale statuses)."""
    found = _health(ctx, args.account, session)
    out: dict[str, Any] = {"accounts": [h.as_json() for h in found[: args.limit]]}
    if args.account is None:  # the book's view: DSO per rep and team beside the accounts'
        out["dso"] = dso.dso_report(session, ctx.scope, ctx.as_of)
    return out


def _health(ctx: ToolContext, account: str | None, session: Session) -> list[health.AccountHealth]:
    if account is None:
        return health.account_health(session, ctx.scope, ctx.as_of)
    account_id, _ = resolve_account(session, ctx.scope, account)
    return health.account_health(session, ctx.scope, ctx.as_of, account=account_id)


class RiskArgs(Args):
    limit: int = Field(default=5, ge=1, le=50)


@tool(RiskArgs)
def revenue_at_risk(ctx: ToolContext, args: RiskArgs, session: Session) -> dict[str, Any]:
    """Revenue at risk: overdue balances plus open balances of accounts in poor health, in the base currency."""
    risk = health.revenue_at_risk(health.account_health(session, ctx.scope, ctx.as_of))
    risk["accounts"] = risk["accounts"][: args.limit]
    return risk


class DraftArgs(Args):
    invoice_number: str | None = Field(default=None, description="Invoice to chase.")
    account: str | None = Field(default=None, description="Or an account: its most overdue invoice is chased.")


@tool(DraftArgs)
def draft_followup_email(ctx: ToolContext, args: DraftArgs, session: Session) -> dict[str, Any]:
    """Draft the reminder email for an invoice or account from the tone ladder (nothing is sent)."""
    if args.invoice_number:
        d = drafts.draft_for_invoice(session, ctx.scope, args.invoice_number, ctx.as_of)
    elif args.account:
        d = drafts.draft_for_account(session, ctx.scope, args.account, ctx.as_of)
    else:
        raise ValueError("give invoice_number or account")
    return {"draft": d.as_json()}
