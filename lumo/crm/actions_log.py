"""The record of approved actions that ran: an action runs once, whatever resumes or retries its turn.

Its writes and its record commit in one transaction, so finding the record means the writes are there too
(ARCHITECTURE.md section 2, exactly once).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lumo.db.models import AgentAction


@dataclass(frozen=True)
class Action:
    """An approved action, keyed by `id` (its thread and its id in the thread)."""

    id: str
    thread_id: str
    user_id: str
    tool: str
    args_json: str
    at: dt.datetime


def recorded_result(session: Session, action_id: str) -> dict[str, Any] | None:
    """What the action did when it ran, or None if it never ran."""
    done = session.get(AgentAction, action_id)
    return None if done is None else cast(dict[str, Any], json.loads(done.result))


def run_once(session: Session, action: Action, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `run` (which writes in `session`) and record it, committing both; if it ran before, return its result.

    When another worker ran the same action at the same moment, its commit wins: ours is rolled back and
    its result returned, so the action took effect once.
    """
    done = recorded_result(session, action.id)
    if done is not None:  # resumed after it ran: return what it did, do not do it again
        return done
    result = run()
    session.add(
        AgentAction(
            id=action.id,
            thread_id=action.thread_id,
            user_id=action.user_id,
            tool=action.tool,
            args=action.args_json,
            result=json.dumps(result, default=str),
            executed_at=action.at,
        )
    )
    try:
        session.commit()
    except IntegrityError:  # another worker ran it at the same moment
        session.rollback()
        winner = recorded_result(session, action.id)
        if winner is None:  # the conflict was not the record's: nothing of ours was kept
            raise
        return winner
    return result
