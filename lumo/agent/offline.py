"""The offline model: a deterministic stand-in for the LLM, with the real client's interface.

It reads the rep's last message, asks for the tools its intent needs, and once their results are in, words
the answer from `prompts/offline/` templates, citing the tools' numbers exactly as given (never reordering
or recomputing them). Used when there is no OPENAI_API_KEY, and as the fallback when the model is down.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from decimal import InvalidOperation
from typing import Any

from jinja2 import TemplateError

from lumo.agent.intents import Intent, parse_intent
from lumo.agent.understand import plan_intent, understand
from lumo.crm.stale import fix_calls
from lumo.llm.client import ModelReply, ToolCall, Usage
from lumo.templates import render

log = logging.getLogger("lumo.agent")

MODEL_NAME = "lumo-offline"
CHARS_PER_TOKEN = 4  # a rough rule of thumb for English text; there is no tokenizer offline

READ_TEMPLATES = {
    "todays_priorities": "offline/priorities.md.j2",
    "overdue_invoices": "offline/overdue.md.j2",
    "search_invoices": "offline/invoices.md.j2",
    "stale_findings": "offline/stale.md.j2",
    "get_invoice": "offline/invoice.md.j2",
    "draft_followup_email": "offline/draft.md.j2",
    "account_health": "offline/health.md.j2",
    "revenue_at_risk": "offline/risk.md.j2",
    "team_overview": "offline/team.md.j2",
    "open_tasks": "offline/tasks.md.j2",
    "account_contacts": "offline/contacts.md.j2",
    "recent_changes": "offline/changes.md.j2",
    "payments_to_match": "offline/payments_to_match.md.j2",
    "cash_forecast": "offline/forecast.md.j2",
}
SIDE_EFFECTS = frozenset(
    {
        "send_email",
        "update_invoice_status",
        "create_follow_up_task",
        "log_note",
        "record_promise",
        "record_payment",
        "open_dispute",
        "resolve_dispute",
        "log_call",
        "apply_bank_line",
        "link_payment_event",
    }
)
EMAIL_FIELDS = ("to", "cc", "subject", "body", "invoice_numbers")
NOT_FOUND = re.compile(r"^(.+?) not found\.?$")


@dataclass(frozen=True)
class ToolOutcome:
    """One tool call of the current request and what came back."""

    name: str
    args: dict[str, Any]
    result: dict[str, Any]


@dataclass(frozen=True)
class Turn:
    text: str  # the rep's last message
    outcomes: list[ToolOutcome]  # tool results after it, in order
    calls_so_far: int  # tool calls in the whole conversation, so new call ids stay unique


class OfflineModel:
    """Same `complete()` as `lumo.llm.ModelClient`; deterministic, no network."""

    name = MODEL_NAME

    def __init__(self, today: dt.date) -> None:
        self.today = today

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        *,
        plan: dict[str, Any] | None = None,
    ) -> ModelReply:
        """`plan`: the graph's understanding of the message (book names, thread focus); else read here alone."""
        turn = read_turn(messages)
        available = tool_names(tools)
        intent = plan_intent(plan) if plan else understand(turn.text, self.today)
        calls: list[tuple[str, dict[str, Any]]] = []
        if turn.outcomes:
            if intent.name == "send" and "send_email" in available:
                calls = send_calls(turn.outcomes)
            elif intent.name == "fix_stale":
                calls = [(n, a) for n, a in fix_stale_calls(turn.outcomes) if n in available]
            text = None if calls else with_notes(compose(turn.outcomes), intent)
        else:
            calls = [(name, args) for name, args in intent.calls if name in available]
            if not calls and intent.name in ("clarify", "unknown") and not plan:
                calls = [(n, a) for n, a in follow_up(turn.text, messages, self.today) if n in available]
            text = None if calls else with_notes(answer_without_tools(intent), intent)
        return _reply(messages, text, calls, turn.calls_so_far)


# --- reading the conversation ---------------------------------------------------------------------


