"""Slack's endpoints: verify, ack at once (Slack gives up after 3 s), answer in the background."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel

from lumo.crm.errors import LumoError
from lumo.slack import handlers
from lumo.slack.client import SlackClient
from lumo.slack.handlers import Incoming, SlackRuntime
from lumo.slack.verify import VerifiedBody, app_clock

log = logging.getLogger("lumo.slack")
DRAIN_SECONDS = 20.0
ACK = {"ok": True}


class BadPayload(LumoError):
    http_status = 400


class SlackError(BaseModel):
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": SlackError, "description": "Not a Slack payload"},
    401: {"model": SlackError, "description": "Missing, invalid or stale Slack signature"},
    503: {"model": SlackError, "description": "Slack is not configured (no signing secret)"},
}


@asynccontextmanager
async def slack_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's lifespan (Lumo is open): set up the runtime; on shutdown, finish answers first."""
    runtime = SlackRuntime(app.state.lumo, app.state.session_factory, SlackClient.from_settings(app.state.settings))
    app.state.slack = runtime
    app.state.slack_tasks = runtime.tasks
    try:
        yield
    finally:
        await runtime.drain(DRAIN_SECONDS)


router = APIRouter(prefix="/slack", tags=["slack"], lifespan=slack_lifespan, responses=ERRORS)


def _runtime(request: Request) -> SlackRuntime:
    runtime: SlackRuntime = request.app.state.slack
    return runtime


def _now(request: Request) -> dt.datetime:
    return dt.datetime.fromtimestamp(app_clock(request.app.state)(), dt.UTC)


def _json(raw: bytes | str) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than any Slack payload
        raise BadPayload("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadPayload("the body is not a JSON object")
    return payload


def _form(body: bytes) -> dict[str, str]:
    try:
        return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        raise BadPayload("the body is not a form") from None


async def _first_delivery(request: Request, rt: SlackRuntime, now: dt.datetime) -> bool:
    """Replay protection where Slack sends no event id (commands, clicks): a signature covers the exact bytes and
    timestamp, so the same signature twice inside the window is the same request sent again."""
    signature = request.headers.get("x-slack-signature", "")
    return await rt.claim_event("sig-" + hashlib.sha256(signature.encode()).hexdigest(), now)


def _ephemeral(text: str) -> dict[str, str]:
    return {"response_type": "ephemeral", "text": text}


@router.post("/events", summary="Slack Events API: app mentions and direct messages")
async def events(request: Request, body: VerifiedBody) -> dict[str, Any]:
    payload = _json(body)
    if payload.get("type") == "url_verification":
        return {"challenge": payload.get("challenge", "")}
    if payload.get("type") != "event_callback":
        return ACK
    msg = handlers.incoming_from_event(payload)
    event_id = payload.get("event_id")
    if msg is None or not isinstance(event_id, str):
        return ACK
    rt, now = _runtime(request), _now(request)
    # Slack resends an event it thinks we missed (same event_id, X-Slack-Retry-Num): answer it once.
    if not await rt.claim_event(event_id, now):
        log.info("slack.duplicate event=%s retry=%s", event_id, request.headers.get("x-slack-retry-num"))
        return ACK
    log.info("slack.event event=%s user=%s channel=%s", event_id, msg.user, msg.channel)
    rt.spawn(handlers.answer_message(rt, msg, now), name=f"slack-event-{event_id}")
    return ACK


@router.post("/commands", summary="The /lumo slash command")
async def commands(request: Request, body: VerifiedBody) -> dict[str, str]:
    form = _form(body)
    text, user, channel = handlers.plain_text(form.get("text", "")), form.get("user_id", ""), form.get("channel_id", "")
    if not text:
        return _ephemeral(handlers.HELP)
    rt = _runtime(request)
    if not await _first_delivery(request, rt, _now(request)):
        log.warning("slack.replayed_command user=%s channel=%s", user, channel)
        return _ephemeral(handlers.ALREADY_RECEIVED)
    scope = await rt.scope_for_slack_user(user) if user else None
    if scope is None:
        log.info("slack.unknown_user user=%s", user)
        return _ephemeral(handlers.REFUSAL)
    if not channel:
        raise BadPayload("channel_id is missing")
    log.info("slack.command user=%s channel=%s", user, channel)
    rt.spawn(handlers.answer_command(rt, scope, Incoming(user, channel, text, ""), _now(request)), name=f"slack-command-{user}")
    return _ephemeral(handlers.WORKING)


@router.post("/interactions", summary="Slack interactivity: the Approve / Reject buttons")
async def interactions(request: Request, body: VerifiedBody) -> Response:
    payload = _json(_form(body).get("payload", ""))
    rt, now = _runtime(request), _now(request)
    if not await _first_delivery(request, rt, now):
        log.warning("slack.replayed_interaction")
        return Response(status_code=200)
    for click in handlers.clicks_from_interaction(payload):
        log.info(
            "slack.click user=%s thread=%s action=%s decision=%s", click.user, click.thread_id, click.action_id, click.decision
        )
        rt.spawn(handlers.answer_click(rt, click, now), name=f"slack-click-{click.thread_id}")
    return Response(status_code=200)
