"""The agent's tools: importing this package registers them all in REGISTRY."""

from __future__ import annotations

from functools import cache
from typing import Any

from tools import actions, read  # noqa: F401  (registration)
from tools.base import REGISTRY, Args, Tool, ToolContext


@cache
def _schemas() -> tuple[dict[str, Any], ...]:
    return tuple(REGISTRY[name].schema() for name in sorted(REGISTRY))


def schemas() -> list[dict[str, Any]]:
    """The OpenAI function specs of every tool, in a stable order (built once: pydantic's schema is slow)."""
    return list(_schemas())


__all__ = ["REGISTRY", "Args", "Tool", "ToolContext", "schemas"]
