"""The shapes at the agent's edge, defined once: an action waiting for approval, a decision on it, a turn's result.

The graph keeps them in its state, the service returns them, the HTTP schemas and Slack are built from them.
Pending actions and results are TypedDicts, plain dicts at run time: they sit in the graph's checkpoints and go
out as JSON as they are, so a thread saved before reads back the same. (From typing_extensions: pydantic reads
TypedDicts from there on Python 3.11.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

DecisionType = Literal["approve", "edit", "reject"]


class PendingAction(TypedDict):
    """A side effect waiting for the rep's decision, as the rep and every client see it."""

    id: str
    tool: str
    args: dict[str, Any]
    description: str  # what it will do, in words


class PendingRecord(PendingAction):
    """A pending action as the graph keeps it: with the tool call it answers, and what the guard held."""

    call_id: str
    edited: NotRequired[bool]  # the rep edited this email and the guard held it
    base_description: NotRequired[str]  # the description before the guard's note was added


def public_action(action: PendingRecord | PendingAction) -> PendingAction:
    """What the rep is shown of a pending action (the graph's bookkeeping left out)."""
    return PendingAction(id=action["id"], tool=action["tool"], args=action["args"], description=action["description"])


@dataclass(frozen=True)
class Decision:
    """A rep's decision on a pending action: approve it, edit its arguments, or reject it with feedback."""

    type: DecisionType = "approve"
    reason: str | None = None  # reject: the feedback the model reads as the tool's result
    args: dict[str, Any] | None = None  # edit: the changed arguments
    approve_anyway: bool = False  # send an edited email although the guard found facts it could not match

    def as_state(self) -> dict[str, Any]:
        """As the graph's state and checkpoints hold it: only what was given."""
        state: dict[str, Any] = {"type": self.type}
        if self.reason is not None:
            state["reason"] = self.reason
        if self.args is not None:
            state["args"] = self.args
        if self.approve_anyway:
            state["approve_anyway"] = True
        return state

    @classmethod
    def of(cls, state: dict[str, Any]) -> Decision:
        return cls(state.get("type", "approve"), state.get("reason"), state.get("args"), bool(state.get("approve_anyway")))


class TurnResult(TypedDict):
    """What a chat turn comes to (`lumo ask --json`, the body of POST /v1/chat): the reply, or the actions it waits on."""

    thread_id: str
    reply: str
    model: str  # "lumo-offline" when the offline model answered
    items: list[dict[str, Any]]  # the structured rows the reply used (priorities, invoices, findings)
    drafts: list[dict[str, Any]]
    pending_actions: list[PendingAction]
    usage: dict[str, int]
    notes: list[str]
