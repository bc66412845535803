"""Request verification: Slack's v0 signature over the raw body, inside a 5-minute window."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.datastructures import State

from lumo.crm.errors import LumoError

log = logging.getLogger("lumo.slack")
WINDOW_SECONDS = 60 * 5  # Slack's own rule; SignatureVerifier enforces the same
TIMESTAMP_DIGITS = 12  # seconds since the epoch: 10 digits until the year 2286; longer is not Slack


class SlackUnauthorized(LumoError):
    http_status = 401


class SlackNotConfigured(LumoError):
    http_status = 503


class _InjectedClock(Clock):
    """The verifier's clock, read from the app so tests can move time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock()


def app_clock(state: State) -> Callable[[], float]:
    """`app.state.clock` (seconds since the epoch) when set, else the wall clock."""
    return getattr(state, "clock", time.time)


def check_signature(secret: str, clock: Callable[[], float], body: bytes, timestamp: str | None, signature: str | None) -> None:
    """Raise SlackUnauthorized unless the request is signed with `secret` and fresh."""
    if not timestamp or not signature:
        raise SlackUnauthorized("missing Slack signature")
    # A huge number would overflow the float arithmetic below (and in SignatureVerifier): refuse it first.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > TIMESTAMP_DIGITS:
        raise SlackUnauthorized("bad Slack request timestamp")
    if abs(clock() - int(timestamp)) > WINDOW_SECONDS:
        raise SlackUnauthorized("stale Slack request timestamp")
    verifier = SignatureVerifier(secret, clock=_InjectedClock(clock))
    try:
        valid = verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
    except ValueError:  # a body that is not UTF-8 cannot have been signed by Slack
        valid = False
    if not valid:
        raise SlackUnauthorized("invalid Slack signature")


async def verified_body(request: Request) -> bytes:
    """The raw body of a request Slack signed; the signature covers these exact bytes, so parse them, not a re-read."""
    secret = request.app.state.settings.slack_signing_secret
    if not secret.strip():
        raise SlackNotConfigured("Slack is not configured")
    body = await request.body()
    try:
        check_signature(
            secret,
            app_clock(request.app.state),
            body,
            request.headers.get("x-slack-request-timestamp"),
            request.headers.get("x-slack-signature"),
        )
    except SlackUnauthorized as exc:
        log.warning("slack.rejected path=%s reason=%s", request.url.path, exc)
        raise
    return body


VerifiedBody = Annotated[bytes, Depends(verified_body)]
