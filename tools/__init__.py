"""The agent's tools: importing this package registers them all in REGISTRY."""

from __future__ import annotations

from functools import cache
from typing import Any

from tools import actions, book, read, record  # noqa: F401  (registration)
from tools.base import REGISTRY, Args, Tool, ToolContext


@cache
def _schemas(strict: bool, without: frozenset[str]) -> tuple[dict[str, Any], ...]:
    return tuple(REGISTRY[name].schema(strict=strict) for name in sorted(REGISTRY) if name not in without)


def schemas(without: frozenset[str] = frozenset(), *, strict: bool = False) -> list[dict[str, Any]]:
    """The OpenAI function specs of every tool (but `without`), in a stable order (built once: pydantic's schema is slow).

    `strict`: in OpenAI's strict mode (LUMO_STRICT_TOOLS), where the server holds the model to the schema."""
    return list(_schemas(strict, without))


__all__ = ["REGISTRY", "Args", "Tool", "ToolContext", "schemas"]
