"""What a run needs that is not state: who is asking, the day, clients. Passed per run, never checkpointed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from lumo.agent.deadline import DEFAULT_TURN_DEADLINE_S, TurnDeadline
from lumo.crm.book_cache import Versions
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import Scope
from lumo.llm import ModelReply

if TYPE_CHECKING:
    from lumo.agent.offline import OfflineModel


class Model(Protocol):
    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, tool_choice: Any = None
    ) -> ModelReply: ...


@dataclass(frozen=True)
class AgentContext:
    session_factory: sessionmaker[Session]
    scope: Scope
    as_of: AsOf
    now: dt.datetime
    thread_key: str  # the user-scoped thread id
    model: Model  # the real model, or the offline one
    offline: OfflineModel  # the deterministic fallback
    model_is_offline: bool
    max_steps: int = 6
    history_messages: int = 24  # how much of the thread the model sees
    deadline: TurnDeadline = field(default_factory=lambda: TurnDeadline(DEFAULT_TURN_DEADLINE_S))
    strict_tools: bool = False  # tool schemas in OpenAI's strict mode (LUMO_STRICT_TOOLS)
    versions: Versions = field(default_factory=Versions)  # the books as the turn found them (lumo.crm.book_cache)
