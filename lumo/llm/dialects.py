"""What OpenAI-compatible servers really send back, made into one shape.

- reasoning models put their thoughts in `<think>...</think>` (DeepSeek-R1, Qwen3 on vLLM, Ollama, LM Studio):
  the rep never sees them;
- a server without a tool parser returns the model's tool calls as text (Hermes `<tool_call>`, Mistral
  `[TOOL_CALLS]`, Llama `<|python_tag|>` or bare JSON): they are read back into tool calls when they name an
  offered tool, and flagged otherwise, so raw JSON is never shown as an answer;
- `arguments` sent as a JSON object instead of a string is written back as a string (the API's own type).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.DOTALL | re.IGNORECASE)
OPEN_THINK = re.compile(r"<(?:think|thinking|reasoning)>", re.IGNORECASE)
CLOSE_THINK = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
TOOL_CALL_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
FUNCTION_TAG = re.compile(r"<function=([\w.-]+)>(.*?)(?:</function>|$)", re.DOTALL)
MISTRAL_ARGS = re.compile(r"\[TOOL_CALLS\]\s*([\w.-]+)\s*\[ARGS\]", re.DOTALL)
FENCE = re.compile(r"```(?:json|tool_call|tool)?\s*(.*?)```", re.DOTALL)
MARKERS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "<function=")


@dataclass(frozen=True)
class TextCall:
    name: str
    arguments: str


@dataclass
class CleanReply:
    text: str | None
    calls: list[TextCall] = field(default_factory=list)
    reasoning: str | None = None
    unreadable_call: bool = False  # the text was a tool call Lumo could not use


def arguments_text(arguments: Any) -> str:
    """Tool-call arguments as the JSON text the API specifies (some servers send an object)."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


def strip_reasoning(text: str) -> tuple[str, str | None]:
    """The answer without its reasoning blocks, and the reasoning (None when there was none)."""
    thoughts = [m.group(0) for m in THINK.finditer(text)]
    rest = THINK.sub("", text)
    close = CLOSE_THINK.search(rest)
    if close:  # the opening tag was in the prompt's template: everything before the close is thought
        thoughts.append(rest[: close.end()])
        rest = rest[close.end() :]
    opened = OPEN_THINK.search(rest)
    if opened:  # cut off while still thinking: nothing after the tag is an answer
        thoughts.append(rest[opened.start() :])
        rest = rest[: opened.start()]
    return rest.strip(), ("\n".join(thoughts) if thoughts else None)


def _json_values(text: str) -> list[Any]:
    """Every JSON value that starts at a '{' or '[' in text, left to right, not overlapping."""
    decoder = json.JSONDecoder()
    values, i = [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            values.append(value)
            i = end
        else:
            i += 1
    return values


def _as_call(value: Any, *, marked: bool = True) -> TextCall | None:
    """A {"name", "arguments"|"parameters"} object as a call; unmarked JSON must carry its arguments, so an
    answer that merely is JSON with a "name" is not taken for a call."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    if not marked and "arguments" not in value and "parameters" not in value:
        return None
    name = value.get("name")
    if not isinstance(name, str) or not name:
        return None
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except json.JSONDecodeError:
            return None
    if not isinstance(args, dict):
        return None
    return TextCall(name, json.dumps(args, ensure_ascii=False))


def _calls_in(values: list[Any], *, marked: bool = True) -> list[TextCall | None]:
    out: list[TextCall | None] = []
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            out.append(_as_call(item, marked=marked))
    return out


def _candidates(text: str) -> tuple[list[TextCall | None], bool]:
    """(calls found, whether the text was written as a tool call at all)."""
    if any(marker in text for marker in MARKERS):
        found: list[TextCall | None] = []
        for m in FUNCTION_TAG.finditer(text):
            values = _json_values(m.group(2))
            found.append(_as_call({"name": m.group(1), "arguments": values[0] if values else {}}))
        for m in MISTRAL_ARGS.finditer(text):
            values = _json_values(text[m.end() :])
            found.append(_as_call({"name": m.group(1), "arguments": values[0] if values else None}))
        if not found:
            tags = TOOL_CALL_TAG.findall(text)
            body = "\n".join(tags) if tags else text
            found = _calls_in(_json_values(body))
        return found, True
    fenced = FENCE.findall(text)
    body = "\n".join(fenced) if fenced and not FENCE.sub("", text).strip() else text.strip()
    if not body.startswith(("{", "[")):
        return [], False
    values = _json_values(body)
    calls = _calls_in(values, marked=False)
    return (calls, True) if any(c is not None for c in calls) else ([], False)


def clean(content: str | None, offered: set[str]) -> CleanReply:
    """The answer text without reasoning, and any tool calls the model wrote as text."""
    if content is None:
        return CleanReply(None)
    text, reasoning = strip_reasoning(content)
    calls, looked_like_call = _candidates(text)
    if not looked_like_call:
        return CleanReply(text, reasoning=reasoning)
    usable = [c for c in calls if c is not None and c.name in offered]
    if usable and len(usable) == len(calls):
        return CleanReply(None, usable, reasoning)
    return CleanReply(None, reasoning=reasoning, unreadable_call=True)
