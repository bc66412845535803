"""The agent graph: prepare -> agent -> tools -> (review -> execute) -> agent ... -> answer.

- prepare runs the tools a request certainly needs (today's priorities, a named invoice) before the model
  is asked, so such a turn costs one model call;
- agent calls the model (falling back to the offline model) and guards the facts of its answer;
- tools runs read-only calls and turns side-effect calls into pending actions, writing nothing;
- review pauses with interrupt() until the rep approves, edits or rejects every pending action;
- execute runs the approved ones, idempotently per action id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from lumo.agent import toolrun
from lumo.agent.context import AgentContext
from lumo.agent.facts import TurnFacts
from lumo.agent.intents import parse_intent
from lumo.agent.state import AgentState
from lumo.crm.drafts import draft_for_invoice, facts_for_invoices
from lumo.crm.grounding import check_grounding, facts_in_text
from lumo.llm import ModelError, ModelReply, ModelUnavailable
from lumo.templates import render
from tools import REGISTRY, ToolContext, schemas

log = logging.getLogger("lumo.agent")

PREPARED_INTENTS = frozenset({"priorities", "invoice"})
OFFLINE_NOTE = "(Answered by Lumo's offline mode: the AI model is unavailable right now.)"
GUARD_NOTE = "Your answer states facts that are not in the tool results: {problems}. Rewrite it using only the tool results."


def tool_context(ctx: AgentContext) -> ToolContext:
    return ToolContext(ctx.session_factory, ctx.scope, ctx.as_of, ctx.now, ctx.thread_key)


def _tool_message(call_id: str, content: dict[str, Any]) -> dict[str, Any]:
    """A tool result as the model reads it: compact JSON (prompt tokens are latency)."""
    return {
        "role": "tool",
        "tool_call_id": call_id,
        "content": json.dumps(content, default=str, separators=(",", ":"), ensure_ascii=False),
    }


def _collect(name: str, result: dict[str, Any], items: list[dict[str, Any]], drafts: list[dict[str, Any]]) -> None:
    """Keep the structured rows an answer is built on, for the API's `items` and `drafts`."""
    for key in ("items", "invoices", "findings", "accounts"):
        if isinstance(result.get(key), list):
            items.extend(result[key])
    if name == "get_invoice" and "invoice_number" in result:
        items.append({k: v for k, v in result.items() if k not in ("history", "payments", "contacts")})
    if isinstance(result.get("draft"), dict):
        drafts.append(result["draft"])


async def _run_reads(ctx: AgentContext, calls: list[dict[str, Any]], state: AgentState) -> dict[str, Any]:
    tctx = tool_context(ctx)
    messages, pending = [], []
    items, drafts = list(state.get("items", [])), list(state.get("drafts", []))
    rewrites = state.get("email_rewrites", 0)
    notes = list(state.get("notes", []))
    for call in calls:
        try:
            tool, args = toolrun.parse_call(call)
        except toolrun.ToolCallError as exc:
            messages.append(_tool_message(call["id"], {"error": str(exc)}))
            continue
        if not tool.side_effect:
            result = await toolrun.run_read(tctx, tool, args)
            _collect(tool.name, result, items, drafts)
            messages.append(_tool_message(call["id"], result))
            continue
        try:
            if tool.name == "send_email":
                args, rewrites, note = await _guard_email(ctx, args, rewrites)
                if note:
                    notes.append(note)
            description = await toolrun.describe(tctx, tool, args)
        except EmailRewrite as exc:
            rewrites += 1
            messages.append(_tool_message(call["id"], {"error": str(exc)}))
            continue
        except toolrun.ToolCallError as exc:
            messages.append(_tool_message(call["id"], {"error": str(exc)}))
            continue
        # The index of the asking message makes ids unique in the thread even when call ids repeat.
        pending.append(
            {
                "id": f"a{len(state['messages']) - 1}-{call['id']}",
                "call_id": call["id"],
                "tool": tool.name,
                "args": args.model_dump(mode="json"),
                "description": description,
            }
        )
    return {
        "messages": messages,
        "pending": pending,
        "items": items,
        "drafts": drafts,
        "email_rewrites": rewrites,
        "notes": notes,
    }


