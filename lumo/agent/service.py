"""Running turns: `ask` starts one, `approve` resumes one paused for approval. Same shape for CLI and HTTP."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langgraph.types import Command
from sqlalchemy.orm import Session, sessionmaker

from lumo.agent.context import AgentContext, Model
from lumo.agent.graph import build_graph, public_action
from lumo.agent.offline import OfflineModel
from lumo.agent.state import new_turn
from lumo.crm.errors import InvalidInput, NotFound
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import Scope

MAX_MESSAGE_CHARS = 4000
# A turn's state is saved when it ends or pauses for approval, not after every step: a turn is short, a crash
# mid-turn only loses that turn, and side effects are guarded by their action ids, not by checkpoints.
DURABILITY = "exit"


@dataclass
class Lumo:
    """One per process: the compiled graph (with its checkpointer), the database, the model."""

    graph: Any
    session_factory: sessionmaker[Session]
    model: Model | None = None  # None: the offline model answers
    max_steps: int = 6

    @classmethod
    def create(cls, checkpointer: Any, session_factory: sessionmaker[Session], model: Model | None = None) -> Lumo:
        return cls(build_graph(checkpointer), session_factory, model)

    def _context(self, scope: Scope, thread_key: str, as_of: AsOf, now: dt.datetime) -> AgentContext:
        offline = OfflineModel(as_of.today)
        return AgentContext(
            session_factory=self.session_factory,
            scope=scope,
            as_of=as_of,
            now=now,
            thread_key=thread_key,
            model=self.model or offline,
            offline=offline,
            model_is_offline=self.model is None,
            max_steps=self.max_steps,
        )

    @staticmethod
    def thread_key(scope: Scope, thread_id: str) -> str:
        """Thread ids are per user: the same id from another user is another thread."""
        return f"{scope.user_id}/{thread_id}"

    async def ask(
        self, scope: Scope, message: str, *, as_of: AsOf, now: dt.datetime, thread_id: str | None = None
    ) -> dict[str, Any]:
        message, thread_id, key, config = await self.begin(scope, message, thread_id)
        await self.graph.ainvoke(new_turn(message), config, context=self._context(scope, key, as_of, now), durability=DURABILITY)
        return await self.result(scope, thread_id)

    async def ask_stream(
        self, scope: Scope, message: str, *, as_of: AsOf, now: dt.datetime, thread_id: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The same turn as `ask`, as events: one per graph step, then the final result.

        A bad request raises here, before any event, so an HTTP client gets a 4xx rather than a stream.
        """
        message, thread_id, key, config = await self.begin(scope, message, thread_id)
        return self._stream(scope, message, thread_id, key, config, as_of, now)

    async def _stream(
        self, scope: Scope, message: str, thread_id: str, key: str, config: dict[str, Any], as_of: AsOf, now: dt.datetime
    ) -> AsyncIterator[dict[str, Any]]:
        yield {"event": "thread", "data": {"thread_id": thread_id}}
        context = self._context(scope, key, as_of, now)
        async for update in self.graph.astream(
            new_turn(message), config, context=context, stream_mode="updates", durability=DURABILITY
        ):
            for node, change in update.items():
                if node.startswith("__"):
                    continue
                yield {"event": "step", "data": _step_summary(node, change or {})}
        yield {"event": "message", "data": await self.result(scope, thread_id)}

    async def begin(self, scope: Scope, message: str, thread_id: str | None) -> tuple[str, str, str, dict[str, Any]]:
        message = message.strip()
        if not message:
            raise InvalidInput("the message is empty")
        if len(message) > MAX_MESSAGE_CHARS:
            raise InvalidInput(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
        thread_id = thread_id or uuid.uuid4().hex[:12]
        key = self.thread_key(scope, thread_id)
        config = {"configurable": {"thread_id": key}}
        waiting = await self._pending(config)
        if waiting:
            ids = ", ".join(a["id"] for a in waiting)
            raise InvalidInput(f"thread {thread_id} is waiting for approval of {ids}: approve or reject it first")
        return message, thread_id, key, config

    async def approve(
        self,
        scope: Scope,
        thread_id: str,
        *,
        as_of: AsOf,
        now: dt.datetime,
        action_id: str | None = None,
        edit: dict[str, Any] | None = None,
        reject: str | None = None,
    ) -> dict[str, Any]:
        """Decide pending actions: approve (default), edit (changed arguments) or reject (with feedback)."""
        key = self.thread_key(scope, thread_id)
        config = {"configurable": {"thread_id": key}}
        waiting = await self._pending(config)
        if not waiting:
            raise NotFound(f"thread {thread_id} has no action waiting for approval")
        if edit is not None and reject is not None:
            raise InvalidInput("give either an edit or a rejection, not both")
        chosen = [a for a in waiting if action_id is None or a["id"] == action_id]
        if not chosen:
            raise NotFound(f"action {action_id} is not waiting in thread {thread_id}")
        if edit is not None and len(chosen) > 1:
            raise InvalidInput("several actions are waiting: name the one to edit with --action")
        if reject is not None:
            decision: dict[str, Any] = {"type": "reject", "reason": reject}
        elif edit is not None:
            decision = {"type": "edit", "args": edit}
        else:
            decision = {"type": "approve"}
        resume: Command[str] = Command(resume={"decisions": {a["id"]: decision for a in chosen}})
        await self.graph.ainvoke(resume, config, context=self._context(scope, key, as_of, now), durability=DURABILITY)
        return await self.result(scope, thread_id)

    async def _pending(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        return _waiting(await self.graph.aget_state(config))

    async def result(self, scope: Scope, thread_id: str) -> dict[str, Any]:
        """The `lumo ask --json` shape for the thread's latest state."""
        config = {"configurable": {"thread_id": self.thread_key(scope, thread_id)}}
        snapshot = await self.graph.aget_state(config)
        values = snapshot.values or {}
        if not values:
            raise NotFound(f"thread {thread_id} not found")
        pending = _waiting(snapshot)
        turn = values["messages"][values.get("turn_start", 0) :]
        replies = [m["content"] for m in turn if m["role"] == "assistant" and m.get("content")]
        reply = replies[-1] if replies and not pending else ""
        if pending:
            lines = [f"- {a['description']} (action {a['id']})" for a in pending]
            reply = "I need your approval before I do this:\n" + "\n".join(lines)
        return {
            "thread_id": thread_id,
            "reply": reply,
            "model": values.get("model") or "lumo-offline",
            "items": values.get("items", []),
            "drafts": values.get("drafts", []),
            "pending_actions": [public_action(a) for a in pending],
            "usage": values.get("usage", {}),
            "notes": values.get("notes", []),
        }


def _waiting(snapshot: Any) -> list[dict[str, Any]]:
    """The actions a thread's snapshot is paused on."""
    if not snapshot.next or not snapshot.interrupts:
        return []
    return [a for i in snapshot.interrupts for a in (i.value or {}).get("pending_actions", [])]


def _step_summary(node: str, change: dict[str, Any]) -> dict[str, Any]:
    """What a step did, for a progress display: tools called, results, actions waiting."""
    summary: dict[str, Any] = {"node": node}
    calls = [c["function"]["name"] for m in change.get("messages", []) for c in m.get("tool_calls") or []]
    if calls:
        summary["tool_calls"] = calls
    results = sum(1 for m in change.get("messages", []) if m.get("role") == "tool")
    if results:
        summary["tool_results"] = results
    if change.get("pending"):
        summary["pending_actions"] = [a["id"] for a in change["pending"]]
    return summary
