"""The agent's tools: importing this package registers them all in REGISTRY."""

from __future__ import annotations

from tools import actions, read  # noqa: F401  (registration)
from tools.base import REGISTRY, Args, Tool, ToolContext


def schemas() -> list[dict]:
    """The OpenAI function specs of every tool, in a stable order."""
    return [REGISTRY[name].schema() for name in sorted(REGISTRY)]


__all__ = ["REGISTRY", "Args", "Tool", "ToolContext", "schemas"]
