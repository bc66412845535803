"""The engine's pool check on PostgreSQL: a connection the server dropped is replaced on checkout, and a live
one is handed out without a query (no SELECT per checkout, as pool_pre_ping would send)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text

from lumo.db.session import make_engine
from tests.conftest import PG_SKIP, PG_URL


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    if not PG_URL:
        pytest.skip(PG_SKIP)
    engine = make_engine(PG_URL, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT pg_backend_pid()")) or 0)


def test_a_connection_the_server_terminated_is_replaced_on_checkout(pg_engine: Engine) -> None:
    first = backend_pid(pg_engine)
    admin = create_engine(str(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            conn.execute(text("SELECT pg_sleep(0.2)"))  # the FATAL and the close reach the client's socket
    finally:
        admin.dispose()
    assert backend_pid(pg_engine) not in (0, first)


def test_a_live_connection_is_checked_out_without_a_query(pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    backend_pid(pg_engine)  # the pool now holds one live connection
    sent: list[str] = []

    @event.listens_for(pg_engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    monkeypatch.setattr(pg_engine.dialect, "do_ping", lambda _dbapi_conn: sent.append("ping") or True)

    for _ in range(3):
        with pg_engine.connect():
            pass
    assert sent == []


async def test_a_serving_process_holds_no_more_than_lumo_db_connections(pg_database_url: str) -> None:
    from lumo.compose import open_lumo

    async with open_lumo(pg_database_url, {"LUMO_DB_CONNECTIONS": "9", "LUMO_LLM": "offline"}) as lumo:
        engine = lumo.session_factory.kw["bind"]
        checkpointer_pool = lumo.graph.checkpointer.conn
        assert (engine.pool.size(), engine.pool._max_overflow, checkpointer_pool.max_size) == (6, 0, 3)
