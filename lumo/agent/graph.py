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

from lumo.agent import answers, callids, toolrun
from lumo.agent.clock import action_day
from lumo.agent.context import AgentContext
from lumo.agent.contracts import Decision, PendingRecord, public_action
from lumo.agent.deadline import TurnTimeout
from lumo.agent.decisions import RETRY_KEY, outcome_of
from lumo.agent.facts import TurnFacts
from lumo.agent.focus import Focus, after_request, after_result
from lumo.agent.intents import Intent
from lumo.agent.state import AgentState
from lumo.agent.understand import plan_state, understand
from lumo.crm import book_cache
from lumo.crm.book import BookNames, book_names
from lumo.crm.drafts import DraftJson, draft_for_invoice, facts_for_invoices
from lumo.crm.grounding import check_grounding, facts_in_text
from lumo.crm.lifecycle import AsOf
from lumo.llm import ModelError, ModelReply, ModelUnavailable
from lumo.templates import render
from tools import REGISTRY, ToolContext, schemas

log = logging.getLogger("lumo.agent")

PREPARED_INTENTS = frozenset({"priorities", "invoice"})
# A prepared "what should I do today" turn is worded, and may act on its items: only those tools are offered,
# so the daily question's prompt stays under 3,000 tokens (ARCHITECTURE.md section 7); any other turn gets all.
DAY_PLAN_TOOLS = frozenset(
    {"get_invoice", "draft_followup_email", "send_email", "create_follow_up_task", "log_note", "update_invoice_status"}
)
OFFLINE_NOTE = answers.OFFLINE_NOTE
RETRY_NOTE = "I could not do it just now ({reason}); nothing was changed and it is still waiting: approve again to retry."
GUARD_NOTE = "Your answer states facts that are not in the tool results: {problems}. Rewrite it using only the tool results."


def tool_context(ctx: AgentContext) -> ToolContext:
    return ToolContext(ctx.session_factory, ctx.scope, ctx.as_of, ctx.now, ctx.thread_key, versions=ctx.versions)


def action_context(ctx: AgentContext) -> ToolContext:
    """For side effects: checked and worded against the real today, whatever day the client asked about."""
    return ToolContext(ctx.session_factory, ctx.scope, action_day(ctx.as_of, ctx.now), ctx.now, ctx.thread_key)


def _tool_message(call_id: str, content: dict[str, Any]) -> dict[str, Any]:
    """A tool result as the model reads it: compact JSON (prompt tokens are latency)."""
    return {
        "role": "tool",
        "tool_call_id": call_id,
        "content": json.dumps(content, default=str, separators=(",", ":"), ensure_ascii=False),
    }


def _collect(name: str, result: dict[str, Any], items: list[dict[str, Any]], drafts: list[dict[str, Any]]) -> None:
    """Keep the structured rows an answer is built on, for the API's `items` and `drafts`."""
    for key in ("items", "invoices", "findings", "accounts", "reps", "tasks", "changes"):
        if isinstance(result.get(key), list):
            items.extend(result[key])
    if name == "get_invoice" and "invoice_number" in result:
        items.append({k: v for k, v in result.items() if k not in ("history", "payments", "contacts")})
    if isinstance(result.get("draft"), dict):
        drafts.append(result["draft"])


