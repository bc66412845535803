"""The grounding guard checks a rep's edited email too: a mismatch is shown before anything is queued, and
sending it anyway takes an explicit, logged decision."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.db.models import OutboxEmail
from tests.agent_support import approve, ask, build_book, open_lumo, scope_of


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    return build_book(session)


def _queued(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(OutboxEmail)) or 0


BAD_BODY = "Hi Gavin, INV-2001 for USD 5,000.00 was due on 2026-10-01. Please pay."


async def test_an_edited_email_with_facts_not_in_the_invoice_is_held_until_approved_anyway(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Send the reminder for INV-2001")
        [action] = out["pending_actions"]
        held = await approve(lumo, scope, out["thread_id"], action_id=action["id"], edit={"body": BAD_BODY})
        [again] = held["pending_actions"]
        assert again["id"] == action["id"] and again["args"]["body"] == BAD_BODY
        assert "Not sent" in again["description"] and "5,000.00" in again["description"] and "2026-10-01" in again["description"]
        assert _queued(session_factory) == 0
        still = await approve(lumo, scope, out["thread_id"])  # a plain approval is not enough
        assert still["pending_actions"] and _queued(session_factory) == 0
        with caplog.at_level(logging.WARNING, logger="lumo.agent"):
            sent = await approve(lumo, scope, out["thread_id"], approve_anyway=True)
    assert sent["pending_actions"] == [] and _queued(session_factory) == 1
    assert any("Approved anyway" in n and "5,000.00" in n for n in sent["notes"])
    assert any("agent.guard_override" in r.getMessage() for r in caplog.records)
    with session_factory() as s:
        assert s.scalar(select(OutboxEmail.body)) == BAD_BODY


async def test_an_edit_that_matches_the_facts_is_queued_at_once(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Send the reminder for INV-2001")
        done = await approve(lumo, scope, out["thread_id"], edit={"subject": "INV-2001: a quick reminder"})
    assert done["pending_actions"] == [] and _queued(session_factory) == 1


async def test_a_held_edit_can_be_rejected(db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Send the reminder for INV-2001")
        await approve(lumo, scope, out["thread_id"], edit={"body": BAD_BODY})
        done = await approve(lumo, scope, out["thread_id"], reject="I will rewrite it")
    assert done["pending_actions"] == [] and _queued(session_factory) == 0


def test_http_approve_anyway_is_an_explicit_field(db_url: str, session: Session, session_factory: sessionmaker[Session]) -> None:
    from fastapi.testclient import TestClient

    from lumo.api.app import create_app
    from lumo.auth import create_token
    from lumo.config import Settings
    from tests.agent_support import NOW

    build_book(session)
    token = create_token(session, "u1@acme.test", NOW, "test")
    session.commit()
    app = create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        out = client.post("/v1/chat", json={"message": "Send the reminder for INV-2001", "date": "2026-11-25"}).json()
        url = f"/v1/threads/{out['thread_id']}/decision"
        held = client.post(url, json={"decision": "edit", "args": {"body": BAD_BODY}, "date": "2026-11-25"}).json()
        assert "Not sent" in held["pending_actions"][0]["description"] and _queued(session_factory) == 0
        sent = client.post(url, json={"decision": "approve", "approve_anyway": True, "date": "2026-11-25"})
    assert sent.status_code == 200 and sent.json()["pending_actions"] == [] and _queued(session_factory) == 1