async def _guard_email(ctx: AgentContext, args: Any, rewrites: int) -> tuple[Any, int, str | None]:
    """An email the model wrote must match its invoices' facts: one rewrite, then the template draft.

    Returns the (possibly replaced) arguments, the rewrites used and a note; raises ToolCallError to ask
    the model for its one rewrite.
    """

    def check() -> tuple[list[Any], dict[str, Any] | None]:
        with ctx.session_factory() as session:
            facts = facts_for_invoices(session, ctx.scope, list(args.invoice_numbers), ctx.as_of)
            problems = check_grounding(f"{args.subject}\n{args.body}", facts)
            if not problems or rewrites == 0:
                return problems, None
            return problems, draft_for_invoice(session, ctx.scope, args.invoice_numbers[0], ctx.as_of).as_json()

    try:
        problems, template = await asyncio.to_thread(check)
    except Exception as exc:  # noqa: BLE001  (an unknown or out-of-scope invoice)
        raise toolrun.ToolCallError(str(exc)) from None
    if not problems:
        return args, rewrites, None
    listed = "; ".join(f"{p.kind} {p.found!r}" for p in problems)
    if template is None:
        raise EmailRewrite(
            f"the email states facts that do not match the invoices ({listed}); rewrite it from draft_followup_email's facts"
        )
    if template["skipped_reason"]:
        raise toolrun.ToolCallError(f"no email should be sent: {template['skipped_reason']}")
    fixed = args.model_copy(
        update={
            "subject": template["subject"],
            "body": template["body"],
            "invoice_numbers": template["invoice_numbers"],
            "to": template["to"],
            "cc": template["cc"],
        }
    )
    return fixed, rewrites, f"The email was replaced by the template draft because it misstated facts ({listed})."


class EmailRewrite(toolrun.ToolCallError):
    """The model's email misstated facts: it gets one chance to rewrite it."""


