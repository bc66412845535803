"""A thread's decision lock in the database: an advisory lock on PostgreSQL, a lease row on SQLite.

Each call takes one try and holds no connection between tries; the agent (`lumo.agent.locks`) decides how
long to wait. A lease older than STALE_LEASE belongs to a worker that died mid-decision and is taken over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lumo.db.models import ThreadLock

# A decision takes seconds, not minutes.
STALE_LEASE = dt.timedelta(minutes=5)


@dataclass
class Held:
    """A lock this process holds: the PostgreSQL connection that owns the advisory lock, or the lease's holder."""

    thread_key: str
    holder: str
    conn: Connection | None = None


def advisory_key(thread_key: str) -> int:
    """A signed 64-bit key for pg_advisory_lock, stable across processes (Python's hash() is not)."""
    return int.from_bytes(hashlib.sha256(thread_key.encode()).digest()[:8], "big", signed=True)


def try_lock(factory: sessionmaker[Session], thread_key: str, holder: str, now: dt.datetime) -> Held | None:
    """One try at the thread's lock: Held when this caller has it, None when someone else does."""
    bind = factory.kw["bind"]
    if bind.dialect.name == "postgresql":
        return _pg_try(bind.connect(), thread_key, holder)
    return Held(thread_key, holder) if _lease_try(factory, thread_key, holder, now) else None


def release(factory: sessionmaker[Session], held: Held) -> None:
    if held.conn is not None:
        try:
            held.conn.scalar(select(func.pg_advisory_unlock(advisory_key(held.thread_key))))
            held.conn.commit()
        finally:
            held.conn.close()  # a dead connection's lock went with it: PostgreSQL drops it when the session ends
        return
    with factory() as session:
        session.execute(delete(ThreadLock).where(ThreadLock.thread_key == held.thread_key, ThreadLock.holder == held.holder))
        session.commit()


def _pg_try(conn: Connection, thread_key: str, holder: str) -> Held | None:
    try:
        if conn.scalar(select(func.pg_try_advisory_lock(advisory_key(thread_key)))):
            conn.commit()  # end the implicit transaction; the session-level lock stays with the connection
            return Held(thread_key, holder, conn)
    except BaseException:
        conn.close()
        raise
    conn.close()
    return None


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
