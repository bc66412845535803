"""What became of a decided action, for the request that lost the race to decide it (409 with the real outcome)."""

from __future__ import annotations

from typing import Any

from lumo.agent.contracts import Decision, PendingRecord
from lumo.crm.errors import InvalidInput, NotFound

RETRY_KEY = "retry"  # a tool result with this key ran into a transient failure: the action stays pending


class AlreadyDecided(NotFound):
    """Nothing waits any more because the action was decided (by another request, or earlier): what happened."""

    http_status = 409

    def __init__(self, message: str, outcome: dict[str, Any]) -> None:
        super().__init__(message)
        self.body = {"outcome": outcome}


def outcome_of(action: PendingRecord, decision: Decision, content: dict[str, Any]) -> dict[str, Any]:
    """The record kept in the thread: which decision won and what it did."""
    if "error" in content:
        result, detail = "failed", str(content["error"])
    elif content.get("rejected"):
        result, detail = "rejected", str(content.get("feedback") or "")
    else:
        result, detail = "done", action["description"]
    return {
        "action_id": action["id"],
        "tool": action["tool"],
        "decision": decision.type,
        "result": result,
        "detail": detail,
    }


def already_decided(thread_id: str, decided: dict[str, dict[str, Any]], action_id: str | None) -> AlreadyDecided | None:
    """The 409 for a decision on an action decided before (the named one, else the thread's latest), or None."""
    outcome = decided.get(action_id) if action_id else next(reversed(decided.values()), None)
    if outcome is None:
        return None
    verb = {"done": "approved and done", "rejected": "rejected", "failed": "approved but failed"}[outcome["result"]]
    detail = f" ({outcome['detail']})" if outcome["detail"] else ""
    return AlreadyDecided(
        f"thread {thread_id} has no action waiting for approval: {outcome['action_id']} was already {verb}{detail}", outcome
    )


def refuse_nul(value: Any) -> None:
    """PostgreSQL stores no NUL character: an edit with one is refused up front, leaving the action pending."""
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInput("the edited arguments contain a NUL character")
    if isinstance(value, dict):
        for k, v in value.items():
            refuse_nul(k)
            refuse_nul(v)
    elif isinstance(value, list):
        for v in value:
            refuse_nul(v)
