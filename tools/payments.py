"""Payments in from the bank and the forecast of cash to come: thin wrappers over lumo.crm.reconcile and forecast."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy.orm import Session

from lumo.crm import forecast, provider_events, reconcile
from tools.base import Args, ToolContext, tool


class MatchArgs(Args):
    limit: int = Field(default=20, ge=1, le=50, description="At most this many lines.")


@tool(MatchArgs)
def payments_to_match(ctx: ToolContext, args: MatchArgs, session: Session) -> dict[str, Any]:
    """Bank payments that need matching: suggested matches waiting for approval, and (managers) unmatched lines."""
    return reconcile.lines_to_match(session, ctx.scope, limit=args.limit)


class ApplyLineArgs(Args):
    line_id: int = Field(ge=1, description="The bank line's id, from payments_to_match.")
    invoice_numbers: list[str] | None = Field(
        default=None, max_length=20, description="The invoices it pays, in order; omit: the suggested ones."
    )


def _describe_apply(ctx: ToolContext, args: ApplyLineArgs, session: Session) -> str:
    return reconcile.check_apply(session, ctx.scope, args.line_id, args.invoice_numbers, ctx.as_of)


@tool(ApplyLineArgs, side_effect=True, describe=_describe_apply)
def apply_bank_line(ctx: ToolContext, args: ApplyLineArgs, session: Session) -> dict[str, Any]:
    """Apply a bank payment line to the invoice(s) it pays, as suggested or as named (needs approval)."""
    return reconcile.apply_line(session, ctx.scope, args.line_id, args.invoice_numbers, as_of=ctx.as_of, now=ctx.now)


class LinkEventArgs(Args):
    event_id: str = Field(min_length=1, max_length=100, description="The Stripe event's id (evt_...), from the unmatched list.")
    invoice_number: str = Field(min_length=1, max_length=64, description="The Lumo invoice it pays.")


def _describe_link(ctx: ToolContext, args: LinkEventArgs, session: Session) -> str:
    return provider_events.check_link(session, ctx.scope, args.event_id, args.invoice_number)


@tool(LinkEventArgs, side_effect=True, describe=_describe_link)
def link_payment_event(ctx: ToolContext, args: LinkEventArgs, session: Session) -> dict[str, Any]:
    """Link an unmatched Stripe payment event to the invoice it is for, and apply it (managers; needs approval)."""
    return provider_events.link_event(session, ctx.scope, args.event_id, args.invoice_number, now=ctx.now)


class ForecastArgs(Args):
    weeks: int = Field(default=13, ge=1, le=forecast.MAX_WEEKS, description="Weeks ahead.")


@tool(ForecastArgs)
def cash_forecast(ctx: ToolContext, args: ForecastArgs, session: Session) -> dict[str, Any]:
    """Expected cash per week by currency (spread over the account's usual delays), collected so far, DSO and at risk."""
    return forecast.cash_forecast(session, ctx.scope, ctx.as_of, weeks=args.weeks, detail=3)
