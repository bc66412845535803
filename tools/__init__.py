"""The agent's tools: importing this package registers them all in REGISTRY."""

from __future__ import annotations

from functools import cache

from tools import actions, read, record  # noqa: F401  (registration)
from tools.base import REGISTRY, Args, Tool, ToolContext
from tools.record import RECORD_TOOLS


@cache
def _schemas(without: frozenset[str]) -> tuple[dict, ...]:
    return tuple(REGISTRY[name].schema() for name in sorted(REGISTRY) if name not in without)


def schemas(without: frozenset[str] = frozenset()) -> list[dict]:
    """The OpenAI function specs of every tool (but `without`), in a stable order (built once: pydantic's schema is slow)."""
    return list(_schemas(without))


__all__ = ["RECORD_TOOLS", "REGISTRY", "Args", "Tool", "ToolContext", "schemas"]
