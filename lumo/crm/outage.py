"""Which database failures are transient (the database is down, busy or dropped a connection): worth a retry,
never a reason to consume an approval or to answer 500."""

from __future__ import annotations

import sqlite3

import psycopg
import psycopg_pool
from sqlalchemy import exc as sa_exc

from lumo.db.session import server_hung_up

__all__ = ["DB_UNAVAILABLE", "TRANSIENT", "is_transient", "server_hung_up"]  # server_hung_up: for the checkpointer

DB_UNAVAILABLE = "the database is unavailable right now; try again in a moment"
TRANSIENT: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,  # SQLite "database is locked", PostgreSQL down or restarting
    sa_exc.TimeoutError,  # the engine's pool had no connection in time
    sqlite3.OperationalError,
    psycopg.OperationalError,  # the checkpointer's connections
    psycopg_pool.PoolTimeout,
)


def is_transient(exc: BaseException) -> bool:
    """A locked or unreachable database, a dropped connection, an exhausted pool; not a refused write."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, TRANSIENT)
