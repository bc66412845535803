"""Running turns: `ask` starts one, `approve` resumes one paused for approval. Same shape for CLI and HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langgraph.types import Command
from sqlalchemy.orm import Session, sessionmaker

from lumo.agent import toolrun
from lumo.agent.checkpoint import NEW_THREAD
from lumo.agent.context import AgentContext, Model
from lumo.agent.contracts import Decision, PendingAction, TurnResult, public_action
from lumo.agent.deadline import DEFAULT_TURN_DEADLINE_S, TurnDeadline
from lumo.agent.decisions import already_decided, refuse_nul
from lumo.agent.graph import build_graph
from lumo.agent.locks import thread_lock
from lumo.agent.offline import OfflineModel
from lumo.agent.state import new_turn
from lumo.crm.errors import InvalidInput, NotFound
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import Scope
from tools import REGISTRY, ToolContext

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
    turn_deadline_s: float = DEFAULT_TURN_DEADLINE_S  # every model call of a turn shares it (LUMO_TURN_DEADLINE_S)
    strict_tools: bool = False  # LUMO_STRICT_TOOLS

    @classmethod
    def create(
        cls,
        checkpointer: Any,
        session_factory: sessionmaker[Session],
        model: Model | None = None,
        *,
        turn_deadline_s: float = DEFAULT_TURN_DEADLINE_S,
        strict_tools: bool = False,
    ) -> Lumo:
        return cls(build_graph(checkpointer), session_factory, model, turn_deadline_s=turn_deadline_s, strict_tools=strict_tools)

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
            deadline=TurnDeadline(self.turn_deadline_s),  # starts now: one budget for this ask or approve
            strict_tools=self.strict_tools,
        )

    @staticmethod
    def thread_key(scope: Scope, thread_id: str) -> str:
        """Thread ids are per user: the same id from another user is another thread."""
        return f"{scope.user_id}/{thread_id}"

    async def ask(
        self,
        scope: Scope,
        message: str,
        *,
        as_of: AsOf,
        now: dt.datetime,
        thread_id: str | None = None,
        start_if_new: bool = False,
    ) -> TurnResult:
        """`thread_id` continues that thread (NotFound when there is none); `start_if_new` starts it instead,
        for callers that name their threads themselves (a Slack thread)."""
        message, thread_id, key, config = await self.begin(scope, message, thread_id, start_if_new=start_if_new)
        return await self._run(new_turn(message), config, self._context(scope, key, as_of, now), thread_id)

    async def _run(self, turn: Any, config: dict[str, Any], context: AgentContext, thread_id: str) -> TurnResult:
        """Run a turn (or resume one) and read its result from the run's own output: the state it ended with
        is the state it saved (durability "exit"), so reading it back from the checkpointer would only cost."""
        out = await self.graph.ainvoke(turn, config, context=context, durability=DURABILITY, version="v2")
        return _result_of(thread_id, out.value or {}, _pending_of(out.interrupts))

    async def propose(
        self,
        scope: Scope,
        calls: list[tuple[str, dict[str, Any]]],
        *,
        message: str,
        as_of: AsOf,
        now: dt.datetime,
        thread_id: str | None = None,
    ) -> TurnResult:
        """Start a turn that proposes these side effects as they are (no model): they wait for approval like any.

        `message` says in the thread what was asked; a call with bad arguments comes back as an error.
        """
        if not calls:
            raise InvalidInput("nothing to propose")
        await asyncio.to_thread(self._check_proposed, scope, calls, as_of, now)
        message, thread_id, key, config = await self.begin(scope, message, thread_id)
        turn = new_turn(message)
        turn["proposed"] = [{"name": name, "args": args} for name, args in calls]
        result = await self._run(turn, config, self._context(scope, key, as_of, now), thread_id)
        if not result["pending_actions"]:
            raise InvalidInput(
                _first_error(await self.graph.aget_state({"configurable": {"thread_id": key}})) or "nothing to approve"
            )
        return result

    def _check_proposed(self, scope: Scope, calls: list[tuple[str, dict[str, Any]]], as_of: AsOf, now: dt.datetime) -> None:
        """Refuse a proposal up front with the error's own kind (not found: 404 / exit 3), writing nothing."""
        ctx = ToolContext(self.session_factory, scope, as_of, now)
        for name, args in calls:
            tool = REGISTRY.get(name)
            if tool is None or not tool.side_effect or tool.describe is None:
                raise InvalidInput(f"{name!r} is not an action that can be proposed")
            try:
                parsed = toolrun.validate(tool, args)
            except toolrun.ToolCallError as exc:
                raise InvalidInput(str(exc)) from None
            with self.session_factory() as session:
                tool.describe(ctx, parsed, session)

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

    async def begin(
        self, scope: Scope, message: str, thread_id: str | None, *, start_if_new: bool = False
    ) -> tuple[str, str, str, dict[str, Any]]:
        """Check a turn can start; a given thread id must name an existing thread unless `start_if_new`.

        A mistyped or foreign id used to start a fresh thread silently, so the client lost its conversation
        without knowing: it is a 404 now, and only a request without an id starts a new thread.
        """
        message = message.strip()
        if not message:
            raise InvalidInput("the message is empty")
        if len(message) > MAX_MESSAGE_CHARS:
            raise InvalidInput(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
        if thread_id is None:  # a fresh id has no state to read: nothing can be waiting on it
            thread_id = uuid.uuid4().hex[:12]
            key = self.thread_key(scope, thread_id)
            # The run's config only: the checkpointer need not look for what cannot be there.
            return message, thread_id, key, {"configurable": {"thread_id": key, NEW_THREAD: True}}
        key = self.thread_key(scope, thread_id)
        config: dict[str, Any] = {"configurable": {"thread_id": key}}
        snapshot = await self.graph.aget_state(config)
        if not snapshot.values and not start_if_new:
            raise NotFound(f"thread {thread_id} not found")
        waiting = _waiting(snapshot)
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
        approve_anyway: bool = False,
    ) -> TurnResult:
        """Decide pending actions: approve (default), edit (changed arguments) or reject (with feedback).

        `approve_anyway` sends an edited email whose facts the guard could not match: explicit, and logged.
        One decision at a time per thread, across workers; a decision that finds its action decided already
        gets AlreadyDecided (409) with what really happened, and runs nothing.
        """
        key = self.thread_key(scope, thread_id)
        config = {"configurable": {"thread_id": key}}
        if edit is not None and reject is not None:
            raise InvalidInput("give either an edit or a rejection, not both")
        refuse_nul(edit)
        # Several ids, comma-separated, approve some of many at once; the others keep waiting.
        wanted = None if action_id is None else {i.strip() for i in action_id.split(",") if i.strip()}
        async with thread_lock(self.session_factory, key):
            snapshot = await self.graph.aget_state(config)
            waiting = _waiting(snapshot)
            chosen = [a for a in waiting if wanted is None or a["id"] in wanted]
            missing = sorted((wanted or set()) - {a["id"] for a in chosen})
            if not chosen or missing:
                decided = (snapshot.values or {}).get("decided", {})
                named: list[str | None] = [*missing] or [None]
                for one in named:
                    conflict = already_decided(thread_id, decided, one)
                    if conflict is not None:
                        raise conflict
                if not waiting:
                    raise NotFound(f"thread {thread_id} has no action waiting for approval")
                raise NotFound(f"action {', '.join(missing) or action_id} is not waiting in thread {thread_id}")
            return await self._decide(scope, thread_id, key, config, chosen, as_of, now, edit, reject, approve_anyway)

    async def _decide(
        self,
        scope: Scope,
        thread_id: str,
        key: str,
        config: dict[str, Any],
        chosen: list[PendingAction],
        as_of: AsOf,
        now: dt.datetime,
        edit: dict[str, Any] | None,
        reject: str | None,
        approve_anyway: bool,
    ) -> TurnResult:
        if edit is not None and len(chosen) > 1:
            raise InvalidInput("several actions are waiting: name the one to edit with --action")
        if approve_anyway and reject is not None:
            raise InvalidInput("approve anyway or reject, not both")
        if edit is not None:
            _check_edit(chosen[0], edit)
        if reject is not None:
            decision = Decision("reject", reason=reject)
        elif edit is not None:
            decision = Decision("edit", args=edit, approve_anyway=approve_anyway)
        else:
            decision = Decision("approve", approve_anyway=approve_anyway)
        resume: Command[str] = Command(resume={"decisions": {a["id"]: decision.as_state() for a in chosen}})
        return await self._run(resume, config, self._context(scope, key, as_of, now), thread_id)

    async def history(self, scope: Scope, thread_id: str) -> list[dict[str, str]]:
        """The thread so far, for a client reopening it: see `_history`; the latest turn is `result`."""
        config = {"configurable": {"thread_id": self.thread_key(scope, thread_id)}}
        values = (await self.graph.aget_state(config)).values or {}
        if not values:
            raise NotFound(f"thread {thread_id} not found")
        return _history(values)

    async def result(self, scope: Scope, thread_id: str) -> TurnResult:
        """The `lumo ask --json` shape for the thread's latest state."""
        config = {"configurable": {"thread_id": self.thread_key(scope, thread_id)}}
        snapshot = await self.graph.aget_state(config)
        values = snapshot.values or {}
        if not values:
            raise NotFound(f"thread {thread_id} not found")
        return _result_of(thread_id, values, _waiting(snapshot))


