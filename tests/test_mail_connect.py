"""Connecting a rep's own mailbox: the OAuth code flow with mocked token endpoints, the grant kept encrypted."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import respx
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.config import Settings
from lumo.crm.errors import InvalidInput
from lumo.db.models import Mailbox
from lumo.mail import connect
from lumo.mail.secrets import Vault
from tests.clients import run_cli
from tests.factories import NOON, basic_book
from tests.mail_support import CONFIG, GOOGLE_TOKEN, GRAPH, KEY, gmail_providers, microsoft_login, ok

NOW = NOON


def _state(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


@responses.activate
def test_gmail_callback_keeps_the_refresh_token_encrypted_and_starts_the_cursor(session: Session) -> None:
    book = basic_book(session)
    providers = gmail_providers(ok({"emailAddress": "u1@acme.test", "historyId": "4242"}))
    url = connect.start(providers, "gmail", book["u1"], now=NOW)
    query = parse_qs(urlsplit(url).query)
    assert query["access_type"] == ["offline"] and query["redirect_uri"] == ["https://lumo.acme.test/mail/callback/gmail"]
    scopes = " ".join(["https://www.googleapis.com/auth/gmail.send", "https://www.googleapis.com/auth/gmail.readonly"])
    token = responses.post(
        GOOGLE_TOKEN,
        json={
            "access_token": "ya29.a",
            "refresh_token": "1//secret-rt",
            "expires_in": 3599,
            "scope": scopes,
            "token_type": "Bearer",
        },
    )
    box = connect.finish(session, providers, "gmail", code="4/code", state=query["state"][0], now=NOW + dt.timedelta(minutes=2))
    assert (box.provider, box.address, box.cursor, box.status) == ("gmail", "u1@acme.test", "4242", "connected")
    assert "1//secret-rt" not in box.refresh_token and Vault(KEY).open(box.refresh_token) == "1//secret-rt"
    sent = parse_qs(str(token.calls[0].request.body))
    assert sent["code"] == ["4/code"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(sent["code_verifier"][0].encode()).digest()).rstrip(b"=").decode()
    assert query["code_challenge"] == [challenge]  # PKCE: the verifier travelled sealed in the state
    profile_call = providers.gmail_http.request_sequence[0]
    assert profile_call[0].endswith("/gmail/v1/users/me/profile?alt=json") and profile_call[3]["authorization"] == "Bearer ya29.a"


def test_a_stale_or_forged_state_is_refused(session: Session) -> None:
    book = basic_book(session)
    providers = gmail_providers()
    state = _state(connect.start(providers, "gmail", book["u1"], now=NOW))
    with pytest.raises(InvalidInput, match="expired or was not started here"):
        connect.finish(session, providers, "gmail", code="c", state=state, now=NOW + dt.timedelta(minutes=11))
    with pytest.raises(InvalidInput, match="expired or was not started here"):
        connect.finish(session, providers, "gmail", code="c", state=state[:-4] + "AAAA", now=NOW)
    with pytest.raises(InvalidInput, match="started for gmail, not outlook"):
        connect.finish(session, providers, "outlook", code="c", state=state, now=NOW)


def test_an_unconfigured_provider_or_key_is_one_clear_line(session: Session) -> None:
    book = basic_book(session)
    from lumo.mail.config import MailConfig
    from lumo.mail.providers import Providers

    with pytest.raises(InvalidInput, match="LUMO_GOOGLE_CLIENT_ID"):
        connect.start(Providers(MailConfig(token_key=KEY)), "gmail", book["u1"], now=NOW)
    with pytest.raises(InvalidInput, match="LUMO_MAIL_TOKEN_KEY is not set"):
        connect.start(
            Providers(MailConfig(token_key="", google_client_id="g", google_client_secret="s")), "gmail", book["u1"], now=NOW
        )
    with pytest.raises(InvalidInput, match="unknown mail provider 'yahoo'"):
        connect.start(Providers(CONFIG), "yahoo", book["u1"], now=NOW)


def _settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        mail_token_key=KEY,
        microsoft_client_id="mid",
        microsoft_client_secret="msecret",
        public_url="https://lumo.acme.test",
    )


def test_outlook_connect_over_http_start_then_callback(db_url: str, session: Session) -> None:
    basic_book(session)
    token = create_token(session, "u1@acme.test", NOW, "test")
    session.commit()
    app = create_app(_settings(db_url), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as c, respx.mock(assert_all_called=True) as router:
        login = microsoft_login(router, refresh_token="m-rt-1")
        me = router.get(f"{GRAPH}/me").respond(json={"mail": "u1@acme.test", "userPrincipalName": "u1@acme.onmicrosoft.com"})
        started = c.post("/v1/mail/connect/outlook", headers={"Authorization": f"Bearer {token}"})
        assert started.status_code == 200, started.text
        url = started.json()["authorization_url"]
        assert url.startswith("https://login.microsoftonline.com/common/oauth2/v2.0/authorize?")
        assert "Mail.Send" in url and "offline_access" in url
        back = c.get("/mail/callback/outlook", params={"code": "m-code", "state": _state(url)})
        assert back.status_code == 200 and "Connected u1@acme.test" in back.text
        assert parse_qs(login.calls[0].request.content.decode())["code"] == ["m-code"]
        assert me.calls[0].request.headers["Authorization"] == "Bearer m-at"
        forged = c.get("/mail/callback/outlook", params={"code": "m-code", "state": "nope"})
        assert forged.status_code == 422 and "connect again" in forged.json()["error"]
        status = c.get("/v1/mail/status", headers={"Authorization": f"Bearer {token}"})
        assert status.json() == {"provider": "outlook", "address": "u1@acme.test", "status": "connected"}
    session.expire_all()
    box = session.scalars(select(Mailbox)).one()
    assert Vault(KEY).open(box.refresh_token) == "m-rt-1" and box.cursor is None


def test_lumo_mail_status_and_disconnect(
    db_url: str, session: Session, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    book = basic_book(session)
    vault = Vault(KEY)
    session.add(
        Mailbox(
            user_id=book["u1"].id,
            provider="gmail",
            address="u1@acme.test",
            refresh_token=vault.seal("rt"),
            status="connected",
            connected_at=NOW,
        )
    )
    session.commit()
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    code, out, _ = run_cli(monkeypatch, capsys, "mail", "status", "--json")
    rows: list[dict[str, Any]] = json.loads(out)
    assert code == 0 and [(r["user"], r["provider"], r["status"]) for r in rows] == [("u1@acme.test", "gmail", "connected")]
    code, out, _ = run_cli(monkeypatch, capsys, "mail", "disconnect", "--user", "u1@acme.test")
    assert code == 0 and "disconnected gmail mailbox u1@acme.test" in out
    code, out, err = run_cli(monkeypatch, capsys, "mail", "disconnect", "--user", "u1@acme.test")
    assert code == 3 and err.strip() == "error: u1@acme.test has no connected mailbox"
    code, out, _ = run_cli(monkeypatch, capsys, "mail", "status")
    assert out.strip() == "no connected mailboxes: emails leave by SMTP"


def test_lumo_mail_connect_outlook_asks_for_the_address_it_was_sent_back_to(
    db_url: str, session: Session, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    basic_book(session)
    session.commit()
    for name, value in {
        "LUMO_DATABASE_URL": db_url,
        "LUMO_MAIL_TOKEN_KEY": KEY,
        "LUMO_MICROSOFT_CLIENT_ID": "mid",
        "LUMO_MICROSOFT_CLIENT_SECRET": "msecret",
        "LUMO_PUBLIC_URL": "https://lumo.acme.test",
    }.items():
        monkeypatch.setenv(name, value)
    shown: list[str] = []

    def paste(text: str) -> str:  # the rep opens the printed address, consents, and pastes where they landed
        url = capsys.readouterr().out.strip().splitlines()[-1]
        shown.append(url)
        return f"https://lumo.acme.test/mail/callback/outlook?code=m-code&state={_state(url)}&session_state=x"

    monkeypatch.setattr(typer, "prompt", paste)
    with respx.mock(assert_all_called=True) as router:
        microsoft_login(router, refresh_token="m-rt-cli")
        router.get(f"{GRAPH}/me").respond(json={"mail": "u1@acme.test"})
        code, out, err = run_cli(monkeypatch, capsys, "mail", "connect", "outlook", "--user", "u1@acme.test")
    assert code == 0, err
    assert shown[0].startswith("https://login.microsoftonline.com/common/oauth2/v2.0/authorize?")
    assert out.strip() == "connected outlook mailbox u1@acme.test for u1@acme.test: approved emails now leave from it"
    session.expire_all()
    assert Vault(KEY).open(session.scalars(select(Mailbox.refresh_token)).one()) == "m-rt-cli"
    code, out, err = run_cli(monkeypatch, capsys, "mail", "connect", "yahoo", "--user", "u1@acme.test")
    assert code == 2 and err.strip() == "error: unknown mail provider 'yahoo': use gmail or outlook"
