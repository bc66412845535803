"""Connecting a rep's own mailbox from the web app: start (the consent URL) and the provider's callback.

The callback (/mail/callback/<provider>, outside /v1) carries no bearer token, as a provider's redirect
cannot: who asked is in the sealed `state` that `start` made (lumo.mail.secrets), which expires and cannot
be forged.
"""

from __future__ import annotations

import asyncio
import html
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from lumo.api.deps import CurrentScope, Now
from lumo.api.openapi import ERRORS
from lumo.db.models import User
from lumo.mail import connect
from lumo.mail.config import MailConfig
from lumo.mail.providers import Providers

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
