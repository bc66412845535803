"""The checks of `lumo doctor`: call the configured model once for a plain answer and once for a tool call, and say what works."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lumo.agent.deadline import TurnDeadline, TurnTimeout
from lumo.config import model_settings, settings_from
from lumo.llm import LLMSettings, ModelClient, ModelError, ModelUnavailable
from lumo.llm.problems import turn_timeout
from tools import REGISTRY

PROBE_TOOL = "todays_priorities"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.name}: {'ok' if self.ok else 'FAILED'}: {self.detail}"


async def _probe(client: ModelClient, deadline_s: float, **request: Any) -> tuple[Any, float, str | None]:
    """(reply or None, seconds, what went wrong)."""
    started = time.perf_counter()
    try:
        reply = await TurnDeadline(deadline_s).run(lambda: client.complete(**request))
    except (ModelError, ModelUnavailable) as exc:
        return None, time.perf_counter() - started, exc.problem.message
    except TurnTimeout:
        return None, time.perf_counter() - started, turn_timeout(deadline_s).message
    return reply, time.perf_counter() - started, None


async def diagnose(settings: LLMSettings, *, strict_tools: bool, deadline_s: float) -> list[Check]:
    checks: list[Check] = []
    async with ModelClient(dataclasses.replace(settings, max_attempts=1)) as client:
        reply, took, problem = await _probe(
            client, deadline_s, messages=[{"role": "user", "content": "Reply with the single word: ok"}]
        )
        if reply is None:
            return [Check("chat", False, problem or "no answer")]
        said = (reply.content or "").strip()
        detail = f"{took * 1000:.0f} ms, model {reply.model!r}, finish_reason {reply.finish_reason}"
        if reply.reasoning:
            detail += ", <think> reasoning stripped"
        checks.append(Check("chat", bool(said), detail if said else f"empty answer ({detail})"))
        tool = REGISTRY[PROBE_TOOL].schema(strict=strict_tools)
        reply, took, problem = await _probe(
            client,
            deadline_s,
            messages=[{"role": "user", "content": f"Call the {PROBE_TOOL} tool now."}],
            tools=[tool],
        )
        mode = "strict schemas" if strict_tools else "schemas"
        if reply is None:
            checks.append(Check("tool calls", False, problem or "no answer"))
        elif reply.tool_calls and any(c.name == PROBE_TOOL for c in reply.tool_calls):
            how = "; written as text, which Lumo reads, but the server should parse it (vLLM --tool-call-parser)"
            note = how if reply.text_tool_calls else ""
            checks.append(Check("tool calls", True, f"{PROBE_TOOL} called ({mode}, {took * 1000:.0f} ms{note})"))
        elif reply.unreadable_tool_call:
            checks.append(Check("tool calls", False, "the model wrote a tool call as text Lumo could not read"))
        else:
            said = repr((reply.content or "")[:120])
            checks.append(Check("tool calls", False, f"the model answered in text instead of calling {PROBE_TOOL}: {said}"))
    return checks


def run_doctor(env: Mapping[str, str] | None = None) -> tuple[list[Check], str]:
    """`env` None: the process environment, read by lumo.config."""
    if not model_settings(env).live:
        return [], "model: offline (no OPENAI_API_KEY, or LUMO_LLM=offline): Lumo answers with its offline model"
    settings = LLMSettings.from_env(env)
    lumo = settings_from(env)
    where = settings.base_url or "the OpenAI API"
    checks = asyncio.run(diagnose(settings, strict_tools=lumo.strict_tools, deadline_s=lumo.turn_deadline_s))
    return checks, f"model: {settings.model} at {where}"
