"""A transient failure while an approved action runs (a locked database, a dropped connection) leaves the action
pending and retryable; only a definitive refusal consumes it. A NUL in edited arguments is a clear 4xx."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lumo.agent.decisions import AlreadyDecided
from lumo.agent.service import Lumo
from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.config import Settings
from lumo.db.models import Invoice
from tests.agent_support import NOW, TODAY, approve, ask, build_book, open_lumo, scope_of
from tools import REGISTRY

PAY_1042 = "mark INV-1042 as paid because the wire arrived"
FAULTS = {
    "sqlite locked": OperationalError("UPDATE invoices", {}, sqlite3.OperationalError("database is locked")),
    "postgres dropped": OperationalError("UPDATE invoices", {}, psycopg.OperationalError("server closed the connection")),
}


@pytest.fixture
async def lumo(db_url: str, session: Session, session_factory: sessionmaker[Session]) -> AsyncIterator[Lumo]:
    build_book(session)
    async with open_lumo(db_url, session_factory, None) as opened:
        yield opened


def fail_once(monkeypatch: pytest.MonkeyPatch, tool_name: str, fault: Exception) -> list[int]:
    """The tool's next run hits `fault` (as the database would raise it), later runs are normal."""
    tool, calls = REGISTRY[tool_name], []

    def flaky(ctx: Any, args: Any, session: Session) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise fault
        return tool.run(ctx, args, session)

    monkeypatch.setitem(REGISTRY, tool_name, replace(tool, run=flaky))
    return calls


def status_of(factory: sessionmaker[Session], number: str) -> str | None:
    with factory() as s:
        return s.scalar(select(Invoice.status).where(Invoice.number == number))


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_a_transient_failure_leaves_the_action_pending(
    lumo: Lumo, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, fault: Exception
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    asked = await ask(lumo, scope, PAY_1042)
    [action] = asked["pending_actions"]
    calls = fail_once(monkeypatch, "update_invoice_status", fault)
    first = await approve(lumo, scope, asked["thread_id"])
    assert [a["id"] for a in first["pending_actions"]] == [action["id"]]  # still waiting, same action
    assert first["reply"].startswith("I could not do it just now") and "approve again" in first["reply"]
    assert status_of(session_factory, "INV-1042") == "sent"
    second = await approve(lumo, scope, asked["thread_id"])
    assert second["pending_actions"] == [] and "changed from 'sent' to 'paid'" in second["reply"]
    assert status_of(session_factory, "INV-1042") == "paid" and len(calls) == 2


async def test_a_definitive_refusal_consumes_the_action(lumo: Lumo, session_factory: sessionmaker[Session]) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    asked = await ask(lumo, scope, PAY_1042)
    with session_factory() as s:  # someone else marked it paid meanwhile: the action can never run
        s.execute(update(Invoice).where(Invoice.number == "INV-1042").values(status="paid"))
        s.commit()
    done = await approve(lumo, scope, asked["thread_id"])
    assert done["pending_actions"] == [] and "already 'paid'" in done["reply"]
    with pytest.raises(AlreadyDecided) as again:
        await approve(lumo, scope, asked["thread_id"])
    assert again.value.body["outcome"]["result"] == "failed"


# --- NUL in edited arguments, over HTTP on both dialects ---------------------------------------------


@pytest.fixture
def client(db_url: str, session: Session) -> Iterator[tuple[TestClient, dict[str, str]]]:
    build_book(session)
    token = create_token(session, "u1@acme.test", NOW, "test")
    session.commit()
    with TestClient(create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"}), raise_server_exceptions=False) as c:
        yield c, {"Authorization": f"Bearer {token}"}


def test_a_nul_in_edited_arguments_is_a_422_and_the_action_waits(
    client: tuple[TestClient, dict[str, str]], session_factory: sessionmaker[Session]
) -> None:
    http, headers = client
    date = TODAY.isoformat()
    asked = http.post("/v1/chat", json={"message": PAY_1042, "date": date}, headers=headers).json()
    decision = f"/v1/threads/{asked['thread_id']}/decision"
    for args in ({"reason": "wire\u0000arrived"}, {"reason": "ok", "extra\u0000": 1}):
        response = http.post(decision, json={"decision": "edit", "args": args, "date": date}, headers=headers)
        assert response.status_code == 422 and response.json() == {"error": "the edited arguments contain a NUL character"}
    waiting = http.get(f"/v1/threads/{asked['thread_id']}", headers=headers).json()["pending_actions"]
    assert [a["id"] for a in waiting] == [a["id"] for a in asked["pending_actions"]]
    done = http.post(decision, json={"decision": "approve", "date": date}, headers=headers)
    assert done.status_code == 200 and status_of(session_factory, "INV-1042") == "paid"