def message_text(content: Any) -> str:
    """The text of a message's content: a string, None, or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _call_name_args(call: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    fn = call.get("function") or {}
    try:
        args = json.loads(fn.get("arguments") or "{}")
    except json.JSONDecodeError:
        args = {}
    return fn.get("name", ""), args if isinstance(args, dict) else {}


def _parse_result(content: Any) -> dict[str, Any]:
    text = message_text(content)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"error": text}
    return data if isinstance(data, dict) else {"value": data}


def read_turn(messages: list[dict[str, Any]]) -> Turn:
    """The rep's last message and the tool outcomes after it, each named via its assistant tool call's id."""
    start = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
    calls_so_far = sum(len(m.get("tool_calls") or []) for m in messages)
    if start is None:
        return Turn("", [], calls_so_far)
    called: dict[str, tuple[str, dict[str, Any]]] = {}
    outcomes: list[ToolOutcome] = []
    for message in messages[start + 1 :]:
        for call in message.get("tool_calls") or []:
            called[call.get("id", "")] = _call_name_args(call)
        if message.get("role") == "tool":
            name, args = called.get(message.get("tool_call_id", ""), ("", {}))
            outcomes.append(ToolOutcome(name, args, _parse_result(message.get("content"))))
    return Turn(message_text(messages[start].get("content")), outcomes, calls_so_far)


def tool_names(tools: list[dict[str, Any]] | None) -> frozenset[str]:
    """Names of the offered tools; None or [] offers none (the graph's forced final answer)."""
    names = set()
    for spec in tools or []:
        name = (spec.get("function") or {}).get("name") or spec.get("name")
        if name:
            names.add(name)
    return frozenset(names)


# --- deciding what to call ------------------------------------------------------------------------


def _draft_of(outcome: ToolOutcome) -> dict[str, Any] | None:
    draft = outcome.result.get("draft") if outcome.name == "draft_followup_email" else None
    return draft if isinstance(draft, dict) else None


def _sendable(draft: dict[str, Any] | None) -> bool:
    return draft is not None and not draft.get("skipped_reason") and bool(draft.get("to"))


def send_calls(outcomes: list[ToolOutcome]) -> list[tuple[str, dict[str, Any]]]:
    """send_email for each sendable draft of this request, once: nothing if a send was already asked."""
    if any(o.name == "send_email" for o in outcomes):
        return []
    calls: list[tuple[str, dict[str, Any]]] = []
    covered: set[tuple[str, ...]] = set()
    for outcome in outcomes:
        draft = _draft_of(outcome)
        if not _sendable(draft):
            continue
        assert draft is not None
        key = tuple(draft["invoice_numbers"])
        if key not in covered:  # one draft can cover several of the contact's invoices
            covered.add(key)
            calls.append(("send_email", {**{k: draft[k] for k in EMAIL_FIELDS if k != "cc"}, "cc": draft.get("cc") or []}))
    return calls


def fix_stale_calls(outcomes: list[ToolOutcome]) -> list[tuple[str, dict[str, Any]]]:
    """Each stale finding's fix action, proposed together once: nothing once fixes were proposed or decided."""
    if any(o.name in SIDE_EFFECTS for o in outcomes):
        return []
    findings = [f for o in outcomes if o.name == "stale_findings" for f in o.result.get("findings") or []]
    return fix_calls([f for f in findings if isinstance(f, dict)])


# --- follow-ups in a thread -----------------------------------------------------------------------

_SEND_IT = re.compile(
    r"^\s*(?:ok(?:ay)?[,.!]?\s*|yes[,.!]?\s*|great[,.!]?\s*)?(?:please\s+)?send\s+(?:it|that|this|the draft)\b", re.I
)
_AND_ABOUT = re.compile(r"^\s*(?:and|what about|how about)\s+(?:for\s+|of\s+)?(?P<name>[^?]+?)\s*\??\s*$", re.I)


def _previous_turn(messages: list[dict[str, Any]]) -> tuple[str, list[ToolOutcome]]:
    """The rep's message before the last one, and what its tools returned."""
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if len(users) < 2:
        return "", []
    earlier = read_turn(messages[: users[-1]])
    return earlier.text, earlier.outcomes


def follow_up(text: str, messages: list[dict[str, Any]], today: dt.date) -> list[tuple[str, dict[str, Any]]]:
    """Calls for a short follow-up ("send it", "and Hooli?") read against the previous request."""
    before, outcomes = _previous_turn(messages)
    if _SEND_IT.search(text):
        return send_calls(outcomes)
    about = _AND_ABOUT.match(text)
    if about and before:
        previous = parse_intent(before, today)
        if any("account" in args for _, args in previous.calls):
            name = about.group("name").strip()
            return [(n, {**a, "account": name} if "account" in a else a) for n, a in previous.calls]
    return []


# --- wording the answer ---------------------------------------------------------------------------


def compose(outcomes: list[ToolOutcome]) -> str:
    """The reply from this request's tool results, one section per result, in the order they came."""
    sent = any(o.name == "send_email" for o in outcomes)
    fixed = any(o.name in SIDE_EFFECTS for o in outcomes)
    sections = []
    for outcome in outcomes:
        if sent and _sendable(_draft_of(outcome)):
            continue  # the send's outcome speaks for the draft it came from
        if fixed and outcome.name == "stale_findings":
            continue  # the fixes' outcomes say what changed; the findings before them are history
        section = _section(outcome)
        if section:
            sections.append(section)
    return "\n\n".join(sections) or render("offline/unknown.md.j2", offline=True)


def _section(outcome: ToolOutcome) -> str:
    try:
        return render_outcome(outcome)
    except (TemplateError, KeyError, TypeError, ValueError, InvalidOperation):
        # A result shaped unlike the tool's contract: say so rather than fail the chat.
        log.warning("offline.unworded tool=%s", outcome.name, exc_info=True)
        return f"I got a result from {outcome.name or 'a tool'} but couldn't put it into words offline."


def render_outcome(outcome: ToolOutcome) -> str:
    name, args, result = outcome.name, outcome.args, outcome.result
    if "error" in result:
        return render_error(name, str(result["error"]))
    if result.get("rejected"):
        return render("offline/action_rejected.md.j2", tool=name, args=args, feedback=result.get("feedback") or "")
    if result.get("done") or name in SIDE_EFFECTS:
        inner = result.get("result") if isinstance(result.get("result"), dict) else result
        return render("offline/action_done.md.j2", tool=name, args=args, result=inner)
    template = READ_TEMPLATES.get(name)
    return render(template, **{"args": args, **result}) if template else ""


def render_error(tool: str, error: str) -> str:
    """One line: what could not be found, or what failed and why."""
    first = error.strip().splitlines()[0] if error.strip() else "unknown error"
    found = NOT_FOUND.match(first)
    return render("offline/error.md.j2", tool=tool, error=first.rstrip("."), missing=found.group(1) if found else None)


def with_notes(text: str, intent: Intent) -> str:
    """The reply with what it could not do said at its end (a filter not applied is never dropped silently)."""
    return "\n\n".join([text, *intent.notes]) if intent.notes else text


def answer_without_tools(intent: Intent) -> str:
    if intent.name == "help":
        return render("offline/help.md.j2", offline=True)
    if intent.name == "clarify":
        return render("offline/clarify.md.j2", question=intent.question or "Could you say a bit more?")
    if intent.calls:
        return render("offline/no_data.md.j2")
    return render("offline/unknown.md.j2", offline=True)


# --- the reply ------------------------------------------------------------------------------------


def estimate_tokens(text_chars: int) -> int:
    """An estimate, not a count: ~4 characters per token, so token accounting has a number offline."""
    return text_chars // CHARS_PER_TOKEN


def _prompt_chars(messages: list[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        total += len(message_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            total += len(fn.get("name") or "") + len(fn.get("arguments") or "")
    return total


def _reply(
    messages: list[dict[str, Any]], text: str | None, calls: list[tuple[str, dict[str, Any]]], calls_so_far: int
) -> ModelReply:
    tool_calls = [
        ToolCall(id=f"call_offline_{calls_so_far + i}", name=name, arguments=json.dumps(args, sort_keys=True))
        for i, (name, args) in enumerate(calls, start=1)
    ]
    prompt = estimate_tokens(_prompt_chars(messages))
    completion = estimate_tokens(len(text or "") + sum(len(c.arguments) for c in tool_calls))
    return ModelReply(
        content=text if not tool_calls else None,
        tool_calls=tool_calls,
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
        model=MODEL_NAME,
        attempts=1,
        finish_reason="tool_calls" if tool_calls else "stop",
    )
