"""What a tool is: a name, the one-line contract the model reads, a pydantic argument model, a function.

A tool runs under the caller's scope from `ToolContext`, never from the model's arguments.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import Scope


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


@dataclass(frozen=True)
class ToolContext:
    session_factory: sessionmaker[Session]
    scope: Scope
    as_of: AsOf
    now: dt.datetime
    thread_id: str = ""
    action_id: str = ""  # set when an approved side effect runs: its idempotency key


Runner = Callable[[ToolContext, Any, Session], dict[str, Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[Args]
    run: Runner
    side_effect: bool = False
    # For side effects: checks the arguments and says in words what will happen, writing nothing.
    describe: Callable[[ToolContext, Any, Session], str] | None = None

    def schema(self) -> dict[str, Any]:
        parameters = compact_schema(self.args.model_json_schema())
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": parameters}}


def compact_schema(node: Any) -> Any:
    """The JSON schema without what costs prompt tokens and tells the model little: titles, empty defaults,
    `additionalProperties` (the pydantic model still forbids extras) and `anyOf [X, null]` for optional
    fields (an omitted argument already means none)."""
    if isinstance(node, list):
        return [compact_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: compact_schema(v)
        for k, v in node.items()
        if k not in ("title", "additionalProperties") and not (k == "default" and v in (None, False))
    }
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        out.pop("anyOf")
        out.update(next(o for o in options if o != {"type": "null"}))
    return out


REGISTRY: dict[str, Tool] = {}


def tool(
    args: type[Args], *, side_effect: bool = False, describe: Callable[[ToolContext, Any, Session], str] | None = None
) -> Callable[[Runner], Runner]:
    """Register a function as a tool; its docstring's first line is what the model reads."""

    def register(fn: Runner) -> Runner:
        doc = inspect.getdoc(fn) or ""
        REGISTRY[fn.__name__] = Tool(fn.__name__, doc.splitlines()[0], args, fn, side_effect, describe)
        return fn

    return register
