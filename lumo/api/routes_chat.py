"""Chat: a turn as JSON or as a Server-Sent Events stream, and decisions on pending actions."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from lumo.agent.contracts import TurnResult
from lumo.api.deps import CurrentScope, LumoDep, Now
from lumo.api.openapi import ERRORS
from lumo.api.schemas import ChatRequest, ChatResponse, DecisionRequest
from lumo.crm.errors import InvalidInput, LumoError
from lumo.crm.lifecycle import AsOf
from lumo.crm.outage import DB_UNAVAILABLE, is_transient
from lumo.crm.scope import Scope
from lumo.web.threads import remember_thread

log = logging.getLogger("lumo.api")
router = APIRouter(prefix="/v1", tags=["chat"], responses=ERRORS)
HEARTBEAT_SECONDS = 15


def _as_of(scope: Scope, date: str | None, now: dt.datetime) -> AsOf:
    return AsOf.given(date, now, scope.tz)


@router.post("/chat", response_model=ChatResponse, summary="Run one chat turn")
async def chat(request: Request, body: ChatRequest, scope: CurrentScope, lumo: LumoDep, now: Now) -> TurnResult:
    """Ask Lumo; the reply may wait on pending actions that need a decision."""
    result = await lumo.ask(scope, body.message, as_of=_as_of(scope, body.date, now), now=now, thread_id=body.thread_id)
    await _remember(request, scope, result["thread_id"], body.message, now)
    return result


async def _remember(request: Request, scope: Scope, thread_id: str, message: str | None, now: dt.datetime) -> None:
    """List the thread among the user's recent ones (the web app's thread list): best effort, never fails a turn."""
    try:
        await asyncio.to_thread(remember_thread, request.app.state.session_factory, scope.user_id, thread_id, message, now)
    except Exception:  # noqa: BLE001  (the turn itself is saved; only its place in the list is missing)
        log.warning("web.thread_not_listed thread=%s", thread_id, exc_info=True)


@router.post(
    "/chat/stream", summary="Run one chat turn as Server-Sent Events", responses={200: {"content": {"text/event-stream": {}}}}
)
async def chat_stream(request: Request, body: ChatRequest, scope: CurrentScope, lumo: LumoDep, now: Now) -> EventSourceResponse:
    """Events: `thread`, one `step` per graph step, then `message` (the /v1/chat body); `error` on failure."""
    as_of = _as_of(scope, body.date, now)
    stream = await lumo.ask_stream(scope, body.message, as_of=as_of, now=now, thread_id=body.thread_id)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for event in stream:
                if event["event"] == "thread":
                    await _remember(request, scope, event["data"]["thread_id"], body.message, now)
                yield {"event": event["event"], "data": json.dumps(event["data"], default=str)}
        except LumoError as exc:
            yield {"event": "error", "data": json.dumps({"error": str(exc)})}
        except Exception as exc:  # noqa: BLE001  (the stream has started: end it with an event, not a reset)
            if not is_transient(exc):
                log.exception("api.stream_failed")
            yield {"event": "error", "data": json.dumps({"error": DB_UNAVAILABLE if is_transient(exc) else "internal error"})}

    return EventSourceResponse(events(), ping=HEARTBEAT_SECONDS)


@router.post("/threads/{thread_id}/decision", response_model=ChatResponse, summary="Approve, edit or reject")
async def decide(
    request: Request, thread_id: str, body: DecisionRequest, scope: CurrentScope, lumo: LumoDep, now: Now
) -> TurnResult:
    """Decide the actions a thread waits on, then continue the turn."""
    if body.decision == "edit" and not body.args:
        raise InvalidInput("an edit needs `args` with the changed arguments")
    result = await lumo.approve(
        scope,
        thread_id,
        as_of=_as_of(scope, body.date, now),
        now=now,
        action_id=body.action_id,
        edit=body.args if body.decision == "edit" else None,
        reject=(body.reason or "rejected by the rep") if body.decision == "reject" else None,
        approve_anyway=body.approve_anyway,
    )
    await _remember(request, scope, thread_id, None, now)
    return result


class HistoryEntry(BaseModel):
    role: Literal["user", "lumo"]
    text: str


class ThreadHistory(BaseModel):
    messages: list[HistoryEntry] = Field(description="Earlier questions and Lumo's answers, then the latest question.")


@router.get("/threads/{thread_id}/history", response_model=ThreadHistory, summary="A thread so far, for reopening it")
async def history(thread_id: str, scope: CurrentScope, lumo: LumoDep) -> dict[str, Any]:
    return {"messages": await lumo.history(scope, thread_id)}


@router.get("/threads/{thread_id}", response_model=ChatResponse, summary="A thread's latest turn")
async def thread(thread_id: str, scope: CurrentScope, lumo: LumoDep) -> TurnResult:
    return await lumo.result(scope, thread_id)
