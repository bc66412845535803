"""What went wrong with the model, in words an operator can act on.

A transient failure (5xx, 429, a timeout) is worth waiting out or answering offline; a configuration error (a
rejected key, an unknown model, a server without tool calling, a prompt over the context window) will fail the
same way on every request, so it is said plainly instead of hidden behind "unavailable right now".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# vLLM without --enable-auto-tool-choice, Ollama models without tools, LM Studio and gateways saying the same.
NO_TOOLS = re.compile(
    r"auto.?tool.?choice|tool.?call.?parser|does not support tools|tools? (?:are|is) not supported|"
    r"tool calling is not supported|tool_choice.*not supported",
    re.IGNORECASE,
)
CONTEXT = re.compile(
    r"context.?length|maximum context|context window|too many tokens|prompt is too long|n_ctx|"
    r"exceeds the (?:model's )?(?:maximum|context)|input is too long",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ModelProblem:
    kind: str  # auth | model_not_found | no_tool_calling | context_length | bad_request | bad_response | unavailable | timeout
    message: str  # one sentence for the rep's note, the logs and /readyz
    configuration: bool  # True: the same request will fail again until someone changes the set-up

    @property
    def note(self) -> str:
        """What the rep reads when this problem stopped the model from answering."""
        return f"(Lumo's AI model is misconfigured: {self.message} Run `lumo doctor` to check the set-up.)"


def diagnose_status(status: int | None, message: str, *, model: str, base_url: str | None) -> ModelProblem:
    """The problem behind a refused request (an HTTP status and the server's error text)."""
    where = base_url or "the OpenAI API"
    if status in (401, 403):
        return ModelProblem(
            "auth", f"the model server at {where} rejected the API key (HTTP {status}); check OPENAI_API_KEY.", True
        )
    if status == 404:
        return ModelProblem(
            "model_not_found",
            f"model {model!r} was not found at {where} (HTTP 404); check LUMO_MODEL and OPENAI_BASE_URL (it ends in /v1).",
            True,
        )
    if NO_TOOLS.search(message):
        return ModelProblem(
            "no_tool_calling",
            f"the server does not accept tool calls for model {model!r} (HTTP {status}); start vLLM with "
            "--enable-auto-tool-choice --tool-call-parser <parser>, or choose a model with tool support.",
            True,
        )
    if CONTEXT.search(message):
        return ModelProblem(
            "context_length",
            f"the request is longer than the context window of model {model!r} (HTTP {status}); "
            "serve it with a longer context (vLLM --max-model-len, Ollama num_ctx) or start a new thread.",
            True,
        )
    if status is None:
        return ModelProblem(
            "bad_response",
            f"the server at {where} did not answer with a chat completion ({message[:160]}); check OPENAI_BASE_URL.",
            True,
        )
    return ModelProblem("bad_request", f"the model server refused the request (HTTP {status}): {message[:200]}", True)


def unavailable(status: int | None, attempts: int, error: str) -> ModelProblem:
    cause = f"HTTP {status}" if status is not None else error
    return ModelProblem("unavailable", f"the AI model is unavailable right now ({cause} after {attempts} attempt(s)).", False)


def turn_timeout(seconds: float) -> ModelProblem:
    return ModelProblem("timeout", f"the AI model did not answer within the turn's {seconds:g} s.", False)