async def _run_reads(ctx: AgentContext, calls: list[dict[str, Any]], state: AgentState) -> dict[str, Any]:
    tctx, actx = tool_context(ctx), action_context(ctx)
    messages: list[dict[str, Any]] = []
    pending: list[PendingRecord] = []
    items, drafts = list(state.get("items", [])), list(state.get("drafts", []))
    rewrites = state.get("email_rewrites", 0)
    notes = list(state.get("notes", []))
    usage = dict(state.get("usage", {}))
    focus = Focus.of(state.get("focus"))
    asked = state["messages"][state.get("turn_start", len(state["messages"]) - 1)].get("content") or ""
    for call in calls:
        try:
            tool, args = toolrun.parse_call(call)
        except toolrun.ToolCallError as exc:
            messages.append(_tool_message(call["id"], {"error": str(exc)}))
            continue
        if not tool.side_effect:
            result = await toolrun.run_read(tctx, tool, args)
            _collect(tool.name, result, items, drafts)
            focus = after_result(focus, str(asked), tool.name, args.model_dump(mode="json"), result)
            messages.append(_tool_message(call["id"], result))
            continue
        try:
            if tool.name == "send_email":
                args, rewrites, note = await _guard_email(ctx, actx.as_of, args, rewrites)
                if note:
                    notes.append(note)
                    usage["guard_catches"] = usage.get("guard_catches", 0) + 1
            description = await toolrun.describe(actx, tool, args)
        except EmailRewrite as exc:
            rewrites += 1
            usage["guard_catches"] = usage.get("guard_catches", 0) + 1
            messages.append(_tool_message(call["id"], {"error": str(exc)}))
            continue
        except toolrun.ToolCallError as exc:
            messages.append(_tool_message(call["id"], {"error": str(exc)}))
            continue
        # The index of the asking message makes ids unique in the thread even when call ids repeat.
        pending.append(
            PendingRecord(
                id=f"a{len(state['messages']) - 1}-{call['id']}",
                call_id=call["id"],
                tool=tool.name,
                args=args.model_dump(mode="json"),
                description=description,
            )
        )
    return {
        "messages": messages,
        "pending": pending,
        "items": items,
        "drafts": drafts,
        "email_rewrites": rewrites,
        "notes": notes,
        "usage": usage,
        "focus": focus.as_state(),
    }


async def _guard_email(ctx: AgentContext, as_of: AsOf, args: Any, rewrites: int) -> tuple[Any, int, str | None]:
    """An email the model wrote must match its invoices' facts: one rewrite, then the template draft.

    Returns the (possibly replaced) arguments, the rewrites used and a note; raises ToolCallError to ask
    the model for its one rewrite.
    """

    # The chat's day is ahead of today: the email was written from reads about that day, so today's draft replaces it.
    ahead = as_of.today != ctx.as_of.today

    def check() -> tuple[list[Any], DraftJson | None]:
        with ctx.session_factory() as session:
            if ahead:
                return [], draft_for_invoice(session, ctx.scope, args.invoice_numbers[0], as_of).as_json()
            facts = facts_for_invoices(session, ctx.scope, list(args.invoice_numbers), as_of)
            problems = check_grounding(f"{args.subject}\n{args.body}", facts)
            if not problems or rewrites == 0:
                return problems, None
            return problems, draft_for_invoice(session, ctx.scope, args.invoice_numbers[0], as_of).as_json()

    try:
        problems, template = await asyncio.to_thread(check)
    except Exception as exc:  # noqa: BLE001  (an unknown or out-of-scope invoice)
        raise toolrun.ToolCallError(str(exc)) from None
    if not problems and not ahead:
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
    if ahead:
        return fixed, rewrites, f"The email is worded for today, {as_of.today}: emails are never dated ahead ({ctx.as_of.today})."
    return fixed, rewrites, f"The email was replaced by the template draft because it misstated facts ({listed})."


class EmailRewrite(toolrun.ToolCallError):
    """The model's email misstated facts: it gets one chance to rewrite it."""


def _book(ctx: AgentContext) -> BookNames:
    with ctx.session_factory() as session:
        return book_cache.cached(session, ctx.scope, ("book_names",), lambda: book_names(session, ctx.scope), ctx.versions)


