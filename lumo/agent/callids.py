"""Tool-call ids unique in a thread: OpenAI refuses a request where two tool results share one id.

Servers reuse ids (vLLM's `chatcmpl-tool-0`-style counters, Ollama's fixed ids), send them empty, or repeat one
id for parallel calls; prepared turns add their own. Every assistant message the graph stores goes through
here, so the ids sent back, and the action ids built from them, never repeat.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def used_ids(messages: Iterable[dict[str, Any]]) -> set[str]:
    """Every tool-call id already in the thread."""
    return {c["id"] for m in messages for c in m.get("tool_calls") or [] if c.get("id")}


def unique_ids(wanted: list[str], used: set[str], prefix: str, avoid: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """`wanted` with every empty or already-used id replaced by `<prefix>_<n>`, in neither `used` nor `avoid`."""
    taken = set(used)
    out: list[str] = []
    n = 0
    for call_id in wanted:
        if not call_id or call_id in taken:
            while f"{prefix}_{n}" in taken or f"{prefix}_{n}" in avoid:
                n += 1
            call_id = f"{prefix}_{n}"
        taken.add(call_id)
        out.append(call_id)
    return out


def repaired(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with repeated tool-call ids renamed, each with its results, as stored before ids were unique
    (a thread whose prepared turns all said `call_prep_0` would otherwise be refused on every turn)."""
    every = used_ids(messages)
    seen: set[str] = set()
    renamed: dict[str, str] = {}  # old id -> new id, for the results that follow the call
    out: list[dict[str, Any]] = []
    for message in messages:
        calls = message.get("tool_calls") or []
        if calls:
            ids = [c.get("id") or "" for c in calls]
            fresh = unique_ids(ids, seen, "call_fix", avoid=every)
            if fresh != ids:
                renamed.update({old: new for old, new in zip(ids, fresh, strict=True) if old != new})
                message = {**message, "tool_calls": [{**c, "id": i} for c, i in zip(calls, fresh, strict=True)]}
            seen.update(fresh)
        elif message.get("role") == "tool" and message.get("tool_call_id") in renamed:
            message = {**message, "tool_call_id": renamed[message["tool_call_id"]]}
        out.append(message)
    return out
