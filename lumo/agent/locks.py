"""One decision at a time per thread, across workers: an advisory lock on PostgreSQL, a lease row on SQLite.

A waiter polls without holding a connection (twenty of them must not drain the pool the winner's tools need).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm.errors import LumoError
from lumo.db.models import ThreadLock

WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05
# A lease older than this belongs to a worker that died mid-decision (a decision takes seconds, not minutes).
STALE_LEASE = dt.timedelta(minutes=5)


class ThreadBusy(LumoError):
    http_status = 409
    exit_code = 2


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def advisory_key(thread_key: str) -> int:
    """A signed 64-bit key for pg_advisory_lock, stable across processes (Python's hash() is not)."""
    return int.from_bytes(hashlib.sha256(thread_key.encode()).digest()[:8], "big", signed=True)


def _pg_try(engine: Engine, key: int) -> Connection | None:
    conn = engine.connect()
    try:
        if conn.scalar(select(func.pg_try_advisory_lock(key))):
            conn.commit()  # end the implicit transaction; the session-level lock stays with the connection
            return conn
    except BaseException:
        conn.close()
        raise
    conn.close()
    return None


def _pg_release(conn: Connection, key: int) -> None:
    try:
        conn.scalar(select(func.pg_advisory_unlock(key)))
        conn.commit()
    finally:
        conn.close()  # a dead connection's lock went with it: PostgreSQL drops it when the session ends


def _lease_try(factory: sessionmaker[Session], thread_key: str, holder: str, now: dt.datetime) -> bool:
    with factory() as session:
        session.add(ThreadLock(thread_key=thread_key, holder=holder, acquired_at=now))
        try:
            session.commit()
            return True
        except IntegrityError:
            session.rollback()
        stale = session.execute(
            delete(ThreadLock).where(ThreadLock.thread_key == thread_key, ThreadLock.acquired_at < now - STALE_LEASE)
        )
        session.commit()
        return False if not getattr(stale, "rowcount", 0) else _lease_try(factory, thread_key, holder, now)


def _lease_release(factory: sessionmaker[Session], thread_key: str, holder: str) -> None:
    with factory() as session:
        session.execute(delete(ThreadLock).where(ThreadLock.thread_key == thread_key, ThreadLock.holder == holder))
        session.commit()


@asynccontextmanager
async def thread_lock(
    factory: sessionmaker[Session],
    thread_key: str,
    *,
    wait: float = WAIT_SECONDS,
    clock: Callable[[], dt.datetime] = _utcnow,
) -> AsyncIterator[None]:
    """Hold the thread's decision lock; ThreadBusy when another decision holds it longer than `wait` seconds."""
    engine: Any = factory.kw["bind"]
    postgres = engine.dialect.name == "postgresql"
    key, holder = advisory_key(thread_key), uuid.uuid4().hex
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        if postgres:
            conn = await asyncio.to_thread(_pg_try, engine, key)
            got = conn is not None
        else:
            got = await asyncio.to_thread(_lease_try, factory, thread_key, holder, clock())
        if got:
            break
        if asyncio.get_running_loop().time() > deadline:
            raise ThreadBusy("another decision on this thread is still running; try again in a moment")
        await asyncio.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        if postgres:
            assert conn is not None
            await asyncio.to_thread(_pg_release, conn, key)
        else:
            await asyncio.to_thread(_lease_release, factory, thread_key, holder)