async def prepare(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    turn_start = len(state["messages"]) - 1
    intent = parse_intent(state["messages"][-1]["content"], ctx.as_of.today)
    if intent.name not in PREPARED_INTENTS or not intent.calls:
        return {"turn_start": turn_start}
    calls = [
        {"id": f"call_prep_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args, sort_keys=True)}}
        for i, (name, args) in enumerate(intent.calls)
    ]
    out = await _run_reads(ctx, calls, state)
    assistant = {"role": "assistant", "content": None, "tool_calls": calls}
    return {**out, "turn_start": turn_start, "messages": [assistant, *out["messages"]]}


def _window(messages: list[dict[str, Any]], turn_start: int, size: int) -> list[dict[str, Any]]:
    """The recent thread, starting at a user message so tool calls and results stay paired."""
    start = max(0, len(messages) - size)
    start = min(start, turn_start)
    while start < turn_start and messages[start]["role"] != "user":
        start += 1
    return messages[start:]


def _system(ctx: AgentContext) -> dict[str, Any]:
    scope = ctx.scope
    text = render("system.md.j2", name=scope.name, role=scope.role, today=ctx.as_of.today.isoformat(), timezone=scope.timezone)
    return {"role": "system", "content": text}


def _assistant(reply: ModelReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in reply.tool_calls
        ]
    return message


def _turn_facts(state: AgentState) -> TurnFacts:
    facts = TurnFacts()
    for message in state["messages"][state.get("turn_start", 0) :]:
        if message["role"] == "tool":
            try:
                data = json.loads(message["content"])
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and "error" in data:
                # An error may quote what the model got wrong (an email's amount): only its invoice numbers count.
                facts.numbers |= facts_in_text(message["content"])[1]
                continue
            facts.add_result(message["content"], data)
    return facts


async def agent(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    steps = state.get("steps", 0) + 1
    final_step = steps >= ctx.max_steps
    offline = ctx.model_is_offline or OFFLINE_NOTE in state.get("notes", [])
    notes = list(state.get("notes", []))
    usage = dict(state.get("usage", {}))
    messages = [_system(ctx), *_window(state["messages"], state.get("turn_start", 0), ctx.history_messages)]
    tools = None if final_step else schemas()

    async def call(model: Any, msgs: list[dict[str, Any]], tool_specs: list[dict[str, Any]] | None) -> ModelReply:
        reply: ModelReply = await model.complete(msgs, tools=tool_specs)
        usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + reply.usage.prompt_tokens
        usage["completion_tokens"] = usage.get("completion_tokens", 0) + reply.usage.completion_tokens
        usage["model_calls"] = usage.get("model_calls", 0) + 1
        return reply

    try:
        reply = await call(ctx.offline if offline else ctx.model, messages, tools)
    except (ModelUnavailable, ModelError) as exc:
        log.warning("agent.model_unavailable error=%s", exc)
        offline = True
        notes.append(OFFLINE_NOTE)
        reply = await call(ctx.offline, messages, tools)
    model_name = "lumo-offline" if offline else reply.model
    base = {"steps": steps, "usage": usage, "notes": notes, "model": model_name}
    if reply.tool_calls and not final_step:
        return {**base, "messages": [_assistant(reply)]}
    text = (reply.content or "").strip()
    text, guard_note = await _guarded(ctx, state, messages, text, offline, call)
    if guard_note:
        notes.append(guard_note)
    if OFFLINE_NOTE in notes and OFFLINE_NOTE not in text:
        text = f"{text}\n\n{OFFLINE_NOTE}"
    return {**base, "messages": [{"role": "assistant", "content": text}]}


async def _guarded(
    ctx: AgentContext, state: AgentState, messages: list[dict[str, Any]], text: str, offline: bool, call: Any
) -> tuple[str, str | None]:
    """Check the answer's facts; rewrite once, then fall back to the offline model's grounded summary."""
    if offline:  # the offline model words only what the tools returned
        return text, None
    facts = _turn_facts(state)
    problems = facts.check(text, ctx.as_of.today)
    if not problems:
        return text, None
    listed = "; ".join(f"{p.kind} {p.found!r}" for p in problems)
    log.warning("agent.grounding_mismatch problems=%s", listed)
    retry = [*messages, {"role": "assistant", "content": text}, {"role": "system", "content": GUARD_NOTE.format(problems=listed)}]
    try:
        second = await call(ctx.model, retry, None)
        rewritten = (second.content or "").strip()
        if rewritten and not facts.check(rewritten, ctx.as_of.today):
            return rewritten, None
    except (ModelUnavailable, ModelError):
        pass
    fallback = await call(ctx.offline, [_system(ctx), *state["messages"][state.get("turn_start", 0) :]], None)
    return (fallback.content or "").strip(), f"The model's answer misstated facts ({listed}); replaced by the grounded summary."


async def tools_node(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    return await _run_reads(runtime.context, state["messages"][-1].get("tool_calls", []), state)


def public_action(action: dict[str, Any]) -> dict[str, Any]:
    return {k: action[k] for k in ("id", "tool", "args", "description")}


async def review(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    decided = state.get("decisions", {})
    undecided = [a for a in state.get("pending", []) if a["id"] not in decided]
    if not undecided:
        return {}
    answer = interrupt({"pending_actions": [public_action(a) for a in undecided]})
    fresh = {k: v for k, v in (answer or {}).get("decisions", {}).items() if any(a["id"] == k for a in undecided)}
    return {"decisions": {**decided, **fresh}}


async def execute(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    tctx = tool_context(ctx)
    messages = []
    for action in state.get("pending", []):
        decision = state["decisions"][action["id"]]
        if decision.get("type") == "reject":
            content: dict[str, Any] = {"rejected": True, "feedback": decision.get("reason") or "rejected by the rep"}
        else:
            tool = REGISTRY[action["tool"]]
            try:
                args = toolrun.validate(tool, {**action["args"], **(decision.get("args") or {})})
                content = await toolrun.execute(tctx, tool, args, f"{ctx.thread_key}:{action['id']}")
            except toolrun.ToolCallError as exc:
                content = {"error": f"the edited action is invalid: {exc}"}
        messages.append(_tool_message(action["call_id"], content))
    return {"messages": messages, "pending": [], "decisions": {}}


def after_agent(state: AgentState) -> Literal["tools", "__end__"]:
    return "tools" if state["messages"][-1].get("tool_calls") else "__end__"  # END, spelled as its Literal


def after_tools(state: AgentState) -> Literal["review", "agent"]:
    return "review" if state.get("pending") else "agent"


def after_review(state: AgentState) -> Literal["review", "execute"]:
    decided = state.get("decisions", {})
    return "review" if any(a["id"] not in decided for a in state.get("pending", [])) else "execute"


def after_prepare(state: AgentState) -> Literal["review", "agent"]:
    return after_tools(state)


def build_graph(checkpointer: Any) -> Any:
    graph = StateGraph(AgentState, context_schema=AgentContext)
    graph.add_node("prepare", prepare)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools_node)
    graph.add_node("review", review)
    graph.add_node("execute", execute)
    graph.add_edge(START, "prepare")
    graph.add_conditional_edges("prepare", after_prepare)
    graph.add_conditional_edges("agent", after_agent)
    graph.add_conditional_edges("tools", after_tools)
    graph.add_conditional_edges("review", after_review)
    graph.add_edge("execute", "agent")
    return graph.compile(checkpointer=checkpointer)
