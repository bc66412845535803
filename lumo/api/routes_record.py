"""Recording what customers said, and fixing stale statuses: proposed actions that wait for a decision.

Each route starts (or continues) a thread whose actions are decided with `POST /v1/threads/{id}/decision`,
exactly like the actions Lumo proposes in chat.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from lumo.agent.contracts import TurnResult
from lumo.api.deps import CurrentScope, LumoDep, Now
from lumo.api.openapi import DATE_HELP, ERRORS, DateText
from lumo.api.schemas import ChatResponse, ThreadId
from lumo.crm.invoices import actionable_rows
from lumo.crm.lifecycle import AsOf
from lumo.crm.stale import fix_calls, stale_findings

router = APIRouter(prefix="/v1", tags=["record"], responses=ERRORS)
RecordTool = Literal["record_promise", "record_payment", "open_dispute", "resolve_dispute", "log_call"]


class RecordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: RecordTool = Field(description="What to record.")
    args: dict[str, Any] = Field(description="The tool's arguments, e.g. {invoice_number, date, amount} for a promise.")
    thread_id: str | None = ThreadId
    date: DateText | None = Field(default=None, description=f"The day it is, {DATE_HELP}.")


class FixStaleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thread_id: str | None = ThreadId
    date: DateText | None = Field(default=None, description=f"The day it is, {DATE_HELP}.")
    limit: int = Field(default=50, ge=1, le=200, description="At most this many fixes.")


@router.post("/record", response_model=ChatResponse, summary="Propose recording a promise, payment, dispute or call")
async def record(body: RecordRequest, scope: CurrentScope, lumo: LumoDep, now: Now) -> TurnResult:
    """The action waits for approval; a bad argument or an invoice outside your book is a 4xx."""
    as_of = AsOf.given(body.date, now, scope.tz)
    message = f"(api) {body.tool} {body.args.get('invoice_number', '')}".strip()
    return await lumo.propose(scope, [(body.tool, body.args)], message=message, as_of=as_of, now=now, thread_id=body.thread_id)


@router.post("/stale/fix", response_model=ChatResponse, summary="Propose the fix of every stale status together")
async def fix_stale(body: FixStaleRequest, scope: CurrentScope, lumo: LumoDep, now: Now) -> TurnResult:
    """One thread, one action per fix: approve all, or some by action id, reject the rest."""
    as_of = AsOf.given(body.date, now, scope.tz)

    def findings() -> list[dict[str, Any]]:
        with lumo.session_factory() as session:
            return [f.as_json() for f in stale_findings(actionable_rows(session, scope), as_of)]

    calls = fix_calls(await asyncio.to_thread(findings), limit=body.limit)
    if not calls:
        reply = "No stale statuses: nothing to fix."
        return TurnResult(
            thread_id="", reply=reply, model="lumo-offline", items=[], drafts=[], pending_actions=[], usage={}, notes=[]
        )
    message = "(api) fix all my stale statuses"
    return await lumo.propose(scope, calls, message=message, as_of=as_of, now=now, thread_id=body.thread_id)
