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


def unique_ids(wanted: list[str], used: set[str], prefix: str) -> list[str]:
    """`wanted` with every empty or already-used id replaced by `<prefix>_<n>`, unused anywhere."""
    taken = set(used)
    out: list[str] = []
    n = 0
    for call_id in wanted:
        if not call_id or call_id in taken:
            while f"{prefix}_{n}" in taken:
                n += 1
            call_id = f"{prefix}_{n}"
        taken.add(call_id)
        out.append(call_id)
    return out
