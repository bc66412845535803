"""The list of a user's chat threads (title, last turn); the conversations themselves are in the checkpointer."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lumo.db.models import ChatThread

TITLE_CHARS = 120


def remember_thread(factory: sessionmaker[Session], user_id: str, thread_id: str, message: str | None, now: dt.datetime) -> None:
    """Record a turn of a thread: created with its first message as title, then its time moves on."""
    with factory() as session:
        row = session.scalar(select(ChatThread).where(ChatThread.user_id == user_id, ChatThread.thread_id == thread_id))
        if row is not None:
            row.updated_at = now
            session.commit()
            return
        title = " ".join((message or "").split())[:TITLE_CHARS] or thread_id
        session.add(ChatThread(user_id=user_id, thread_id=thread_id, title=title, created_at=now, updated_at=now))
        try:
            session.commit()
        except IntegrityError:  # the same thread recorded by a concurrent turn: nothing to add
            session.rollback()


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
