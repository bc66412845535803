"""The graph's state: the conversation in OpenAI message dicts, and what this turn produced."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from lumo.agent.contracts import PendingRecord


class AgentState(TypedDict, total=False):
    messages: Annotated[list[dict[str, Any]], operator.add]  # the whole thread, only ever appended
    turn_start: int  # index of this turn's user message
    steps: int  # model calls this turn
    pending: list[PendingRecord]  # side effects awaiting the rep
    decisions: dict[str, dict[str, Any]]  # action id -> its Decision, as_state()
    items: list[dict[str, Any]]  # structured items the answer used (priorities, invoices, findings)
    drafts: list[dict[str, Any]]
    model: str
    usage: dict[str, int]
    notes: list[str]
    email_rewrites: int
    proposed: list[dict[str, Any]]  # calls a client asked for directly ({name, args}): proposed, not run
    decided: dict[str, dict[str, Any]]  # action id -> its outcome, kept for the thread's life (lumo.agent.decisions)
    retry_note: str  # set when a transient failure left approved actions pending
    plan: dict[str, Any]  # this turn's understanding of the rep's message (understand.plan_state)
    focus: dict[str, Any]  # what the thread is about (focus.Focus), kept across turns


def new_turn(message: str) -> AgentState:
    """The input that starts a turn: the user's message and this turn's fields reset."""
    return AgentState(
        messages=[{"role": "user", "content": message}],
        steps=0,
        pending=[],
        decisions={},
        items=[],
        drafts=[],
        model="",
        usage={"prompt_tokens": 0, "completion_tokens": 0, "model_calls": 0},
        notes=[],
        email_rewrites=0,
        proposed=[],
    )
