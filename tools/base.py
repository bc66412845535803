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

from lumo.crm.book_cache import Versions
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
    versions: Versions | None = None  # a chat turn's book versions, read once (lumo.crm.book_cache)


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

    def schema(self, *, strict: bool = False) -> dict[str, Any]:
        raw = self.args.model_json_schema()
        function: dict[str, Any] = {"name": self.name, "description": self.description}
        if strict:
            function["parameters"] = strict_schema(raw)
            function["strict"] = True
        else:
            function["parameters"] = compact_schema(raw)
        return {"type": "function", "function": function}


# Keys whose value maps names (of properties or definitions) to schemas: the names are data, not keywords.
NAME_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def compact_schema(node: Any) -> Any:
    """The JSON schema without what costs prompt tokens and tells the model little: titles, empty defaults,
    `additionalProperties` (the pydantic model still forbids extras) and `anyOf [X, null]` for optional
    fields (an omitted argument already means none). A property named `title` is a property, not a title."""
    if isinstance(node, list):
        return [compact_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (
            {name: compact_schema(sub) for name, sub in v.items()}
            if k in NAME_MAPS and isinstance(v, dict)
            else compact_schema(v)
        )
        for k, v in node.items()
        if k not in ("title", "additionalProperties") and not (k == "default" and v in (None, False))
    }
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        out.pop("anyOf")
        out.update(next(o for o in options if o != {"type": "null"}))
    return out


# Keywords OpenAI's strict mode refuses (pydantic still checks them when the call is validated).
STRICT_UNSUPPORTED = ("title", "default", "minLength", "maxLength", "examples")


def strict_schema(node: Any) -> Any:
    """The JSON schema as OpenAI's strict mode takes it: every object closed (`additionalProperties: false`)
    with every property required, an optional property nullable instead of omitted (the call then sends null,
    which `omit_nulls` turns back into "not given"), and no keyword strict mode refuses."""
    if isinstance(node, list):
        return [strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in STRICT_UNSUPPORTED:
            continue
        if key in NAME_MAPS and isinstance(value, dict):
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        else:
            out[key] = strict_schema(value)
    if out.get("type") == "object" or "properties" in out:
        properties: dict[str, Any] = out.setdefault("properties", {})
        required = set(out.get("required", []))
        for name, sub in properties.items():
            if name not in required:
                properties[name] = nullable(sub)
        out["required"] = list(properties)
        out["additionalProperties"] = False
    return out


def nullable(node: dict[str, Any]) -> dict[str, Any]:
    """A schema that also accepts null."""
    options = node.get("anyOf")
    if isinstance(options, list):
        return node if {"type": "null"} in options else {**node, "anyOf": [*options, {"type": "null"}]}
    kind = node.get("type")
    if isinstance(kind, str):
        out = {**node, "type": [kind, "null"]}
        if isinstance(node.get("enum"), list):
            out["enum"] = [*node["enum"], None]
        return out
    if isinstance(kind, list):
        return node if "null" in kind else {**node, "type": [*kind, "null"]}
    return {"anyOf": [node, {"type": "null"}]}


def omit_nulls(args: type[Args], raw: dict[str, Any]) -> dict[str, Any]:
    """Arguments without the nulls a strict-mode model sends for optional ones it skips: null means not given."""
    fields = args.model_fields
    return {k: v for k, v in raw.items() if v is not None or k not in fields or fields[k].is_required()}


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
