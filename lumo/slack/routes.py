"""Slack's endpoints: verify, store the event, ack at once (Slack gives up after 3 s); the answer is a job.

The answer runs on the job queue (lumo.jobs, `app.state.jobs`): a worker that dies mid-answer leaves the job to
another worker instead of losing it. If the job cannot be queued, the event's claim is undone and Slack gets a
503, so that it sends the event again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Protocol
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from lumo.crm.errors import LumoError
from lumo.slack import handlers
from lumo.slack.handlers import SlackRuntime
from lumo.slack.verify import VerifiedBody, app_clock

log = logging.getLogger("lumo.slack")
ACK = {"ok": True}


class AnswerQueue(Protocol):
    """Where answers go to be run (lumo.jobs.queue.Jobs, set on app.state.jobs by the app)."""

    async def defer_slack(self, kind: str, data: Mapping[str, str], now: dt.datetime) -> None: ...


class NotQueued(LumoError):
    http_status = 503


class BadPayload(LumoError):
    http_status = 400


class SlackError(BaseModel):
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": SlackError, "description": "Not a Slack payload"},
    401: {"model": SlackError, "description": "Missing, invalid or stale Slack signature"},
    503: {"model": SlackError, "description": "Slack is not configured (no signing secret), or the answer could not be queued"},
}


router = APIRouter(prefix="/slack", tags=["slack"], responses=ERRORS)


def _runtime(request: Request) -> SlackRuntime:
    runtime: SlackRuntime = request.app.state.slack
    return runtime


async def _answer_later(
    request: Request, rt: SlackRuntime, claim: str | None, kind: str, data: Mapping[str, str], now: dt.datetime
) -> None:
    """Queue the answer; if that fails, undo the claim (Slack will retry the event) and answer 503."""
    queue: AnswerQueue = request.app.state.jobs
    try:
        await queue.defer_slack(kind, data, now)
    except Exception:  # noqa: BLE001  (the queue's database is down: let Slack retry)
        log.exception("slack.not_queued kind=%s", kind)
        if claim is not None:
            try:
                await rt.release_event(claim)
            except Exception:  # noqa: BLE001  (the database is down too: the event stays claimed, logged here)
                log.error("slack.claim_not_released event=%s", claim)
        raise NotQueued("the answer could not be queued: try again") from None


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
    await _answer_later(request, rt, event_id, "message", asdict(msg), now)
    return ACK


@router.post("/commands", summary="The /lumo slash command")
async def commands(request: Request, body: VerifiedBody) -> dict[str, str]:
    form = _form(body)
    text, user, channel = handlers.plain_text(form.get("text", "")), form.get("user_id", ""), form.get("channel_id", "")
    if not text:
        return _ephemeral(handlers.HELP)
    rt, now = _runtime(request), _now(request)
    if not await _first_delivery(request, rt, now):
        log.warning("slack.replayed_command user=%s channel=%s", user, channel)
        return _ephemeral(handlers.ALREADY_RECEIVED)
    scope = await rt.scope_for_slack_user(user) if user else None
    if scope is None:
        log.info("slack.unknown_user user=%s", user)
        return _ephemeral(handlers.REFUSAL)
    if not channel:
        raise BadPayload("channel_id is missing")
    log.info("slack.command user=%s channel=%s", user, channel)
    await _answer_later(request, rt, None, "command", {"user": user, "channel": channel, "text": text, "thread_ts": ""}, now)
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
        await _answer_later(request, rt, None, "click", asdict(click), now)
    return Response(status_code=200)
