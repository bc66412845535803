"""Running tool calls: parse and validate what the model asked, run under the caller's scope, never raise.

Every failure comes back as a tool result the model can read and correct ({"error": ...}).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from lumo.agent.decisions import RETRY_KEY
from lumo.crm import actions_log
from lumo.crm.errors import LumoError
from lumo.crm.outage import DB_UNAVAILABLE, is_transient
from tools import REGISTRY, Args, Tool, ToolContext
from tools.base import omit_nulls

log = logging.getLogger("lumo.agent")


class ToolCallError(Exception):
    """A call the model got wrong; the message goes back to it."""


def parse_call(call: dict[str, Any]) -> tuple[Tool, Args]:
    fn = call.get("function") or {}
    name = fn.get("name", "")
    tool = REGISTRY.get(name)
    if tool is None:
        raise ToolCallError(f"unknown tool {name!r}; available tools: {', '.join(sorted(REGISTRY))}")
    try:
        raw = json.loads(fn.get("arguments") or "{}")
    except json.JSONDecodeError as exc:
        raise ToolCallError(f"arguments of {name} are not valid JSON ({exc.msg}); send a JSON object") from None
    if not isinstance(raw, dict):
        raise ToolCallError(f"arguments of {name} must be a JSON object")
    return tool, validate(tool, raw)


def validate(tool: Tool, raw: dict[str, Any]) -> Args:
    try:
        return tool.args.model_validate(omit_nulls(tool.args, raw))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        raise ToolCallError(f"invalid arguments for {tool.name}: {problems}") from None


def _error_text(exc: Exception) -> str:
    if isinstance(exc, LumoError | ToolCallError | ValueError):
        return str(exc)
    log.exception("tool.failed")
    return "the tool failed unexpectedly; try a different request"


def _run_read_sync(ctx: ToolContext, tool: Tool, args: Args) -> dict[str, Any]:
    with ctx.session_factory() as session:
        return tool.run(ctx, args, session)


async def run_read(ctx: ToolContext, tool: Tool, args: Args) -> dict[str, Any]:
    """Run a read-only tool; errors become {"error": ...}."""
    try:
        return await asyncio.to_thread(_run_read_sync, ctx, tool, args)
    except Exception as exc:  # noqa: BLE001  (every failure goes back to the model)
        return {"error": _error_text(exc)}


def _describe_sync(ctx: ToolContext, tool: Tool, args: Args) -> str:
    assert tool.describe is not None
    with ctx.session_factory() as session:
        return tool.describe(ctx, args, session)


async def describe(ctx: ToolContext, tool: Tool, args: Args) -> str:
    """Check a side effect's arguments and say what it will do; writes nothing."""
    try:
        return await asyncio.to_thread(_describe_sync, ctx, tool, args)
    except Exception as exc:  # noqa: BLE001
        raise ToolCallError(_error_text(exc)) from None


def _execute_sync(ctx: ToolContext, tool: Tool, args: Args, action_id: str) -> dict[str, Any]:
    action = actions_log.Action(action_id, ctx.thread_id, ctx.scope.user_id, tool.name, args.model_dump_json(), ctx.now)
    with ctx.session_factory() as session:
        return actions_log.run_once(session, action, lambda: tool.run(replace(ctx, action_id=action_id), args, session))


async def execute(ctx: ToolContext, tool: Tool, args: Args, action_id: str) -> dict[str, Any]:
    """Run an approved side effect exactly once per action id."""
    try:
        return {"done": True, "result": await asyncio.to_thread(_execute_sync, ctx, tool, args, action_id)}
    except Exception as exc:  # noqa: BLE001
        if is_transient(exc):  # nothing was committed: the action may run later, so it is not consumed
            log.warning("tool.transient tool=%s error=%s", tool.name, type(exc).__name__)
            return {RETRY_KEY: DB_UNAVAILABLE}
        return {"error": _error_text(exc)}
