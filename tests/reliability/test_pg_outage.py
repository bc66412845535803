"""A database outage: /v1/* answer 503 with a message, a started stream ends with an `error` event, and after
recovery no request fails on a connection the server dropped (the engine's checkout check; the checkpointer
pool's check).

The PostgreSQL outage runs on a database of its own: connections to it are refused and its backends terminated,
while the shared server keeps serving everyone else."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import respx
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
from tests.conftest import new_pg_database
from tests.llm_support import LLM_MOCKER

DATE = TODAY.isoformat()
LLM_URL = "http://llm.test/v1"


def completion(content: str | None, tool_calls: list[dict[str, Any]] | None = None) -> respx.MockResponse:
    message: dict[str, Any] = {"role": "assistant", "content": content} | ({"tool_calls": tool_calls} if tool_calls else {})
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
    return respx.MockResponse(
        200, json={"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice]}
    )


@pytest.fixture(scope="module")
def outage_server() -> Iterator[tuple[str, Any, str]]:
    """A migrated and seeded database of this module's own, an admin engine that can cut it off, u1's token."""
    with new_pg_database("lumo_outage") as (url, admin):
        upgrade(url)
        yield url, admin, seeded_token(url)


@pytest.fixture
def outage_db(outage_server: tuple[str, Any, str]) -> Iterator[tuple[str, Any, str]]:
    """The outage database, reachable again after each test whatever the test left it in (the tests only read it,
    or write threads of their own)."""
    url, admin, _ = outage_server
    try:
        yield outage_server
    finally:
        restore(admin, url)


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
    """Seed the book; u1's token."""
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            build_book(session)
            token = create_token(session, "u1@acme.test", NOW, "test")
            session.commit()
    finally:
        engine.dispose()
    return token


def test_an_outage_is_503_and_recovery_has_no_dead_connections(outage_db: tuple[str, Any, str]) -> None:
    url, admin, token = outage_db
    headers = {"Authorization": f"Bearer {token}"}
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


# --- a connection killed mid-request (pg_terminate_backend), on PostgreSQL ------------------------------------------


def backends(admin: Any, url: str, *, waiting_on_lock: bool = False) -> list[int]:
    """The server processes of the app's connections to its database (optionally: those blocked on a lock)."""
    query = "SELECT pid FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
    if waiting_on_lock:
        query += " AND wait_event_type = 'Lock'"
    with admin.connect() as conn:
        return list(conn.execute(text(query), {"n": make_url(url).database}).scalars())


def terminate(admin: Any, pids: list[int]) -> None:
    """End the backends and wait until they are gone (up to 5 s each), as they are by the time a model answers."""
    with admin.connect() as conn:
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


def wait_for(condition: Any, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_query_killed_mid_request_is_a_503_and_the_next_requests_succeed(outage_db: tuple[str, Any, str]) -> None:
    """The request's own connection is terminated while its query runs (held on a lock, so it is surely mid-query:
    the book's version is read first, and the invoices when the priorities are not kept already)."""
    url, admin, token = outage_db
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(Settings(database_url=url), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/v1/priorities", params={"date": DATE}, headers=headers).status_code == 200
        locker = create_engine(url)
        with locker.connect() as held, ThreadPoolExecutor(1) as pool:
            held.execute(text("LOCK TABLE book_versions, invoices IN ACCESS EXCLUSIVE MODE"))
            in_flight = pool.submit(client.get, "/v1/priorities", params={"date": DATE}, headers=headers)
            stuck = wait_for(lambda: backends(admin, url, waiting_on_lock=True), "the request to block on the lock")
            terminate(admin, stuck)
            response = in_flight.result(timeout=30)
            held.rollback()
        locker.dispose()
        assert (response.status_code, response.json()) == (503, {"error": DB_UNAVAILABLE})
        assert response.headers["retry-after"] == "5"
        assert client.get("/readyz").status_code == 200  # only that connection died: the service is ready
        after = [client.get("/v1/priorities", params={"date": DATE}, headers=headers) for _ in range(10)]
        assert [r.status_code for r in after] == [200] * 10


def test_an_outage_that_starts_mid_request_is_a_503_readyz_says_so_and_recovery_is_complete(
    outage_db: tuple[str, Any, str],
) -> None:
    url, admin, token = outage_db
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(Settings(database_url=url), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as client:
        thread_id = client.post("/v1/chat", json={"message": "what should I do today?", "date": DATE}, headers=headers).json()[
            "thread_id"
        ]
        locker = create_engine(url)
        with locker.connect() as held, ThreadPoolExecutor(1) as pool:
            held.execute(text("LOCK TABLE book_versions, invoices IN ACCESS EXCLUSIVE MODE"))
            in_flight = pool.submit(client.get, "/v1/priorities", params={"date": DATE}, headers=headers)
            wait_for(lambda: backends(admin, url, waiting_on_lock=True), "the request to block on the lock")
            cut_off(admin, url)  # the server goes away under the running query: every connection ends, none opens
            held.invalidate()  # the lock holder's connection went too
            response = in_flight.result(timeout=30)
        locker.dispose()
        assert (response.status_code, response.json()) == (503, {"error": DB_UNAVAILABLE})
        assert client.get("/readyz").json() == {"status": "database unavailable"}
        assert client.get("/readyz").status_code == 503

        restore(admin, url)
        assert client.get("/readyz").status_code == 200
        after = [
            client.get("/v1/priorities", params={"date": DATE}, headers=headers),
            client.get(f"/v1/threads/{thread_id}", headers=headers),
            client.post("/v1/chat", json={"message": "and Hooli?", "thread_id": thread_id, "date": DATE}, headers=headers),
        ] * 3
        assert [r.status_code for r in after] == [200] * 9, [r.text for r in after if r.status_code != 200][:2]


def test_connections_killed_while_the_model_thinks_do_not_fail_the_chat(outage_db: tuple[str, Any, str]) -> None:
    """Every connection of the app (its pool and the checkpointer's) is terminated during the model call; the turn's
    tools and checkpoint then run on fresh connections and the rep gets the answer."""
    url, admin, token = outage_db
    headers = {"Authorization": f"Bearer {token}"}
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": LLM_URL, "LUMO_MODEL": "gpt-4o-mini", "LUMO_MODEL_MAX_ATTEMPTS": "1"}
    killed: list[int] = []

    def model(request: Any) -> respx.MockResponse:
        if not killed:
            killed.extend(backends(admin, url))
            terminate(admin, killed)
            call = {"id": "call_1", "type": "function", "function": {"name": "overdue_invoices", "arguments": "{}"}}
            return completion(None, [call])
        return completion("INV-1042 (Globex) is 38 days overdue: EUR 12,400.00.")

    with respx.mock(base_url=LLM_URL, using=LLM_MOCKER, assert_all_called=False) as llm:
        llm.post("/chat/completions").side_effect = model
        with TestClient(create_app(Settings(database_url=url), env=env), raise_server_exceptions=False) as client:
            warm = client.post("/v1/chat", json={"message": "hello", "date": DATE}, headers=headers)
            assert warm.status_code == 200
            killed.clear()  # the warm-up opened the pools; now kill them under the next turn
            response = client.post("/v1/chat", json={"message": "what is overdue?", "date": DATE}, headers=headers)
            assert killed, "the model call killed no connection"
            assert response.status_code == 200, response.text
            assert "INV-1042" in response.json()["reply"]
            assert client.get("/readyz").status_code == 200
