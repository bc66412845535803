"""The LangGraph checkpointer: SQLite beside the database by default, PostgreSQL when the database is.

Open it once per process (CLI command or the API's lifespan), never per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.engine import make_url


def checkpoint_location(database_url: str) -> tuple[str, str]:
    """('postgres', conninfo) or ('sqlite', path) for the checkpoints of this database."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return "postgres", url.set(drivername="postgresql").render_as_string(hide_password=False)
    if not url.database or url.database == ":memory:":
        return "sqlite", ":memory:"
    path = Path(url.database)
    return "sqlite", str(path.with_name(f"{path.stem}.checkpoints{path.suffix or '.db'}"))


@asynccontextmanager
async def open_checkpointer(database_url: str, *, pool_size: int = 10) -> AsyncIterator[BaseCheckpointSaver[str]]:
    kind, where = checkpoint_location(database_url)
    if kind == "postgres":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg import AsyncConnection
        from psycopg.rows import DictRow, dict_row
        from psycopg_pool import AsyncConnectionPool

        kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        async with AsyncConnectionPool(
            where, connection_class=AsyncConnection[DictRow], max_size=pool_size, kwargs=kwargs, open=False
        ) as pool:
            pg_saver = AsyncPostgresSaver(conn=pool)
            await pg_saver.setup()
            yield pg_saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(where) as saver:
        await saver.setup()
        yield saver
