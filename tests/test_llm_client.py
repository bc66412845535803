"""ModelClient against a mocked OpenAI HTTP API (respx via pytest-httpx2; openai 3.x uses httpx2)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx2
import pytest
import respx

from lumo.llm import (
    LLMSettings,
    ModelClient,
    ModelError,
    ModelUnavailable,
    Usage,
    UsageTotals,
    parse_retry_after,
)
from tests.llm_support import LLM_MOCKER, FakeTime, api_error

BASE_URL = "http://llm.test/v1"


DEAL_TOOL = {
    "type": "function",
    "function": {
        "name": "get_deal",
        "description": "Fetch a CRM deal",
        "parameters": {"type": "object", "properties": {"deal_id": {"type": "string"}}},
    },
}
MESSAGES = [{"role": "user", "content": "What is deal 42?"}]


def completion_json(*, content: str | None = "Hello", tool_calls: list[dict] | None = None, usage: dict | None = None) -> dict:
    message: dict = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body: dict = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def ok(**kwargs: object) -> respx.MockResponse:
    # respx builds responses with legacy httpx; respx.MockResponse is that class.
    return respx.MockResponse(200, json=completion_json(**kwargs))


@pytest.fixture
def llm_api() -> Iterator[respx.Router]:
    """respx router over the SDK's aiohttp transport (tests.llm_support); unmatched requests fail instead of
    hitting the network. A plain `respx.mock()` patches legacy httpcore, which openai 3.x never calls."""
    with respx.mock(base_url=BASE_URL, using=LLM_MOCKER) as router:
        yield router


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_settings(**overrides: object) -> LLMSettings:
    return LLMSettings(api_key="test-key", base_url=BASE_URL, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def client(fake_time: FakeTime) -> AsyncIterator[ModelClient]:
    # A real AsyncOpenAI built by ModelClient itself; only the HTTP layer is mocked.
    async with ModelClient(make_settings(max_attempts=4), sleep=fake_time.sleep, clock=fake_time.clock) as c:
        yield c


def chat_route(router: respx.Router) -> respx.Route:
    return router.post("/chat/completions", name="chat")


async def test_success_returns_tool_call_and_usage(llm_api: respx.Router, client: ModelClient) -> None:
    tool_call = {"id": "call_1", "type": "function", "function": {"name": "get_deal", "arguments": '{"deal_id": "42"}'}}
    route = chat_route(llm_api).mock(
        return_value=ok(
            content=None, tool_calls=[tool_call], usage={"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        )
    )

    reply = await client.complete(MESSAGES, tools=[DEAL_TOOL])

    assert route.call_count == 1
    assert reply.content is None
    assert [(tc.id, tc.name, tc.arguments) for tc in reply.tool_calls] == [("call_1", "get_deal", '{"deal_id": "42"}')]
    assert reply.usage == Usage(prompt_tokens=11, completion_tokens=7, total_tokens=18)
    assert reply.model == "gpt-4o-mini-2024-07-18"
    assert reply.attempts == 1
    assert reply.finish_reason == "tool_calls"
    assert client.usage_totals == UsageTotals(calls=1, prompt_tokens=11, completion_tokens=7)
    # The SDK sends our key as a bearer token.
    assert route.calls.last.request.headers["authorization"] == "Bearer test-key"


async def test_missing_usage_reports_zeros_and_totals_reset(llm_api: respx.Router, client: ModelClient) -> None:
    chat_route(llm_api).mock(return_value=ok(content="hi", usage=None))

    reply = await client.complete(MESSAGES)
    await client.complete(MESSAGES)

    assert reply.content == "hi" and reply.tool_calls == []
    assert reply.usage == Usage(0, 0, 0)
    assert client.reset_usage() == UsageTotals(calls=2)
    assert client.usage_totals == UsageTotals()


async def test_429_with_retry_after_waits_exactly_that(llm_api: respx.Router, client: ModelClient, fake_time: FakeTime) -> None:
    route = chat_route(llm_api).mock(
        side_effect=[
            api_error(429, "Rate limit reached", headers={"Retry-After": "2"}),
            ok(usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
        ]
    )

    reply = await client.complete(MESSAGES)

    assert reply.attempts == 2
    assert route.call_count == 2
    assert fake_time.sleeps == [2]


async def test_retry_after_is_capped_by_remaining_deadline(llm_api: respx.Router, fake_time: FakeTime) -> None:
    chat_route(llm_api).mock(
        side_effect=[
            api_error(503, "overloaded", headers={"retry-after-ms": "100000"}),
            ok(),
        ]
    )
    settings = make_settings(total_deadline_s=10.0, backoff_max_s=8.0)
    async with ModelClient(settings, sleep=fake_time.sleep, clock=fake_time.clock) as c:
        reply = await c.complete(MESSAGES)

    # min(100 s asked, 4 * backoff_max_s = 32 s, 10 s left in the budget)
    assert fake_time.sleeps == [10.0]
    assert reply.attempts == 2


async def test_503_every_time_raises_unavailable_after_max_attempts(
    llm_api: respx.Router, client: ModelClient, fake_time: FakeTime
) -> None:
    route = chat_route(llm_api).mock(return_value=api_error(503, "Service Unavailable"))

    with pytest.raises(ModelUnavailable) as info:
        await client.complete(MESSAGES)

    assert route.call_count == client.settings.max_attempts == 4
    assert info.value.attempts == 4
    assert getattr(info.value.last_error, "status_code", None) == 503
    # Full jitter: each wait is within [0, min(initial * 2**n, max)].
    assert len(fake_time.sleeps) == 3
    assert all(0 <= s <= client.settings.backoff_max_s for s in fake_time.sleeps)
    assert client.usage_totals == UsageTotals()


async def test_400_raises_model_error_without_retry(llm_api: respx.Router, client: ModelClient, fake_time: FakeTime) -> None:
    route = chat_route(llm_api).mock(return_value=api_error(400, "Invalid 'messages'"))

    with pytest.raises(ModelError) as info:
        await client.complete(MESSAGES)

    assert route.call_count == 1
    assert info.value.status == 400
    assert "Invalid 'messages'" in info.value.message
    assert fake_time.sleeps == []


# The aiohttp transport maps aiohttp's timeouts to these (openai/_vendor/httpx_aiohttp), and the SDK turns either
# into openai.APITimeoutError; a real stalled server is in tests/test_model_dialects.py.
@pytest.mark.parametrize("timeout_exc", [httpx2.ReadTimeout, httpx2.ConnectTimeout])
async def test_timeout_then_success(llm_api: respx.Router, client: ModelClient, timeout_exc: type[Exception]) -> None:
    route = chat_route(llm_api).mock(side_effect=[timeout_exc("read timed out"), ok(content="late")])

    reply = await client.complete(MESSAGES)

    assert reply.content == "late"
    assert reply.attempts == 2
    assert route.call_count == 2


async def test_connection_errors_stop_at_total_deadline(
    llm_api: respx.Router, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Take the top of each jitter window so the waits are 1, 2, 4, ... and the stop point is known.
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    route = chat_route(llm_api).mock(side_effect=httpx2.ConnectError("connection refused"))
    settings = make_settings(max_attempts=50, total_deadline_s=5.0, backoff_initial_s=1.0, backoff_max_s=8.0)

    async with ModelClient(settings, sleep=fake_time.sleep, clock=fake_time.clock) as c:
        with pytest.raises(ModelUnavailable) as info:
            await c.complete(MESSAGES)

    # t=0 fail, wait 1; t=1 fail, wait 2; t=3 fail, next wait 4 would end at 7 > 5: give up.
    assert fake_time.sleeps == [1.0, 2.0]
    assert route.call_count == info.value.attempts == 3
    assert fake_time.now <= settings.total_deadline_s


async def test_request_carries_model_and_tools_only_when_given(llm_api: respx.Router, client: ModelClient) -> None:
    route = chat_route(llm_api).mock(return_value=ok())

    await client.complete(MESSAGES, tools=[DEAL_TOOL], tool_choice="auto")
    with_tools = json.loads(route.calls.last.request.content)
    await client.complete(MESSAGES)
    without_tools = json.loads(route.calls.last.request.content)

    assert with_tools["model"] == "gpt-4o-mini"
    assert with_tools["messages"] == MESSAGES
    assert with_tools["tools"] == [DEAL_TOOL]
    assert with_tools["tool_choice"] == "auto"
    assert without_tools["model"] == "gpt-4o-mini"
    assert "tools" not in without_tools
    assert "tool_choice" not in without_tools


def test_settings_from_env() -> None:
    settings = LLMSettings.from_env({"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": BASE_URL, "LUMO_MODEL": "gpt-4.1"})
    assert (settings.api_key, settings.base_url, settings.model) == ("sk-x", BASE_URL, "gpt-4.1")
    assert "sk-x" not in repr(settings)

    defaults = LLMSettings.from_env({"OPENAI_API_KEY": "sk-x"})
    assert (defaults.base_url, defaults.model, defaults.max_attempts) == (None, "gpt-4o-mini", 5)

    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        LLMSettings.from_env({})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # ms is more precise, so it wins
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-1"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    earlier = format_datetime(now - timedelta(seconds=7), usegmt=True)
    assert parse_retry_after({"Retry-After": later}, now=now.timestamp()) == pytest.approx(7.0)
    assert parse_retry_after({"Retry-After": earlier}, now=now.timestamp()) == 0.0