async def prepare(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Understand the message against the rep's book and the thread; run the calls of a certain request (and,
    for the offline model, every call it understood) before the model is asked."""
    ctx = runtime.context
    turn_start = len(state["messages"]) - 1
    text = state["messages"][-1]["content"]
    focus = Focus.of(state.get("focus"))
    if state.get("proposed"):  # a client (CLI, HTTP) named the actions itself: propose them as they are
        intent = Intent("proposed", [(p["name"], p["args"]) for p in state["proposed"]])
    else:
        intent = understand(text, ctx.as_of.today, await asyncio.to_thread(_book, ctx), focus)
    focus = after_request(focus, text, intent.name, intent.calls)
    understood = {"turn_start": turn_start, "plan": plan_state(intent), "focus": focus.as_state()}
    prepared = intent.name in PREPARED_INTENTS or intent.name == "proposed" or ctx.model_is_offline
    if not intent.calls or not prepared:
        return understood
    state = {**state, **understood}  # type: ignore[typeddict-item]
    ids = callids.unique_ids([""] * len(intent.calls), callids.used_ids(state["messages"]), f"call_prep_{turn_start}")
    calls = [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args, sort_keys=True)}}
        for call_id, (name, args) in zip(ids, intent.calls, strict=True)
    ]
    out = await _run_reads(ctx, calls, state)
    assistant = {"role": "assistant", "content": None, "tool_calls": calls}
    return {**out, "turn_start": turn_start, "plan": understood["plan"], "messages": [assistant, *out["messages"]]}


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


def _assistant(reply: ModelReply, thread: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        # Ids as the server sent them only when they are unique in the thread (see callids).
        ids = callids.unique_ids([c.id for c in reply.tool_calls], callids.used_ids(thread), f"call_lumo_{len(thread)}")
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for i, c in zip(ids, reply.tool_calls, strict=True)
        ]
    return message


def _turn_facts(state: AgentState, tz: Any = None) -> TurnFacts:
    facts = TurnFacts(tz=tz)
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


def _prepared_priorities(state: AgentState) -> bool:
    for message in state["messages"][state.get("turn_start", 0) :]:
        for call in message.get("tool_calls") or []:
            if call["id"].startswith("call_prep_") and call["function"]["name"] == "todays_priorities":
                return True
    return False


async def agent(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    steps = state.get("steps", 0) + 1
    final_step = steps >= ctx.max_steps
    notes = list(state.get("notes", []))
    offline = ctx.model_is_offline or answers.went_offline(notes)
    usage = dict(state.get("usage", {}))
    window = callids.repaired(_window(state["messages"], state.get("turn_start", 0), ctx.history_messages))
    messages = [_system(ctx), *window]
    without = frozenset(REGISTRY) - DAY_PLAN_TOOLS if _prepared_priorities(state) else frozenset()
    tools = None if final_step else schemas(without, strict=ctx.strict_tools)

    async def call(model: Any, msgs: list[dict[str, Any]], tool_specs: list[dict[str, Any]] | None) -> ModelReply:
        reply: ModelReply
        if model is ctx.offline:  # it follows the understanding of prepare (book names, thread focus)
            reply = await model.complete(msgs, tools=tool_specs, plan=state.get("plan"))
        else:  # the real model answers within what is left of the turn's deadline
            reply = await ctx.deadline.run(lambda: model.complete(msgs, tools=tool_specs))
        usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + reply.usage.prompt_tokens
        usage["completion_tokens"] = usage.get("completion_tokens", 0) + reply.usage.completion_tokens
        usage["model_calls"] = usage.get("model_calls", 0) + 1
        return reply

    reply = None
    if not offline:
        try:
            reply = await call(ctx.model, messages, tools)
        except ModelError as exc:  # the set-up is wrong: say so, do not pretend the model is merely down
            log.error("agent.model_misconfigured kind=%s problem=%s", exc.problem.kind, exc.problem.message)
            if exc.problem.kind != "bad_response":  # refused (key, model, tools): the question is not answered
                notes.append(exc.problem.note)
                base = {"steps": steps, "usage": usage, "notes": notes, "model": "lumo-offline"}
                return {**base, "messages": [{"role": "assistant", "content": exc.problem.note}]}
            # The request was taken but the body was not a completion (a proxy's page, cut JSON): the rep still
            # gets the offline answer, with what is wrong.
            notes.append(answers.offline_because(f"{exc.problem.message} Run `lumo doctor` to check the set-up."))
        except (ModelUnavailable, TurnTimeout) as exc:
            log.warning("agent.model_unavailable error=%s", exc)
            notes.append(OFFLINE_NOTE)
        else:
            unusable = answers.unusable(reply, final_step)
            if unusable:
                log.warning("agent.model_reply_unusable finish_reason=%s problem=%s", reply.finish_reason, unusable)
                notes.append(unusable)
                reply = None
        offline = reply is None
    if reply is None:
        reply = await call(ctx.offline, messages, tools)
    model_name = "lumo-offline" if offline else reply.model
    base = {"steps": steps, "usage": usage, "notes": notes, "model": model_name}
    if reply.tool_calls and not final_step:
        return {**base, "messages": [_assistant(reply, state["messages"])]}
    text = (reply.content or "").strip()
    text, guard_note = await _guarded(ctx, state, messages, text, offline, call, usage)
    if guard_note:
        notes.append(guard_note)
    elif not offline and reply.finish_reason == "length":
        notes.append(answers.CUT_NOTE)
        text = f"{text}\n\n{answers.CUT_NOTE}"
    offline_note = answers.offline_note(notes)
    if offline_note and offline_note not in text:
        text = f"{text}\n\n{offline_note}"
    return {**base, "messages": [{"role": "assistant", "content": text}]}


async def _guarded(
    ctx: AgentContext,
    state: AgentState,
    messages: list[dict[str, Any]],
    text: str,
    offline: bool,
    call: Any,
    usage: dict[str, int],
) -> tuple[str, str | None]:
    """Check the answer's facts; rewrite once, then fall back to the offline model's grounded summary."""
    if offline:  # the offline model words only what the tools returned
        return text, None
    facts = _turn_facts(state, ctx.as_of.tz)
    problems = facts.check(text, ctx.as_of.today)
    if not problems:
        return text, None
    listed = "; ".join(f"{p.kind} {p.found!r}" for p in problems)
    log.warning("agent.grounding_mismatch problems=%s", listed)
    usage["guard_catches"] = usage.get("guard_catches", 0) + 1  # counted, so evals report what was caught
    retry = [*messages, {"role": "assistant", "content": text}, {"role": "system", "content": GUARD_NOTE.format(problems=listed)}]
    try:
        second = await call(ctx.model, retry, None)
        rewritten = (second.content or "").strip()
        if rewritten and not facts.check(rewritten, ctx.as_of.today):
            return rewritten, None
    except (ModelUnavailable, ModelError, TurnTimeout):
        pass
    fallback = await call(ctx.offline, [_system(ctx), *state["messages"][state.get("turn_start", 0) :]], None)
    return (fallback.content or "").strip(), f"The model's answer misstated facts ({listed}); replaced by the grounded summary."


async def tools_node(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    return await _run_reads(runtime.context, state["messages"][-1].get("tool_calls", []), state)


async def review(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    decided = state.get("decisions", {})
    undecided = [a for a in state.get("pending", []) if a["id"] not in decided]
    if not undecided:
        return {}
    answer = interrupt({"pending_actions": [public_action(a) for a in undecided]})
    fresh = {k: v for k, v in (answer or {}).get("decisions", {}).items() if any(a["id"] == k for a in undecided)}
    return {"decisions": {**decided, **fresh}}


async def _edit_mismatches(ctx: AgentContext, args: Any) -> str:
    """What a rep's edited email states that its invoices' facts do not ('' when it matches)."""

    def check() -> list[Any]:
        with ctx.session_factory() as session:
            facts = facts_for_invoices(session, ctx.scope, list(args.invoice_numbers), ctx.as_of)
        return check_grounding(f"{args.subject}\n{args.body}", facts)

    try:
        problems = await asyncio.to_thread(check)
    except Exception:  # noqa: BLE001  (an unknown invoice: the tool itself reports it when it runs)
        return ""
    return "; ".join(f"{p.kind} {p.found!r}" for p in problems)


async def execute(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    tctx = action_context(ctx)
    messages: list[dict[str, Any]] = []
    held: list[PendingRecord] = []
    notes = list(state.get("notes", []))
    still_pending: list[PendingRecord] = []
    retry_note = ""
    decided = dict(state.get("decided", {}))
    for action in state.get("pending", []):
        decision = Decision.of(state["decisions"][action["id"]])
        if decision.type == "reject":
            content: dict[str, Any] = {"rejected": True, "feedback": decision.reason or "rejected by the rep"}
        else:
            tool = REGISTRY[action["tool"]]
            try:
                args = toolrun.validate(tool, {**action["args"], **(decision.args or {})})
                edited = tool.name == "send_email" and (decision.type == "edit" or action.get("edited"))
                mismatch = await _edit_mismatches(ctx, args) if edited else ""
                if mismatch and not decision.approve_anyway:
                    # The guard checks the rep's words too: show the mismatch, send nothing until told explicitly.
                    held.append(_held(action, args, mismatch))
                    continue
                content = await toolrun.execute(tctx, tool, args, f"{ctx.thread_key}:{action['id']}")
                ctx.versions.forget()  # the turn's reads from here on see its own write
                if mismatch:
                    log.warning("agent.guard_override action=%s user=%s problems=%s", action["id"], ctx.scope.user_id, mismatch)
                    content["guard_override"] = mismatch
                    notes.append(f"Approved anyway by the rep although the guard found: {mismatch}.")
            except toolrun.ToolCallError as exc:
                content = {"error": f"the edited action is invalid: {exc}"}
            if RETRY_KEY in content:  # the database was busy or away: nothing ran, the approval is not used up
                still_pending.append(action)
                retry_note = RETRY_NOTE.format(reason=content[RETRY_KEY])
                continue
        decided[action["id"]] = outcome_of(action, decision, content)
        messages.append(_tool_message(action["call_id"], content))
    return {
        "messages": messages,
        "pending": still_pending + held,
        "decisions": {},
        "decided": decided,
        "retry_note": retry_note,
        "notes": notes,
    }


def _held(action: PendingRecord, args: Any, mismatch: str) -> PendingRecord:
    """The edited action back in front of the rep, with what the guard found."""
    base = action.get("base_description") or action["description"]
    return {
        **action,
        "args": args.model_dump(mode="json"),
        "edited": True,
        "base_description": base,
        "description": f"{base}. Not sent: the edited email states facts not in the invoices ({mismatch}); "
        "edit it again, reject it, or approve anyway",
    }


def after_agent(state: AgentState) -> Literal["tools", "__end__"]:
    return "tools" if state["messages"][-1].get("tool_calls") else "__end__"  # END, spelled as its Literal


def after_tools(state: AgentState) -> Literal["review", "agent"]:
    return "review" if state.get("pending") else "agent"


def after_review(state: AgentState) -> Literal["review", "execute"]:
    decided = state.get("decisions", {})
    return "review" if any(a["id"] not in decided for a in state.get("pending", [])) else "execute"


def after_execute(state: AgentState) -> Literal["review", "agent"]:
    return "review" if state.get("pending") else "agent"


def after_prepare(state: AgentState) -> Literal["review", "agent", "__end__"]:
    if state.get("proposed") and not state.get("pending"):
        return "__end__"  # every proposed action was refused: the caller reports why, no model needed
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
    graph.add_conditional_edges("execute", after_execute)
    return graph.compile(checkpointer=checkpointer)
