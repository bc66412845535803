"""Concurrent decisions on one thread, from two workers (two Lumo instances over one database): the action runs
once, every loser gets AlreadyDecided (409) with the real outcome, and no extra turn runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.agent.decisions import AlreadyDecided
from lumo.agent.locks import ThreadBusy, thread_lock
from lumo.agent.service import Lumo
from lumo.db.models import Activity, AgentAction, Invoice
from lumo.db.session import make_engine, make_sessionmaker
from tests.agent_support import AS_OF, NOW, ask, build_book, open_lumo, scope_of

PAY_1042 = "mark INV-1042 as paid because the wire arrived"


@pytest.fixture
async def workers(db_url: str, session: Session) -> AsyncIterator[list[Lumo]]:
    """Two workers: each its own engine, pool and checkpointer, as two API processes would have."""
    build_book(session)
    async with AsyncExitStack() as stack:
        opened = []
        for _ in range(2):
            engine = make_engine(db_url)
            stack.callback(engine.dispose)
            opened.append(await stack.enter_async_context(open_lumo(db_url, make_sessionmaker(engine), None)))
        yield opened


def status_changes(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        invoice_id = s.scalar(select(Invoice.id).where(Invoice.number == "INV-1042"))
        return (
            s.scalar(
                select(func.count())
                .select_from(Activity)
                .where(Activity.invoice_id == invoice_id, Activity.kind == "status_change")
            )
            or 0
        )


async def test_ten_approves_and_ten_rejects_at_once_decide_once(workers: list[Lumo]) -> None:
    factory = workers[0].session_factory
    scope = scope_of(factory, "u1@acme.test")
    asked = await ask(workers[0], scope, PAY_1042)
    [action] = asked["pending_actions"]
    before = await workers[0].graph.aget_state({"configurable": {"thread_id": Lumo.thread_key(scope, asked["thread_id"])}})

    def decide(i: int) -> Any:
        reject = "not yet" if i % 2 else None
        return workers[i % 2].approve(scope, asked["thread_id"], as_of=AS_OF, now=NOW, reject=reject)

    results = await asyncio.gather(*(decide(i) for i in range(20)), return_exceptions=True)
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, AlreadyDecided)]
    assert len(won) == 1 and len(lost) == 19, [type(r).__name__ for r in results]
    outcome = lost[0].body["outcome"]
    assert all(e.body["outcome"] == outcome for e in lost)
    assert outcome["action_id"] == action["id"] and outcome["decision"] in ("approve", "reject")
    approved = outcome["decision"] == "approve"
    assert outcome["result"] == ("done" if approved else "rejected")
    assert all(("approved and done" if approved else "rejected") in str(e) for e in lost)
    assert status_changes(factory) == (1 if approved else 0)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(AgentAction)) == (1 if approved else 0)
    after = await workers[1].graph.aget_state({"configurable": {"thread_id": Lumo.thread_key(scope, asked["thread_id"])}})
    added = after.values["messages"][len(before.values["messages"]) :]
    assert [m["role"] for m in added] == ["tool", "assistant"]  # one resume, one answer: no extra turn


async def test_the_winner_is_whoever_came_first_when_they_come_in_turn(workers: list[Lumo]) -> None:
    factory = workers[0].session_factory
    scope = scope_of(factory, "u1@acme.test")
    asked = await ask(workers[0], scope, PAY_1042)
    await workers[1].approve(scope, asked["thread_id"], as_of=AS_OF, now=NOW, reject="the wire bounced")
    with pytest.raises(AlreadyDecided) as late:
        await workers[0].approve(scope, asked["thread_id"], as_of=AS_OF, now=NOW)
    assert late.value.http_status == 409
    assert late.value.body["outcome"]["result"] == "rejected" and "the wire bounced" in str(late.value)
    assert status_changes(factory) == 0


async def test_a_thread_lock_held_too_long_is_busy(session_factory: sessionmaker[Session]) -> None:
    async with thread_lock(session_factory, "u1/t1"):
        with pytest.raises(ThreadBusy):
            async with thread_lock(session_factory, "u1/t1", wait=0.2):
                pass
        async with thread_lock(session_factory, "u1/other", wait=0.2):  # another thread is not held up
            pass
    async with thread_lock(session_factory, "u1/t1", wait=0.2):  # released
        pass