def _result_of(thread_id: str, values: dict[str, Any], pending: list[PendingAction]) -> TurnResult:
    """The `lumo ask --json` shape of a thread's state and the actions it waits on."""
    turn = values["messages"][values.get("turn_start", 0) :]
    replies = [m["content"] for m in turn if m["role"] == "assistant" and m.get("content")]
    reply = replies[-1] if replies and not pending else ""
    if pending:
        lines = [f"- {a['description']} (action {a['id']})" for a in pending]
        reply = "I need your approval before I do this:\n" + "\n".join(lines)
        if values.get("retry_note"):
            reply = f"{values['retry_note']}\n\n{reply}"
    return TurnResult(
        thread_id=thread_id,
        reply=reply,
        model=values.get("model") or "lumo-offline",
        items=values.get("items", []),
        drafts=values.get("drafts", []),
        pending_actions=[public_action(a) for a in pending],
        usage=values.get("usage", {}),
        notes=values.get("notes", []),
    )


def _history(values: dict[str, Any]) -> list[dict[str, str]]:
    """Each earlier turn's question and Lumo's last words to it, then the latest question: the thread as read."""
    turn_start = values.get("turn_start", 0)
    out: list[dict[str, str]] = []
    for message in values.get("messages", [])[: turn_start + 1]:
        text = message.get("content")
        if not isinstance(text, str) or not text.strip():
            continue  # tool calls and results: the answer words them
        if message["role"] == "user":
            out.append({"role": "user", "text": text})
        elif message["role"] == "assistant":
            if out and out[-1]["role"] == "lumo":
                out[-1]["text"] = text  # a turn's last answer is what the rep saw
            else:
                out.append({"role": "lumo", "text": text})
    return out


