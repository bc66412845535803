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
from lumo.api.deps import AsOfDep, CurrentScope, LumoDep, Now, RowId, SessionDep
from lumo.api.openapi import DATE_HELP, ERRORS, DateText, ErrorBody
from lumo.api.schemas import ChatResponse, ThreadId
from lumo.crm import forecast, provider_events, reconcile
from lumo.crm.bank_files import Format, parse_statement
from lumo.crm.errors import Forbidden, InvalidInput, LumoError
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import Scope

log = logging.getLogger("lumo.payments")


class BadWebhook(LumoError):
    http_status = 400


class NotConfigured(LumoError):
    http_status = 503


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


class ImportResponse(BaseModel):
    """What an imported statement did: lines read, new (stored now) or already imported, and of the new ones
    how many were matched and applied, suggested for approval, or left unmatched for finance."""

    lines: int
    new: int
    already: int
    matched: int
    suggested: int
    unmatched: int


IMPORT_PATH = "/v1/payments/import"
STATEMENT_TYPES = {"text/csv": "csv", "application/xml": "camt053", "text/xml": "camt053"}
BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.post(
    "/payments/import",
    response_model=ImportResponse,
    summary="Import a bank statement (CSV or CAMT.053): exact matches applied, the rest suggested",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The statement file as the raw body: CSV (date,amount,currency,reference[,counterparty,"
            "bank_id]) or CAMT.053 XML.",
            "content": {t: BINARY for t in (*STATEMENT_TYPES, "application/octet-stream")},
        }
    },
    responses={
        413: {"model": ErrorBody, "description": "Larger than LUMO_MAX_STATEMENT_BYTES"},
        422: {"model": ErrorBody, "description": "A bad file, with one problem a line: nothing was imported"},
    },
)
async def import_statement(
    request: Request,
    scope: CurrentScope,
    as_of: AsOfDep,
    now: Now,
    fmt: Annotated[
        Format | None, Query(alias="format", description="csv or camt053 (default: from the Content-Type, else csv).")
    ] = None,
    filename: Annotated[str, Query(max_length=300, description="The file's name, kept with its lines.")] = "",
) -> ImportResponse:
    """Managers and admins (finance). Re-importing the same or an overlapping statement adds nothing twice; a bad file
    writes nothing. Suggestions are approved with POST /v1/payments/lines/{id}/apply."""
    if scope.role == "rep":
        raise Forbidden("importing bank statements is for managers and finance: ask your manager")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    chosen: Format = fmt or ("camt053" if STATEMENT_TYPES.get(media) == "camt053" else "csv")
    raw = await request.body()
    if not raw.strip():
        raise InvalidInput("the statement is empty: send the file as the request body")
    factory = request.app.state.session_factory

    def store() -> ImportResponse:
        lines = parse_statement(raw, chosen)  # ImportRejected (422, one problem a line) before anything is written
        with factory() as session:
            source = filename.strip() or f"upload {now.isoformat()}"
            report = reconcile.import_lines(session, scope, lines, source_file=source, as_of=as_of, now=now)
            session.commit()
        log.info("payments.import user=%s lines=%s new=%s matched=%s", scope.user_id, report.lines, report.new, report.matched)
        return ImportResponse(**report.as_json())

    return await asyncio.to_thread(store)


class ApplyLineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_numbers: list[str] | None = Field(default=None, max_length=20, description="Omit: the suggested invoices.")
    thread_id: str | None = ThreadId
    date: DateText | None = Field(default=None, description=f"The day it is, {DATE_HELP}.")


@router.post("/payments/lines/{line_id}/apply", response_model=ChatResponse, summary="Propose applying a bank line")
async def apply_line(line_id: RowId, body: ApplyLineRequest, scope: CurrentScope, lumo: LumoDep, now: Now) -> TurnResult:
    """The action waits for approval (POST /v1/threads/{id}/decision), like any other."""
    as_of = AsOf.given(body.date, now, scope.tz)
    args: dict[str, Any] = {"line_id": line_id}
    if body.invoice_numbers:
        args["invoice_numbers"] = body.invoice_numbers
    message = f"(api) apply bank line {line_id}"
    return await lumo.propose(scope, [("apply_bank_line", args)], message=message, as_of=as_of, now=now, thread_id=body.thread_id)


class LinkEventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_number: str = Field(min_length=1, max_length=64, description="The Lumo invoice the event is for.")
    thread_id: str | None = ThreadId
    date: DateText | None = Field(default=None, description=f"The day it is, {DATE_HELP}.")


@router.post(
    "/payments/events/{event_id}/link",
    response_model=ChatResponse,
    summary="Propose linking an unmatched Stripe event to an invoice (managers)",
)
async def link_event(event_id: str, body: LinkEventRequest, scope: CurrentScope, lumo: LumoDep, now: Now) -> TurnResult:
    """Applied once approved (POST /v1/threads/{id}/decision), with by = stripe and the event id in the history."""
    as_of = AsOf.given(body.date, now, scope.tz)
    args = {"event_id": event_id, "invoice_number": body.invoice_number}
    message = f"(api) link Stripe event {event_id} to {body.invoice_number}"
    return await lumo.propose(
        scope, [("link_payment_event", args)], message=message, as_of=as_of, now=now, thread_id=body.thread_id
    )


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
