"""Chat Completions client for Lumo: bounded retries, a total deadline, typed replies, usage tracking."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import ChatCompletion
from tenacity import RetryCallState, RetryError

from lumo.config import model_settings
from lumo.llm import dialects
from lumo.llm.health import ModelHealth
from lumo.llm.problems import ModelProblem, diagnose_status, unavailable
from lumo.llm.retry import Clock, Deadline, RetryPolicy, Sleep, make_retrying

log = logging.getLogger("lumo.llm")

DEFAULT_MODEL = "gpt-4o-mini"


class ModelUnavailable(Exception):
    """Transient failures outlasted the retry budget; callers may fall back to an offline model."""

    def __init__(self, last_error: BaseException | None, attempts: int) -> None:
        super().__init__(f"model unavailable after {attempts} attempt(s): {last_error!r}")
        self.last_error = last_error
        self.attempts = attempts
        self.problem = unavailable(_status_of(last_error), attempts, type(last_error).__name__)


class ModelError(Exception):
    """The API rejected the request (non-retryable 4xx, or a malformed reply)."""

    def __init__(
        self, status: int | None, message: str, request_id: str | None = None, problem: ModelProblem | None = None
    ) -> None:
        prefix = "model error" if status is None else f"model error {status}"
        super().__init__(f"{prefix}: {message}")
        self.status = status
        self.message = message
        self.request_id = request_id
        # What it means for the set-up; the client fills it in (it knows the model and the server).
        self.problem = problem or diagnose_status(status, message, model="the configured model", base_url=None)


@dataclass(frozen=True)
class LLMSettings:
    api_key: str = field(repr=False)  # never show the key in logs or tracebacks
    base_url: str | None = None
    model: str = DEFAULT_MODEL
    max_attempts: int = 5
    total_deadline_s: float = 60.0
    request_timeout_s: float = 30.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        for name in ("total_deadline_s", "request_timeout_s", "backoff_initial_s", "backoff_max_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LLMSettings:
        """Build settings from the environment as lumo.config reads it (a dict in tests)."""
        found = model_settings(env)
        if not found.api_key:
            raise ValueError("OPENAI_API_KEY is not set")
        tuning: dict[str, Any] = {}
        if found.max_attempts is not None:
            tuning["max_attempts"] = found.max_attempts
        if found.request_timeout_s is not None:
            tuning["request_timeout_s"] = found.request_timeout_s
        return cls(api_key=found.api_key, base_url=found.base_url, model=found.model or DEFAULT_MODEL, **tuning)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            total_deadline_s=self.total_deadline_s,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
        )


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it; the caller validates it


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_api(cls, usage: Any | None) -> Usage:
        # Some OpenAI-compatible servers omit usage entirely; report zeros rather than None.
        if usage is None:
            return cls()
        return cls(
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=usage.completion_tokens or 0,
            total_tokens=usage.total_tokens or 0,
        )


@dataclass(frozen=True)
class UsageTotals:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Usage) -> UsageTotals:
        return UsageTotals(
            calls=self.calls + 1,
            prompt_tokens=self.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self.completion_tokens + usage.completion_tokens,
        )


@dataclass(frozen=True)
class ModelReply:
    content: str | None
    tool_calls: list[ToolCall]
    usage: Usage
    model: str
    attempts: int
    finish_reason: str | None = None
    reasoning: str | None = None  # <think> blocks, kept out of the answer
    unreadable_tool_call: bool = False  # the model wrote a tool call as text that could not be used
    text_tool_calls: bool = False  # the tool calls were read from the text (the server has no tool parser)


class ModelClient:
    """Thin async wrapper over Chat Completions; retries are ours, not the SDK's (max_retries=0)."""

    def __init__(
        self,
        settings: LLMSettings,
        client: openai.AsyncOpenAI | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self._owns_client = client is None
        # The SDK's aiohttp transport: under 200 chats at once it takes ~1.1 ms of CPU a call against httpx2's ~2.7
        # (evals/perf/README.md); the SDK above it, its retries off (ours are below) and its errors, is the same.
        self._client = client or openai.AsyncOpenAI(
            api_key=settings.api_key,
            base_url=settings.base_url,
            max_retries=0,
            timeout=settings.request_timeout_s,
            http_client=openai.DefaultAioHttpClient(),  # the timeout above goes with every request
        )
        self._sleep = sleep
        self._clock = clock
        self._policy = settings.retry_policy()
        self._totals = UsageTotals()
        self.health = ModelHealth(settings.model, settings.base_url)

    @property
    def usage_totals(self) -> UsageTotals:
        return self._totals

    def reset_usage(self) -> UsageTotals:
        """Zero the running totals and return what they were."""
        previous, self._totals = self._totals, UsageTotals()
        return previous

    async def aclose(self) -> None:
        # An injected client belongs to the caller, who closes it.
        if self._owns_client:
            await self._client.close()

    async def __aenter__(self) -> ModelClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> ModelReply:
        request = build_request(self.settings.model, messages, tools, tool_choice)
        try:
            completion, attempts = await self._create_with_retries(request)
            reply = to_reply(completion, attempts, offered=tool_names(tools))
        except ModelError as exc:
            exc.problem = diagnose_status(exc.status, exc.message, model=self.settings.model, base_url=self.settings.base_url)
            self.health.record(exc.problem)
            log.error(
                "llm.misconfigured kind=%s status=%s problem=%s",
                exc.problem.kind,
                exc.status,
                exc.problem.message,
                extra={"kind": exc.problem.kind, "status": exc.status},
            )
            raise
        except ModelUnavailable as exc:
            self.health.record(exc.problem)
            raise
        self.health.record_ok()
        self._totals = self._totals.add(reply.usage)
        log.info(
            "llm.call model=%s attempts=%d prompt_tokens=%d completion_tokens=%d",
            reply.model,
            attempts,
            reply.usage.prompt_tokens,
            reply.usage.completion_tokens,
            extra={
                "model": reply.model,
                "attempts": attempts,
                "prompt_tokens": reply.usage.prompt_tokens,
                "completion_tokens": reply.usage.completion_tokens,
            },
        )
        return reply

    async def _create_with_retries(self, request: dict[str, Any]) -> tuple[Any, int]:
        deadline = Deadline(self._clock, self.settings.total_deadline_s)
        retrying = make_retrying(self._policy, deadline=deadline, sleep=self._sleep, before_sleep=_log_retry)
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    # The plain POST skips the SDK's per-call walk over every message and tool schema
                    # (several ms a turn); the body is already the JSON the API takes.
                    completion = await self._client.post("/chat/completions", cast_to=ChatCompletion, body=request)
        except RetryError as exc:
            raise _unavailable(exc) from exc.last_attempt.exception()
        except openai.APIStatusError as exc:  # tenacity re-raises non-retryable errors as-is
            log.warning("llm.error status=%d", exc.status_code, extra={"status": exc.status_code})
            raise ModelError(exc.status_code, exc.message, exc.request_id) from exc
        except ValueError as exc:  # a 200 labelled JSON whose body is not (the SDK's json.loads)
            log.warning("llm.error status=None error=%s", type(exc).__name__)
            raise ModelError(None, f"the body is not valid JSON ({exc})") from exc
        except openai.OpenAIError as exc:  # e.g. a 200 whose body doesn't validate
            log.warning("llm.error status=None error=%s", type(exc).__name__)
            raise ModelError(getattr(exc, "status_code", None), str(exc)) from exc
        return completion, attempts


def build_request(
    model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, tool_choice: Any
) -> dict[str, Any]:
    """Chat Completions kwargs; optional keys are omitted, since an empty `tools` array is a 400."""
    request: dict[str, Any] = {"model": model, "messages": messages}
    if tools:
        request["tools"] = tools
    if tool_choice is not None:
        request["tool_choice"] = tool_choice
    return request


def tool_names(tools: list[dict[str, Any]] | None) -> set[str]:
    return {t.get("function", {}).get("name", "") for t in tools or []}


def to_reply(completion: Any, attempts: int, offered: set[str] | frozenset[str] = frozenset()) -> ModelReply:
    # The SDK builds the model without validating: a 200 whose body is HTML or plain text arrives as a str.
    if not isinstance(completion, ChatCompletion):
        raise ModelError(None, f"the body is {type(completion).__name__} {str(completion)[:80]!r}, not a chat completion")
    if not completion.choices:
        raise ModelError(None, "completion has no choices")
    choice = completion.choices[0]
    message = choice.message
    if message is None:
        raise ModelError(None, "completion has no message")
    calls = [_to_tool_call(tc) for tc in message.tool_calls or []]
    cleaned = dialects.clean(message.content if isinstance(message.content, str) else None, set(offered))
    if not calls:
        calls = [ToolCall(id="", name=c.name, arguments=c.arguments) for c in cleaned.calls]
    return ModelReply(
        content=cleaned.text,
        tool_calls=calls,
        usage=Usage.from_api(completion.usage),
        model=completion.model or "",
        attempts=attempts,
        finish_reason=choice.finish_reason,
        reasoning=cleaned.reasoning,
        unreadable_tool_call=cleaned.unreadable_call and not calls,
        text_tool_calls=bool(cleaned.calls) and not message.tool_calls,
    )


def _to_tool_call(tool_call: Any) -> ToolCall:
    # openai 3.x has both function tool calls and "custom" (free-text input) tool calls.
    call_id = tool_call.id if isinstance(tool_call.id, str) else ""  # the agent replaces missing ids
    if getattr(tool_call, "type", "function") == "custom":
        return ToolCall(id=call_id, name=tool_call.custom.name or "", arguments=dialects.arguments_text(tool_call.custom.input))
    return ToolCall(
        id=call_id, name=tool_call.function.name or "", arguments=dialects.arguments_text(tool_call.function.arguments)
    )


def _status_of(exc: BaseException | None) -> int | None:
    return exc.status_code if isinstance(exc, openai.APIStatusError) else None


def _log_retry(retry_state: RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    status = _status_of(exc)
    log.warning(
        "llm.retry attempt=%d status=%s error=%s wait=%.2f",
        retry_state.attempt_number,
        status,
        type(exc).__name__,
        retry_state.upcoming_sleep,
        extra={
            "attempt": retry_state.attempt_number,
            "status": status,
            "error_type": type(exc).__name__,
            "wait_s": retry_state.upcoming_sleep,
        },
    )


def _unavailable(exc: RetryError) -> ModelUnavailable:
    last = exc.last_attempt
    error = last.exception()
    log.error(
        "llm.unavailable attempts=%d status=%s error=%s",
        last.attempt_number,
        _status_of(error),
        type(error).__name__,
        extra={"attempts": last.attempt_number, "status": _status_of(error), "error_type": type(error).__name__},
    )
    return ModelUnavailable(error, last.attempt_number)
