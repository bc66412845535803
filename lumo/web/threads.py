"""The list of a user's chat threads (title, last turn); the conversations themselves are in the checkpointer."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from lumo.db.models import ChatThread

TITLE_CHARS = 120


def remember_thread(factory: sessionmaker[Session], user_id: str, thread_id: str, message: str | None, now: dt.datetime) -> None:
    """Record a turn of a thread: created with its first message as title, then its time moves on.

    One statement (an upsert on the user's thread id): it runs on every chat turn, and concurrent turns of one
    thread cannot both insert it."""
    title = " ".join((message or "").split())[:TITLE_CHARS] or thread_id
    with factory() as session:
        row = {"user_id": user_id, "thread_id": thread_id, "title": title, "created_at": now, "updated_at": now}
        session.execute(_upsert(session.get_bind().dialect.name), row)
        session.commit()


@functools.cache
def _upsert(dialect: str) -> Any:
    """Built once per dialect, its values bound per turn: building it took longer than running it. On the table,
    not the ORM class: an ORM insert goes through the bulk-persistence machinery, 4% of a chat turn's CPU."""
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    columns = ("user_id", "thread_id", "title", "created_at", "updated_at")
    statement = insert(cast(Table, ChatThread.__table__)).values({c: bindparam(c) for c in columns})
    return statement.on_conflict_do_update(
        index_elements=["user_id", "thread_id"], set_={"updated_at": statement.excluded.updated_at}
    )


def recent_threads(session: Session, user_id: str, limit: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(ChatThread)
        .where(ChatThread.user_id == user_id)
        .order_by(ChatThread.updated_at.desc(), ChatThread.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "thread_id": r.thread_id,
            "title": r.title,
            "created_at": r.created_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
        }
        for r in rows
    ]
