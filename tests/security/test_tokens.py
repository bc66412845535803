"""Tokens and the API's error contract: 401 says Bearer, tokens can be revoked and can expire; the spec documents
every error status and the date format; a status edit to `paid` says it records no payment; the reply after an
edit names what was really done."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.cli import main as cli_main
from lumo.config import Settings
from lumo.db.models import ApiToken, Payment
from tests.agent_support import NOW, TODAY, build_book

DATE = TODAY.isoformat()
PAY_1042 = "mark INV-1042 as paid because the wire arrived"


@pytest.fixture
def token(session: Session) -> str:
    build_book(session)
    minted = create_token(session, "u1@acme.test", NOW, "test")
    session.commit()
    return minted


@pytest.fixture
def client(db_url: str, token: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"}), raise_server_exceptions=False) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def lumo(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db_url: str, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    monkeypatch.setattr(sys, "argv", ["lumo", *args])
    code = 0
    try:
        cli_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    out, err = capsys.readouterr()
    return code, out + err


# --- 401 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer lumo_not-a-token"}, {"Authorization": "Basic dTE6cHc="}])
def test_a_401_says_which_scheme_to_use(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/v1/priorities", headers=headers)
    assert response.status_code == 401 and set(response.json()) == {"error"}
    assert response.headers["www-authenticate"] == "Bearer"


# --- revoke and expiry -----------------------------------------------------------------------------


def test_tokens_revoke_by_value_ends_access_at_once(
    client: TestClient, token: str, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert client.get("/v1/priorities", params={"date": DATE}, headers=bearer(token)).status_code == 200
    code, out = lumo(monkeypatch, capsys, db_url, "tokens", "revoke", token)
    assert code == 0 and "revoked 1 token(s)" in out
    assert client.get("/v1/priorities", params={"date": DATE}, headers=bearer(token)).status_code == 401
    code, out = lumo(monkeypatch, capsys, db_url, "tokens", "revoke", token)
    assert code == 3 and out.strip() == "error: no such active token"


def test_tokens_revoke_by_user_and_name_leaves_the_others(
    client: TestClient,
    token: str,
    session: Session,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    laptop = create_token(session, "u1@acme.test", NOW, "laptop")
    session.commit()
    code, out = lumo(monkeypatch, capsys, db_url, "tokens", "revoke", "--user", "u1@acme.test", "--name", "laptop")
    assert code == 0 and "revoked 1 token(s)" in out
    assert client.get("/v1/priorities", params={"date": DATE}, headers=bearer(laptop)).status_code == 401
    assert client.get("/v1/priorities", params={"date": DATE}, headers=bearer(token)).status_code == 200
    assert lumo(monkeypatch, capsys, db_url, "tokens", "revoke")[0] == 2  # neither a token nor a user


def test_an_expired_token_gets_401(client: TestClient, session: Session) -> None:
    now = dt.datetime.now(dt.UTC)
    expired = create_token(session, "u1@acme.test", now - dt.timedelta(days=2), "old", expires_at=now - dt.timedelta(minutes=1))
    fresh = create_token(session, "u1@acme.test", now, "new", expires_at=now + dt.timedelta(days=1))
    session.commit()
    response = client.get("/v1/priorities", params={"date": DATE}, headers=bearer(expired))
    assert response.status_code == 401 and response.json() == {"error": "invalid, revoked or expired token"}
    assert client.get("/v1/priorities", params={"date": DATE}, headers=bearer(fresh)).status_code == 200


def test_tokens_create_takes_an_expiry(
    token: str,
    session_factory: sessionmaker[Session],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = lumo(
        monkeypatch, capsys, db_url, "tokens", "create", "--user", "u1@acme.test", "--name", "ci", "--expires", "30d"
    )
    assert code == 0 and out.strip().splitlines()[-1].startswith("lumo_")
    with session_factory() as s:
        expires = s.scalar(select(ApiToken.expires_at).where(ApiToken.name == "ci"))
    assert expires is not None and abs(expires - (dt.datetime.now(dt.UTC) + dt.timedelta(days=30))) < dt.timedelta(minutes=5)
    for bad in ("2020-01-01", "0d", "soon"):
        code, out = lumo(monkeypatch, capsys, db_url, "tokens", "create", "--user", "u1@acme.test", "--expires", bad)
        assert code == 2 and len(out.strip().splitlines()) == 1 and "Traceback" not in out


# --- the spec --------------------------------------------------------------------------------------


def test_the_spec_documents_every_error_status_and_the_date_format(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in methods.items():
            assert {"400", "401", "404", "409", "413", "503"} <= set(op["responses"]), f"{method} {path}"
    [date] = [p for p in spec["paths"]["/v1/priorities"]["get"]["parameters"] if p["name"] == "date"]
    body_date = spec["components"]["schemas"]["ChatRequest"]["properties"]["date"]
    for schema in (date["schema"], body_date):
        [text] = [s for s in schema["anyOf"] if s.get("type") == "string"]
        assert text["format"] == "date" and "YYYY-MM-DD" in (schema.get("description") or date.get("description", ""))


# --- paid without a payment; the reply after an edit ---------------------------------------------


def chat(client: TestClient, token: str, message: str) -> dict[str, Any]:
    response = client.post("/v1/chat", json={"message": message, "date": DATE}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


def decide(client: TestClient, token: str, thread_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/threads/{thread_id}/decision", json={"date": DATE, **body}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


def test_marking_paid_without_a_payment_says_it_records_none(
    client: TestClient, token: str, session_factory: sessionmaker[Session]
) -> None:
    asked = chat(client, token, PAY_1042)
    [action] = asked["pending_actions"]
    assert "records no payment: EUR 12,400.00 stays unpaid" in action["description"]
    done = decide(client, token, asked["thread_id"], decision="approve")
    assert "No payment was recorded" in done["reply"]
    with session_factory() as s:
        assert s.scalars(select(Payment)).all() == []


def test_the_reply_after_an_edit_names_the_edited_subject_and_reason(client: TestClient, token: str) -> None:
    asked = chat(client, token, "Send the reminder for INV-1042")
    [action] = asked["pending_actions"]
    assert action["tool"] == "send_email"
    done = decide(client, token, asked["thread_id"], decision="edit", args={"subject": "INV-1042: a quick word"})
    assert '"INV-1042: a quick word"' in done["reply"] and action["args"]["subject"] not in done["reply"]

    asked = chat(client, token, PAY_1042)
    done = decide(client, token, asked["thread_id"], decision="edit", args={"reason": "remittance advice received"})
    assert "(remittance advice received)" in done["reply"] and "wire arrived" not in done["reply"]
