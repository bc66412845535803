"""One decision at a time per thread, across workers (the lock itself is stored by `lumo.crm.thread_locks`).

A waiter polls without holding a connection (twenty of them must not drain the pool the winner's tools need).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.orm import Session, sessionmaker

from lumo.crm import thread_locks
from lumo.crm.errors import LumoError

WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05


class ThreadBusy(LumoError):
    http_status = 409
    exit_code = 2


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@asynccontextmanager
async def thread_lock(
    factory: sessionmaker[Session],
    thread_key: str,
    *,
    wait: float = WAIT_SECONDS,
    clock: Callable[[], dt.datetime] = _utcnow,
) -> AsyncIterator[None]:
    """Hold the thread's decision lock; ThreadBusy when another decision holds it longer than `wait` seconds."""
    holder = uuid.uuid4().hex
    deadline = asyncio.get_running_loop().time() + wait
    while (held := await asyncio.to_thread(thread_locks.try_lock, factory, thread_key, holder, clock())) is None:
        if asyncio.get_running_loop().time() > deadline:
            raise ThreadBusy("another decision on this thread is still running; try again in a moment")
        await asyncio.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        await asyncio.to_thread(thread_locks.release, factory, held)
