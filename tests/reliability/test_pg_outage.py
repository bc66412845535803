"""A database outage: /v1/* answer 503 with a message, a started stream ends with an `error` event, and after
recovery no request fails on a connection the server dropped (the engine's checkout check; the checkpointer
pool's check).

The PostgreSQL outage runs on a database of its own: connections to it are refused and its backends terminated,
while the shared server keeps serving everyone else."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.config import Settings
from lumo.crm.outage import DB_UNAVAILABLE
from lumo.db.migrate import upgrade
from lumo.db.session import make_engine, make_sessionmaker
from tests.agent_support import NOW, TODAY, build_book
from tests.conftest import PG_SKIP, PG_URL

DATE = TODAY.isoformat()


@pytest.fixture
def outage_db() -> Iterator[tuple[str, Any]]:
    """A migrated database of this test's own, and an admin engine that can cut it off."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    name = f"lumo_outage_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url, admin
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def cut_off(admin: Any, url: str) -> None:
    """The outage: new connections refused, every open one (the app's pools included) terminated."""
    name = make_url(url).database
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})


def restore(admin: Any, url: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{make_url(url).database}" WITH ALLOW_CONNECTIONS true'))


def seeded_token(url: str) -> str:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            build_book(session)
            token = create_token(session, "u1@acme.test", NOW, "test")
            session.commit()
    finally:
        engine.dispose()
    return token


def test_an_outage_is_503_and_recovery_has_no_dead_connections(outage_db: tuple[str, Any]) -> None:
    url, admin = outage_db
    headers = {"Authorization": f"Bearer {seeded_token(url)}"}
    app = create_app(Settings(database_url=url), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as client:
        warm = [
            client.post("/v1/chat", json={"message": "what should I do today?", "date": DATE}, headers=headers) for _ in range(4)
        ]
        assert [r.status_code for r in warm] == [200] * 4
        thread_id = warm[0].json()["thread_id"]

        cut_off(admin, url)
        during = [
            client.get("/v1/priorities", params={"date": DATE}, headers=headers),
            client.post("/v1/chat", json={"message": "what should I do today?", "date": DATE}, headers=headers),
            client.post("/v1/chat/stream", json={"message": "what should I do today?", "date": DATE}, headers=headers),
            client.get(f"/v1/threads/{thread_id}", headers=headers),
        ]
        for response in during:
            assert response.status_code == 503, response.text
            assert response.json() == {"error": DB_UNAVAILABLE}
        assert client.get("/readyz").status_code == 503

        restore(admin, url)
        after = []
        for i in range(26):
            if i % 3 == 0:
                after.append(client.get("/v1/priorities", params={"date": DATE}, headers=headers))
            elif i % 3 == 1:
                after.append(client.get(f"/v1/threads/{thread_id}", headers=headers))
            else:
                body = {"message": "what should I do today?", "date": DATE}
                after.append(client.post("/v1/chat", json=body, headers=headers))
        assert [r.status_code for r in after] == [200] * 26, [r.text for r in after if r.status_code != 200][:3]


# --- the stream, on either dialect ---------------------------------------------------------------------


@pytest.fixture
def client(db_url: str, session: Session) -> Iterator[tuple[TestClient, dict[str, str]]]:
    build_book(session)
    token = create_token(session, "u1@acme.test", NOW, "test")
    session.commit()
    with TestClient(create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"}), raise_server_exceptions=False) as c:
        yield c, {"Authorization": f"Bearer {token}"}


def events(raw: str) -> list[tuple[str, str]]:
    out, name = [], ""
    for line in raw.splitlines():
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            out.append((name, line.split(":", 1)[1].strip()))
    return out


def test_a_stream_cut_by_the_database_ends_with_an_error_event(
    client: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, headers = client
    lumo = http.app.state.lumo  # type: ignore[attr-defined]

    async def database_gone(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(lumo, "result", database_gone)  # the last step of a stream reads the saved thread
    response = http.post("/v1/chat/stream", json={"message": "what should I do today?", "date": DATE}, headers=headers)
    assert response.status_code == 200
    received = events(response.text)
    assert received[0][0] == "thread" and received[-1] == ("error", json.dumps({"error": DB_UNAVAILABLE}))
