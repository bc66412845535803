"""Payments in and cash to come: the Stripe webhook, bank lines to match, the forecast.

The webhook is verified by the `stripe` library on the raw body, stored once per event id and applied in
the same transaction (lumo.crm.provider_events); it answers as soon as that is committed. Nothing here
calls Stripe.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

import stripe
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from lumo.agent.contracts import TurnResult
from lumo.api.deps import AsOfDep, CurrentScope, LumoDep, Now, SessionDep
from lumo.api.openapi import DATE_HELP, ERRORS, DateText, ErrorBody
from lumo.api.schemas import ChatResponse, ThreadId
from lumo.crm import forecast, provider_events, reconcile
from lumo.crm.errors import LumoError
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import Scope

log = logging.getLogger("lumo.payments")


class BadWebhook(LumoError):
    http_status = 400


class NotConfigured(LumoError):
    http_status = 503


class Forbidden(LumoError):
    http_status = 403
    exit_code = 2


webhooks = APIRouter(prefix="/webhooks", tags=["webhooks"])
router = APIRouter(
    prefix="/v1", tags=["payments"], responses={**ERRORS, 403: {"model": ErrorBody, "description": "Managers only"}}
)


class WebhookAck(BaseModel):
    received: bool
    event_id: str
    duplicate: bool
    status: str


@webhooks.post(
    "/stripe",
    response_model=WebhookAck,
    summary="Stripe events: invoice paid, failed, voided, uncollectible; charge refunded",
    responses={
        400: {"model": ErrorBody, "description": "Bad signature or not a Stripe event: nothing stored"},
        503: {"model": ErrorBody, "description": "LUMO_STRIPE_WEBHOOK_SECRET is not set"},
    },
)
async def stripe_webhook(request: Request, now: Now) -> dict[str, Any]:
    secret = request.app.state.settings.stripe_webhook_secret
    if not secret:
        raise NotConfigured("Stripe webhooks are not configured (LUMO_STRIPE_WEBHOOK_SECRET)")
    raw = await request.body()
    try:
        # The signature alone: building Stripe's event object from any JSON (a list, null) crashed on signed garbage.
        signature, tolerance = request.headers.get("stripe-signature"), stripe.Webhook.DEFAULT_TOLERANCE
        stripe.WebhookSignature.verify_header(raw.decode(), signature, secret, tolerance)
        payload = json.loads(raw)
    except stripe.SignatureVerificationError:
        raise BadWebhook("bad Stripe signature") from None
    except (ValueError, RecursionError):  # not UTF-8 or not JSON; RecursionError: nested deeper than any event
        raise BadWebhook("the body is not a JSON event") from None
    if not isinstance(payload, dict):
        raise BadWebhook("the body is not a JSON event")
    try:
        event = provider_events.parse_stripe_event(payload)
    except LumoError as exc:
        raise BadWebhook(str(exc)) from None
    factory = request.app.state.session_factory

    def store() -> dict[str, Any]:
        with factory() as session:
            try:
                row, new = provider_events.receive(session, event, now=now)
                status = row.status
                session.commit()
            except IntegrityError:  # the same event delivered twice at once: the other delivery stored it
                session.rollback()
                return {"received": True, "event_id": event.event_id, "duplicate": True, "status": "duplicate"}
        log.info("stripe.event id=%s type=%s status=%s new=%s", event.event_id, event.type, status, new)
        return {"received": True, "event_id": event.event_id, "duplicate": not new, "status": status}

    return await asyncio.to_thread(store)


def _managers_only(scope: Scope) -> None:
    if scope.role == "rep":
        raise Forbidden("unmatched payments are for managers and finance: ask your manager")


class ToMatchResponse(BaseModel):
    suggested: list[dict[str, Any]]
    unmatched: list[dict[str, Any]]


@router.get("/payments/to-match", response_model=ToMatchResponse, summary="Bank lines waiting for a match")
def to_match(session: SessionDep, scope: CurrentScope, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    """Suggestions in your book (approve each with POST /v1/payments/lines/{id}/apply); managers also see unmatched."""
    return reconcile.lines_to_match(session, scope, limit=limit)


class UnmatchedResponse(BaseModel):
    bank_lines: list[dict[str, Any]]
    provider_events: list[dict[str, Any]]


@router.get("/payments/unmatched", response_model=UnmatchedResponse, summary="Payments no invoice was found for")
def unmatched(session: SessionDep, scope: CurrentScope) -> dict[str, Any]:
    """Finance's list: bank lines and Stripe events Lumo could not put on an invoice (managers and admins)."""
    _managers_only(scope)
    return {
        "bank_lines": reconcile.lines_to_match(session, scope)["unmatched"],
        "provider_events": provider_events.unmatched_events(session),
    }


class ApplyLineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_numbers: list[str] | None = Field(default=None, max_length=20, description="Omit: the suggested invoices.")
    thread_id: str | None = ThreadId
    date: DateText | None = Field(default=None, description=f"The day it is, {DATE_HELP}.")


@router.post("/payments/lines/{line_id}/apply", response_model=ChatResponse, summary="Propose applying a bank line")
async def apply_line(line_id: int, body: ApplyLineRequest, scope: CurrentScope, lumo: LumoDep, now: Now) -> TurnResult:
    """The action waits for approval (POST /v1/threads/{id}/decision), like any other."""
    as_of = AsOf.given(body.date, now, scope.tz)
    args: dict[str, Any] = {"line_id": line_id}
    if body.invoice_numbers:
        args["invoice_numbers"] = body.invoice_numbers
    message = f"(api) apply bank line {line_id}"
    return await lumo.propose(scope, [("apply_bank_line", args)], message=message, as_of=as_of, now=now, thread_id=body.thread_id)


class ForecastResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    today: str
    weeks: int
    base_currency: str
    expected: list[dict[str, Any]]
    collected: list[dict[str, Any]]
    at_risk: dict[str, Any]
    dso: dict[str, Any]


@router.get("/forecast", response_model=ForecastResponse, summary="Expected vs collected cash, per week and currency")
def cash_forecast(
    session: SessionDep,
    scope: CurrentScope,
    as_of: AsOfDep,
    weeks: Annotated[int, Query(ge=1, le=forecast.MAX_WEEKS)] = 13,
) -> dict[str, Any]:
    """Your book (a manager: the team's); each figure with its reasons. `lumo forecast --json` prints the same."""
    return forecast.cash_forecast(session, scope, as_of, weeks=weeks)
