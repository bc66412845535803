"""Connecting a rep's own mailbox from the web app: start (the consent URL) and the provider's callback.

The callback (/mail/callback/<provider>, outside /v1) carries no bearer token, as a provider's redirect
cannot: who asked is in the sealed `state` that `start` made (lumo.mail.secrets), which expires and cannot
be forged.
"""

from __future__ import annotations

import asyncio
import html
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from lumo.agent.contracts import TurnResult
from lumo.api.deps import CurrentScope, LumoDep, Now, RowId
from lumo.api.openapi import ERRORS
from lumo.api.schemas import ChatResponse
from lumo.crm.lifecycle import AsOf
from lumo.db.models import User
from lumo.mail import connect
from lumo.mail.config import MailConfig
from lumo.mail.providers import Providers
from lumo.mail.sync import pending_replies, reply_calls, reply_of

router = APIRouter(prefix="/v1/mail", tags=["mail"], responses=ERRORS)
# Not under /v1: a browser lands here from the provider's consent page (like a webhook, it is no API read).
callbacks = APIRouter(prefix="/mail", tags=["mail"])


class ConnectStart(BaseModel):
    authorization_url: str


class MailboxState(BaseModel):
    provider: str | None
    address: str | None
    status: str  # connected | needs_reconnect | none (emails leave by SMTP)


def _config(request: Request) -> MailConfig:
    return MailConfig.from_settings(request.app.state.settings)


@router.post("/connect/{provider}", response_model=ConnectStart, summary="Start connecting your Gmail or Outlook mailbox")
def connect_start(provider: str, request: Request, scope: CurrentScope, now: Now) -> ConnectStart:
    """Open `authorization_url`, consent, and the provider sends you back to the callback, which connects it."""
    with request.app.state.session_factory() as session:
        user = session.get(User, scope.user_id)
        assert user is not None, "a scope's user exists"
        return ConnectStart(authorization_url=connect.start(Providers(_config(request)), provider, user, now=now))


@callbacks.get("/callback/{provider}", response_class=HTMLResponse, summary="Where the provider sends the rep back")
async def connect_callback(
    provider: str,
    request: Request,
    now: Now,
    state: Annotated[str, Query(max_length=4000)] = "",
    code: Annotated[str, Query(max_length=4000)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """Exchanges the code for a refresh token, kept encrypted; a refusal or a stale sign-in is a 4xx."""
    if error:
        return HTMLResponse(f"<p>Not connected: the provider said {html.escape(error)}.</p>", status_code=400)

    def finish() -> str:
        with request.app.state.session_factory() as session:
            box = connect.finish(session, Providers(_config(request)), provider, code=code, state=state, now=now)
            address = box.address
            session.commit()
            return address

    address = await asyncio.to_thread(finish)
    return HTMLResponse(f"<p>Connected {html.escape(address)}: your approved emails now leave from it.</p>")


@router.get("/status", response_model=MailboxState, summary="Your connected mailbox, if any")
def mail_status(request: Request, scope: CurrentScope) -> MailboxState:
    with request.app.state.session_factory() as session:
        box = connect.mailbox_of(session, scope.user_id)
        if box is None:
            return MailboxState(provider=None, address=None, status="none")
        return MailboxState(provider=box.provider, address=box.address, status=box.status)


class Reply(BaseModel):
    id: int
    from_address: str
    received_at: str
    invoice_numbers: list[str]
    meaning: str  # paid_claim | dispute | promise | question | other
    excerpt: str
    proposals: list[dict[str, Any]]  # tool calls ({tool, args}) that wait for approval once proposed


class Replies(BaseModel):
    replies: list[Reply]


@router.get("/replies", response_model=Replies, summary="Your customers' replies, newest first, with what each suggests")
def list_replies(request: Request, scope: CurrentScope) -> Replies:
    with request.app.state.session_factory() as session:
        return Replies(
            replies=[
                Reply(
                    id=m.id,
                    from_address=m.from_address,
                    received_at=m.received_at.isoformat(),
                    invoice_numbers=m.invoice_numbers.split(",") if m.invoice_numbers else [],
                    meaning=m.meaning,
                    excerpt=m.excerpt,
                    proposals=json.loads(m.proposals),
                )
                for m in pending_replies(session, scope.user_id)
            ]
        )


@router.post("/replies/{reply_id}/propose", response_model=ChatResponse, summary="Propose what a reply suggests")
async def propose_reply(reply_id: RowId, request: Request, scope: CurrentScope, lumo: LumoDep, now: Now) -> TurnResult:
    """The actions wait for a decision (`POST /v1/threads/{id}/decision`); nothing is applied here."""
    as_of = AsOf.given(None, now, scope.tz)

    def calls() -> list[tuple[str, dict[str, Any]]]:
        with request.app.state.session_factory() as session:
            return reply_calls(reply_of(session, scope.user_id, reply_id), as_of.today)

    proposed = await asyncio.to_thread(calls)
    return await lumo.propose(scope, proposed, message=f"(api) reply #{reply_id}", as_of=as_of, now=now)
