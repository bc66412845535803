"""The agent's tools: importing this package registers them all in REGISTRY."""

from __future__ import annotations

from functools import cache

from tools import actions, book, read  # noqa: F401  (registration)
from tools.base import REGISTRY, Args, Tool, ToolContext


@cache
def _schemas(strict: bool) -> tuple[dict, ...]:
    return tuple(REGISTRY[name].schema(strict=strict) for name in sorted(REGISTRY))


def schemas(*, strict: bool = False) -> list[dict]:
    """The OpenAI function specs of every tool, in a stable order (built once: pydantic's schema is slow).

    `strict`: in OpenAI's strict mode (LUMO_STRICT_TOOLS), where the server holds the model to the schema."""
    return list(_schemas(strict))


__all__ = ["REGISTRY", "Args", "Tool", "ToolContext", "schemas"]
