"""What a thread is about right now, kept in the checkpointed graph state between turns.

The last list shown, the invoice, account and draft in focus, Lumo's open question and the last request, so
that "the first one", "number 3", "it", "that account", "send it", "and Hooli?" and the answer to Lumo's own
question are read against the thread, not guessed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

DRAFT_FIELDS = ("to", "cc", "subject", "body", "invoice_numbers", "skipped_reason")
ASKS_BACK = ("which one do you mean", "which invoice", "which account")


@dataclass
class Focus:
    listed: list[str] = field(default_factory=list)  # invoice numbers of the last list shown, in its order
    index: int | None = None  # the position in `listed` of the invoice in focus
    invoices: list[str] = field(default_factory=list)  # the invoices in focus
    account: str | None = None
    draft: dict[str, Any] | None = None  # the last draft shown (its sendable fields)
    question: str | None = None  # the rep's message that Lumo answered with a question
    last_name: str | None = None  # the last request's intent and calls, for "and Hooli?"
    last_calls: list[list[Any]] = field(default_factory=list)

    @classmethod
    def of(cls, state: dict[str, Any] | None) -> Focus:
        if not state:
            return cls()
        known = {k: v for k, v in state.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def as_state(self) -> dict[str, Any]:
        return asdict(self)

    def nth(self, position: int) -> str | None:
        """The invoice at a 0-based position of the last list (negative counts from its end)."""
        if not self.listed or not -len(self.listed) <= position < len(self.listed):
            return None
        return self.listed[position] or None

    def current(self) -> str | None:
        """The invoice "it" means: the one in focus, else the only one listed."""
        if self.invoices:
            return self.invoices[0]
        return self.listed[0] if len(self.listed) == 1 else None


def after_request(focus: Focus, text: str, name: str, calls: list[tuple[str, dict[str, Any]]]) -> Focus:
    """The focus once a request is understood: its question stays open only while Lumo asks one."""
    focus.question = text if name == "clarify" else None
    if calls and name not in ("clarify", "help", "unknown"):
        focus.last_name, focus.last_calls = name, [[n, dict(a)] for n, a in calls]
    return focus


def after_result(focus: Focus, text: str, tool: str, args: dict[str, Any], result: dict[str, Any]) -> Focus:
    """The focus once a tool's result is shown to the rep."""
    error = str(result.get("error", ""))
    if error:
        if any(p in error.lower() for p in ASKS_BACK):
            focus.question = text
        return focus
    rows = _rows(result)
    if rows is not None:
        numbers = [str(r.get("invoice_number") or "") for r in rows]
        if any(numbers):
            focus.listed, focus.index, focus.invoices = numbers, None, []
        accounts = {r.get("account") for r in rows if r.get("account")}
        if len(accounts) == 1:
            focus.account = str(accounts.pop())
        elif args.get("account"):
            focus.account = str(args["account"])
    if tool == "get_invoice" and result.get("invoice_number"):
        number = str(result["invoice_number"])
        focus.invoices = [number]
        focus.account = result.get("account") or focus.account
        focus.index = focus.listed.index(number) if number in focus.listed else None
    draft = result.get("draft")
    if isinstance(draft, dict):
        focus.draft = {k: draft.get(k) for k in DRAFT_FIELDS}
        focus.invoices = list(draft.get("invoice_numbers") or [])
        if focus.invoices and focus.invoices[0] in focus.listed:
            focus.index = focus.listed.index(focus.invoices[0])
    if tool in ("account_health", "account_contacts"):
        healths = result.get("accounts")
        if isinstance(healths, list) and len(healths) == 1:
            focus.account = healths[0].get("account") or focus.account
        elif result.get("account"):
            focus.account = str(result["account"])
    if tool == "send_email" and result.get("done"):
        focus.draft = None
    return focus


def _rows(result: dict[str, Any]) -> list[dict[str, Any]] | None:
    for key in ("items", "invoices", "findings"):
        rows = result.get(key)
        if isinstance(rows, list):
            return [r for r in rows if isinstance(r, dict)]
    return None
