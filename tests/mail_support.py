"""Helpers for the mailbox tests: Gmail mocked with googleapiclient's HttpMockSequence over a saved discovery
document, Microsoft's sign-in and Graph with respx (msal and our Graph client speak httpx 0.x: plain respx),
Google's token endpoint (requests, under google-auth-oauthlib) with `responses`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import respx
from cryptography.fernet import Fernet
from googleapiclient.http import HttpMockSequence

from lumo.mail.config import MailConfig
from lumo.mail.providers import Providers

KEY = Fernet.generate_key().decode()
CONFIG = MailConfig(
    token_key=KEY,
    google_client_id="gid.apps.googleusercontent.com",
    google_client_secret="gsecret",
    microsoft_client_id="mid",
    microsoft_client_secret="msecret",
    public_url="https://lumo.acme.test",
)
DISCOVERY = (Path(__file__).parent / "data" / "gmail.v1.json").read_text()
LOGIN = "https://login.microsoftonline.com/common"
GRAPH = "https://graph.microsoft.com/v1.0"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"
OPENID = {
    "authorization_endpoint": f"{LOGIN}/oauth2/v2.0/authorize",
    "token_endpoint": f"{LOGIN}/oauth2/v2.0/token",
    "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
}


def ok(body: dict[str, Any], status: int = 200, **headers: str) -> tuple[dict[str, str], str]:
    """One response of an HttpMockSequence."""
    return ({"status": str(status), **{k.lower(): v for k, v in headers.items()}}, json.dumps(body))


def google_token(access: str = "ya29.fresh") -> tuple[dict[str, str], str]:
    return ok({"access_token": access, "expires_in": 3599, "token_type": "Bearer"})


def gmail_providers(*responses: tuple[dict[str, str], str], slept: list[float] | None = None) -> Providers:
    sleeps = slept if slept is not None else []
    return Providers(CONFIG, gmail_http=HttpMockSequence(list(responses)), gmail_discovery=DISCOVERY, sleep=sleeps.append)


def gmail_requests(providers: Providers) -> list[tuple[str, str, Any, Any]]:
    """What the Gmail client sent: (uri, method, body, headers), in order."""
    sent: list[tuple[str, str, Any, Any]] = providers.gmail_http.request_sequence
    return sent


def microsoft_login(router: respx.MockRouter, *, refresh_token: str = "m-rt-2", error: str | None = None) -> respx.Route:
    router.get(f"{LOGIN}/v2.0/.well-known/openid-configuration").respond(json=OPENID)
    body: dict[str, Any] = (
        {"error": error, "error_description": "AADSTS70000: The grant was revoked.\r\nTrace ID: x"}
        if error
        else {"access_token": "m-at", "refresh_token": refresh_token, "expires_in": 3600, "token_type": "Bearer"}
    )
    return router.post(f"{LOGIN}/oauth2/v2.0/token").respond(400 if error else 200, json=body)


def connect_mailbox(session: Any, user_id: str, provider: str, address: str | None = None, cursor: str | None = None) -> Any:
    """A connected mailbox as `lumo mail connect` leaves it (refresh token sealed)."""
    import datetime as dt

    from lumo.db.models import Mailbox
    from lumo.mail.secrets import Vault

    box = Mailbox(
        user_id=user_id,
        provider=provider,
        address=address or f"{user_id}@acme.test",
        refresh_token=Vault(KEY).seal(f"{provider}-rt"),
        status="connected",
        cursor=cursor,
        connected_at=dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC),
    )
    session.add(box)
    session.flush()
    return box


def gmail_raw(body: Any) -> Any:
    """The message a Gmail users.messages.send request carried, parsed."""
    import base64
    import email
    import email.policy

    data = json.loads(body)
    return email.message_from_bytes(base64.urlsafe_b64decode(data["raw"]), policy=email.policy.default), data.get("threadId")


def graph_mime(content: bytes) -> Any:
    import base64
    import email
    import email.policy

    return email.message_from_bytes(base64.b64decode(content), policy=email.policy.default)


class RecordingSmtp:
    """The SMTP side of the outbox (not a provider): records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def new_message_id(self) -> str:
        return "<smtp-1@lumenbase.test>"

    def send(
        self,
        to: list[str],
        subject: str,
        text: str,
        html: str | None = None,
        cc: Sequence[str] = (),
        message_id: str | None = None,
        on_transmit: Callable[[], None] | None = None,
    ) -> None:
        if on_transmit is not None:
            on_transmit()
        self.sent.append({"to": to, "subject": subject, "message_id": message_id})
