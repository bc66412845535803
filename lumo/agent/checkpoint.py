"""The LangGraph checkpointer: SQLite beside the database by default, PostgreSQL when the database is.

Open it once per process (CLI command or the API's lifespan), never per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from sqlalchemy.engine import make_url

from lumo.crm.outage import server_hung_up

POOL_TIMEOUT_SECONDS = 10.0
# In a run's configurable: the thread id was made up for this turn, so there is no checkpoint to read.
NEW_THREAD = "lumo_new_thread"
SETUP_POLL_SECONDS = 0.1
SETUP_LOCK = 0x4C554D4F43500001  # the PostgreSQL advisory lock key of the checkpoint tables' set-up ("LUMOCP" 1)
log = logging.getLogger("lumo.agent")


def checkpoint_location(database_url: str) -> tuple[str, str]:
    """('postgres', conninfo) or ('sqlite', path) for the checkpoints of this database."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return "postgres", url.set(drivername="postgresql").render_as_string(hide_password=False)
    if not url.database or url.database == ":memory:":
        return "sqlite", ":memory:"
    path = Path(url.database)
    return "sqlite", str(path.with_name(f"{path.stem}.checkpoints{path.suffix or '.db'}"))


class _Sweeper:
    """The pool's connection check. One dead connection means the server dropped them all (a restart, a failover):
    sweep the whole pool at once, instead of meeting each dead one in turn behind psycopg_pool's growing back-off
    (1 s, 2 s, 4 s ...), which outlasts a request's timeout after an outage."""

    def __init__(self) -> None:
        self.pool: Any = None
        self._sweep: asyncio.Task[None] | None = None

    async def __call__(self, conn: Any) -> None:
        # The socket is looked at, not sent a query: psycopg_pool's own check is a round trip on every checkout,
        # two per chat turn. A connection the server dropped has a readable socket (lumo.crm.outage.server_hung_up).
        if conn.closed or conn.broken or server_hung_up(conn.pgconn.socket):
            await conn.close()  # the pool then discards it instead of putting it back
            if self.pool is not None and (self._sweep is None or self._sweep.done()):
                self._sweep = asyncio.create_task(self.pool.check())
                self._sweep.add_done_callback(_log_failed_sweep)
            raise ConnectionError("the server closed the connection")


def _log_failed_sweep(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("checkpointer.sweep_failed error=%s", task.exception())


class _SkipsNewThreads:
    """A saver that does not look up a thread id made up for this very turn (`NEW_THREAD`): LangGraph reads the
    latest checkpoint of every thread it runs, a round trip that can only find nothing there."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        if config.get("configurable", {}).get(NEW_THREAD):
            return None
        return await super().aget_tuple(config)  # type: ignore[misc,no-any-return]


async def _take_setup_lock(conn: Any) -> None:
    """Poll for the lock instead of waiting in pg_advisory_lock: a statement waiting on it is an open transaction,
    which the holder's CREATE INDEX CONCURRENTLY would wait for in turn (a deadlock)."""
    while not (await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (SETUP_LOCK,))).fetchone())["ok"]:
        await asyncio.sleep(SETUP_POLL_SECONDS)


@asynccontextmanager
async def open_checkpointer(database_url: str, *, pool_size: int = 10) -> AsyncIterator[BaseCheckpointSaver[str]]:
    kind, where = checkpoint_location(database_url)
    if kind == "postgres":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg import AsyncConnection
        from psycopg.rows import DictRow, dict_row
        from psycopg_pool import AsyncConnectionPool

        kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        # check: a connection the server dropped (restart, failover, pg_terminate_backend) is replaced when taken
        # from the pool, not handed to a request; timeout: during an outage a request fails fast (503), no hang.
        sweeper = _Sweeper()
        pool = AsyncConnectionPool(
            where,
            connection_class=AsyncConnection[DictRow],
            min_size=min(4, pool_size),
            max_size=pool_size,
            kwargs=kwargs,
            open=False,
            check=sweeper,
            timeout=POOL_TIMEOUT_SECONDS,
        )
        sweeper.pool = pool

        class PostgresSaver(_SkipsNewThreads, AsyncPostgresSaver):
            pass

        async with pool:
            pg_saver = PostgresSaver(conn=pool)
            async with pool.connection() as lock:  # hosts and workers starting at once: one sets up, the others wait
                await _take_setup_lock(lock)
                try:  # on the lock's own connection: a pool of one still sets up
                    await PostgresSaver(conn=lock).setup()  # its migrations deadlock when two processes run them at once
                finally:
                    await lock.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
            yield pg_saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    class SqliteSaver(_SkipsNewThreads, AsyncSqliteSaver):
        pass

    async with SqliteSaver.from_conn_string(where) as saver:
        await saver.setup()
        yield saver