def _check_edit(action: PendingAction, edit: dict[str, Any]) -> None:
    """Refuse an edit whose arguments the tool would refuse, before resuming: the action keeps waiting for a
    corrected edit instead of being used up as failed (a typo used to cost the rep the whole action)."""
    tool = REGISTRY.get(action["tool"])
    if tool is None:
        return
    try:
        toolrun.validate(tool, {**action["args"], **edit})
    except toolrun.ToolCallError as exc:
        raise InvalidInput(f"the edit is refused and {action['id']} still waits: {exc}") from None


def _first_error(snapshot: Any) -> str | None:
    """The first tool error of the thread's last turn (why a proposed action was refused)."""
    values = snapshot.values or {}
    for message in values.get("messages", [])[values.get("turn_start", 0) :]:
        if message.get("role") == "tool" and '"error"' in (message.get("content") or ""):
            try:
                return str(json.loads(message["content"])["error"])
            except (ValueError, KeyError, TypeError):
                continue
    return None


def _waiting(snapshot: Any) -> list[PendingAction]:
    """The actions a thread's snapshot is paused on."""
    if not snapshot.next:
        return []
    return _pending_of(snapshot.interrupts)


def _pending_of(interrupts: Any) -> list[PendingAction]:
    return [a for i in interrupts or () for a in (i.value or {}).get("pending_actions", [])]


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
