"""Lumo against OpenAI-compatible servers as they really answer: OpenAI, Azure, vLLM, Ollama and LM Studio.

Each test scripts a server (respx on the httpx2 transport openai 3.x uses) in one dialect: its ids, its error
bodies, its quirks (reasoning blocks, tool calls written as text, arguments as objects, stalls). The real
client, graph, tools, database and checkpointer run; the test reads back what Lumo sent and what the rep saw.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx2
import pytest
import respx
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from lumo.agent.answers import CUT_NOTE, OFFLINE_NOTE
from lumo.agent.checkpoint import open_checkpointer
from lumo.agent.service import Lumo
from lumo.agent.toolrun import parse_call
from lumo.api.app import create_app
from lumo.cli.app import app as cli_app
from lumo.config import Settings
from lumo.db.models import OutboxEmail
from lumo.llm import LLMSettings, ModelClient
from tests import factories as f
from tests.agent_support import NOW, approve, ask, build_book, scope_of
from tests.llm_support import LLM_MOCKER, FakeTime
from tools import REGISTRY, schemas

BASE_URL = "http://llm.test/v1"
MAX_ATTEMPTS = 2


# --- the dialects -----------------------------------------------------------------------------------


def completion(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    *,
    finish_reason: str | None = None,
    model: str = "gpt-4o-mini-2024-07-18",
    extra_choice: dict[str, Any] | None = None,
    usage: bool = True,
) -> respx.MockResponse:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
                **(extra_choice or {}),
            }
        ],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return respx.MockResponse(200, json=body)


def call(name: str, args: dict[str, Any] | str, call_id: str | None) -> dict[str, Any]:
    """A tool call; `args` a dict is sent as a JSON string (the spec), a str as is."""
    arguments = args if isinstance(args, str) else json.dumps(args)
    out: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id is not None:
        out["id"] = call_id
    return out


def openai_error(status: int, message: str, code: str | None = None) -> respx.MockResponse:
    return respx.MockResponse(status, json={"error": {"message": message, "type": "invalid_request_error", "code": code}})


def vllm_error(status: int, message: str) -> respx.MockResponse:
    # vLLM's error body is flat, not under "error".
    return respx.MockResponse(status, json={"object": "error", "message": message, "type": "BadRequestError", "code": status})


def azure_filtered() -> respx.MockResponse:
    filters = {"hate": {"filtered": True, "severity": "medium"}, "violence": {"filtered": False, "severity": "safe"}}
    return completion(None, finish_reason="content_filter", extra_choice={"content_filter_results": filters})


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    out = build_book(session)
    f.pay(session, out["big"], "250.00", at=dt.datetime(2026, 10, 6, 10, 0, tzinfo=dt.UTC))
    session.commit()
    return out


@pytest.fixture
def llm_api() -> Iterator[respx.Router]:
    with respx.mock(base_url=BASE_URL, using=LLM_MOCKER, assert_all_called=False) as router:
        yield router


@pytest.fixture
def route(llm_api: respx.Router) -> respx.Route:
    return llm_api.post("/chat/completions", name="chat")


@pytest.fixture
async def model(llm_api: respx.Router) -> AsyncIterator[ModelClient]:
    fake = FakeTime()
    settings = LLMSettings(api_key="test-key", base_url=BASE_URL, model="served-model", max_attempts=MAX_ATTEMPTS)
    async with ModelClient(settings, sleep=fake.sleep, clock=fake.clock) as client:
        yield client


@pytest.fixture
def u1(session_factory: sessionmaker[Session], book: dict[str, Any]) -> Any:
    return scope_of(session_factory, "u1@acme.test")


async def turn(
    db_url: str, session_factory: sessionmaker[Session], model: Any, scope: Any, *messages: str, **lumo_options: Any
) -> list[dict[str, Any]]:
    """Ask each message in one thread; the results in order."""
    out: list[dict[str, Any]] = []
    async with open_checkpointer(db_url) as checkpointer:
        lumo = Lumo.create(checkpointer, session_factory, model, **lumo_options)
        thread = None
        for message in messages:
            result = await ask(lumo, scope, message, thread_id=thread)
            thread = result["thread_id"]
            out.append(result)
    return out


def sent(route: respx.Route, index: int) -> dict[str, Any]:
    return json.loads(route.calls[index].request.content)


def tool_results(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["tool_call_id"]: json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"}


def assert_ids_valid(body: dict[str, Any]) -> None:
    """What OpenAI checks: every call id a non-empty string, unique in the request, each answered once."""
    ids = [c["id"] for m in body["messages"] for c in m.get("tool_calls") or []]
    assert all(isinstance(i, str) and i for i in ids), ids
    assert len(ids) == len(set(ids)), ids
    answered = [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]
    assert sorted(answered) == sorted(ids)


# --- 1. the guard reads facts with their context ------------------------------------------------------


async def test_a_true_payment_and_its_date_pass_the_guard_in_one_model_call(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    answer = "INV-1042: paid EUR 250.00 on 2026-10-06; EUR 12,150.00 is still open."
    route.side_effect = [completion(answer)]
    [out] = await turn(db_url, session_factory, model, u1, "Tell me about INV-1042")

    payment = tool_results(sent(route, 0))
    assert [p for r in payment.values() for p in r["payments"]] == [{"amount": "250.00", "paid_at": "2026-10-06T10:00:00+00:00"}]
    assert route.call_count == 1 and out["usage"]["model_calls"] == 1
    assert out["reply"] == answer and out["notes"] == []


async def test_bucket_and_risk_amounts_inherit_the_currency_of_their_account(
    db_url: str, session: Session, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    # A second overdue invoice in another bucket, so no bucket equals a total that carries its own currency.
    f.invoice(session, "a1", contacts=("c1",), days_overdue=5, amount=Decimal("3000.00"), number="INV-1050")
    session.commit()

    def answer(request: httpx2.Request) -> respx.MockResponse:
        body = json.loads(request.content)
        results = [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]
        if not results:
            return completion(
                None, [call("account_health", {"account": "Globex"}, "call_h"), call("revenue_at_risk", {}, "call_r")]
            )
        health, risk = results
        account = health["accounts"][0]
        bucket = Decimal(account["overdue_by_bucket"]["31-60"])
        at_risk = Decimal(next(a["amount"] for a in risk["accounts"] if a["account"] == "Globex"))
        assert bucket not in (Decimal(account["overdue_base"]), Decimal(account["open_base"]), Decimal(risk["total"]))
        base = account["base_currency"]
        return completion(f"Globex has {base} {bucket:,.2f} overdue 31-60 days; {base} {at_risk:,.2f} of its revenue is at risk.")

    route.side_effect = answer
    [out] = await turn(db_url, session_factory, model, u1, "How is Globex doing and what revenue is at risk?")

    assert route.call_count == 2 and out["notes"] == [] and "USD 13,122.00" in out["reply"]


# --- 2. tool-call ids unique per thread ---------------------------------------------------------------


async def test_two_prepared_turns_in_one_thread_never_repeat_a_tool_call_id(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [completion("Start with INV-1042."), completion("Still INV-1042 first.")]
    first, second = await turn(db_url, session_factory, model, u1, "What should I do today?", "What should I do today?")

    assert_ids_valid(sent(route, 1))  # the second request carries both prepared turns
    assert first["notes"] == second["notes"] == [] and second["model"] == "gpt-4o-mini-2024-07-18"


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(["", ""], id="empty-ids"),
        pytest.param([None, None], id="missing-ids"),
        pytest.param(["chatcmpl-tool-0", "chatcmpl-tool-0"], id="vllm-repeated-id"),
    ],
)
async def test_empty_missing_or_repeated_ids_from_the_server_are_replaced_by_unique_ones(
    db_url: str,
    session_factory: sessionmaker[Session],
    u1: Any,
    route: respx.Route,
    model: ModelClient,
    ids: list[str | None],
) -> None:
    route.side_effect = [
        completion(
            None,
            [
                call("overdue_invoices", {"account": "Globex"}, ids[0]),
                call("get_invoice", {"invoice_number": "INV-2001"}, ids[1]),
            ],
        ),
        completion("INV-1042 (EUR 12,150.00) and INV-2001 (USD 900.00)."),
        # the next turn: the server starts counting again
        completion(None, [call("overdue_invoices", {"account": "Hooli"}, ids[0])]),
        completion("INV-2001 is overdue: USD 900.00."),
    ]
    await turn(db_url, session_factory, model, u1, "Which invoices of Globex are overdue?", "And Hooli?")

    for index in (1, 3):
        assert_ids_valid(sent(route, index))
    results = tool_results(sent(route, 1))
    assert len(results) == 2 and {"invoices", "invoice_number"} <= {k for r in results.values() for k in r}


# --- 3. action ids unique whatever the model sends ----------------------------------------------------


async def test_two_parallel_emails_with_one_call_id_each_queue_their_own_email(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    globex = {
        "to": ["c1@customer.test"],
        "subject": "INV-1042",
        "body": "Hi Hank, a reminder about INV-1042: EUR 12,150.00 is open.",
        "invoice_numbers": ["INV-1042"],
    }
    hooli = {
        "to": ["c3@customer.test"],
        "subject": "INV-2001",
        "body": "Hi Gavin, a reminder about INV-2001: USD 900.00 is open.",
        "invoice_numbers": ["INV-2001"],
    }
    route.side_effect = [
        completion(None, [call("send_email", globex, "call_1"), call("send_email", hooli, "call_1")]),
        completion("Both reminders are queued."),
    ]
    async with open_checkpointer(db_url) as checkpointer:
        lumo = Lumo.create(checkpointer, session_factory, model)
        out = await ask(lumo, u1, "Send reminders to Globex and Hooli")
        ids = [a["id"] for a in out["pending_actions"]]
        assert len(ids) == 2 and len(set(ids)) == 2
        done = await approve(lumo, u1, out["thread_id"])

    assert done["pending_actions"] == [] and done["reply"] == "Both reminders are queued."
    assert_ids_valid(sent(route, 1))
    with session_factory() as s:
        emails = s.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()
    assert sorted(e.to for e in emails) == ["c1@customer.test", "c3@customer.test"]
    assert len({e.action_id for e in emails}) == 2


# --- 4. odd but valid-looking replies ------------------------------------------------------------------


async def test_arguments_sent_as_a_json_object_are_read_and_sent_back_as_a_string(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    as_object = {"id": "call_1", "type": "function", "function": {"name": "overdue_invoices", "arguments": {"account": "Globex"}}}
    route.side_effect = [completion(None, [as_object]), completion("INV-1042 is overdue: EUR 12,150.00.")]
    [out] = await turn(db_url, session_factory, model, u1, "Which invoices of Globex are overdue?")

    body = sent(route, 1)
    assert body["messages"][-2]["tool_calls"][0]["function"]["arguments"] == '{"account": "Globex"}'
    assert [i["invoice_number"] for i in tool_results(body)["call_1"]["invoices"]] == ["INV-1042"]
    assert out["reply"] == "INV-1042 is overdue: EUR 12,150.00."


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(
            respx.MockResponse(200, text="<html><body>Welcome to nginx!</body></html>", headers={"content-type": "text/html"}),
            id="html-page",
        ),
        pytest.param(respx.MockResponse(200, text="{not json", headers={"content-type": "application/json"}), id="broken-json"),
        pytest.param(respx.MockResponse(200, json={"error": "Model is not loaded"}), id="error-body-with-200"),
    ],
)
async def test_a_200_that_is_not_a_completion_is_answered_with_what_is_wrong(
    db_url: str,
    session_factory: sessionmaker[Session],
    u1: Any,
    route: respx.Route,
    model: ModelClient,
    response: respx.MockResponse,
) -> None:
    route.side_effect = [response]
    [out] = await turn(db_url, session_factory, model, u1, "hello")

    assert "did not answer with a chat completion" in out["reply"] and "OPENAI_BASE_URL" in out["reply"]
    assert out["model"] == "lumo-offline" and model.health.state == "misconfigured"


# --- 5. configuration errors are said, transient ones fall back ----------------------------------------

CONFIG_ERRORS = [
    pytest.param(
        openai_error(401, "Incorrect API key provided: sk-***", "invalid_api_key"), "rejected the API key", id="openai-401"
    ),
    pytest.param(
        openai_error(404, 'model "llama3.1" not found, try pulling it first'), "was not found", id="ollama-404-model-not-found"
    ),
    pytest.param(
        vllm_error(400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'),
        "does not accept tool calls",
        id="vllm-400-auto-tool-choice",
    ),
    pytest.param(
        vllm_error(
            400,
            "This model's maximum context length is 4096 tokens. However, you requested 5200 tokens "
            "(5000 in the messages, 200 in the completion).",
        ),
        "context window",
        id="vllm-400-context-length",
    ),
    pytest.param(
        openai_error(400, "registry.ollama.ai/library/gemma:2b does not support tools"),
        "does not accept tool calls",
        id="ollama-no-tools",
    ),
]


@pytest.mark.parametrize(("response", "said"), CONFIG_ERRORS)
async def test_a_configuration_error_is_said_in_the_reply_and_the_logs_without_retrying(
    db_url: str,
    session_factory: sessionmaker[Session],
    u1: Any,
    route: respx.Route,
    model: ModelClient,
    caplog: pytest.LogCaptureFixture,
    response: respx.MockResponse,
    said: str,
) -> None:
    route.side_effect = [response]
    with caplog.at_level(logging.ERROR, logger="lumo"):
        [out] = await turn(db_url, session_factory, model, u1, "Which invoices of Globex are overdue?")

    assert route.call_count == 1  # a refused request is not retried
    assert said in out["reply"] and "misconfigured" in out["reply"] and OFFLINE_NOTE not in out["reply"]
    assert out["notes"] == [out["reply"]] and out["model"] == "lumo-offline"
    assert "INV-1042" not in out["reply"]  # not an offline answer dressed as the model's
    assert any(said in r.getMessage() and r.name == "lumo.llm" for r in caplog.records)
    assert model.health.state == "misconfigured" and said in (model.health.problem.message if model.health.problem else "")


async def test_a_server_error_still_falls_back_to_the_offline_model(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [vllm_error(500, "engine dead")] * MAX_ATTEMPTS
    [out] = await turn(db_url, session_factory, model, u1, "Which invoices of Globex are overdue?")

    assert out["notes"] == [OFFLINE_NOTE] and "INV-1042" in out["reply"]
    assert model.health.state == "unavailable" and "HTTP 500" in (model.health.problem.message if model.health.problem else "")


def _api(db_url: str, session_factory: sessionmaker[Session]) -> tuple[TestClient, dict[str, str]]:
    from lumo.auth import create_token

    with session_factory() as s:
        token = create_token(s, "u1@acme.test", NOW, "test")
        s.commit()
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": BASE_URL, "LUMO_MODEL": "gpt-4o-mini", "LUMO_MODEL_MAX_ATTEMPTS": "1"}
    return TestClient(create_app(Settings(database_url=db_url), env=env)), {"Authorization": f"Bearer {token}"}


def test_object_arguments_over_the_sse_stream_end_with_the_message_event(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any], route: respx.Route
) -> None:
    as_object = {"id": "call_1", "type": "function", "function": {"name": "overdue_invoices", "arguments": {"account": "Globex"}}}
    route.side_effect = [completion(None, [as_object]), completion("INV-1042 is overdue: EUR 12,150.00.")]
    client, auth = _api(db_url, session_factory)
    with (
        client,
        client.stream("POST", "/v1/chat/stream", json={"message": "Globex overdue?", "date": "2026-11-25"}, headers=auth) as r,
    ):
        text = r.read().decode()
    events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    assert events[0] == "thread" and events[-1] == "message"
    assert "INV-1042 is overdue: EUR 12,150.00." in text


def test_readyz_says_what_is_wrong_with_the_model(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any], route: respx.Route
) -> None:
    from lumo.auth import create_token

    with session_factory() as s:
        token = create_token(s, "u1@acme.test", NOW, "test")
        s.commit()
    route.side_effect = [openai_error(401, "Incorrect API key provided")]
    env = {"OPENAI_API_KEY": "sk-wrong", "OPENAI_BASE_URL": BASE_URL, "LUMO_MODEL": "gpt-4o-mini"}
    with TestClient(create_app(Settings(database_url=db_url), env=env)) as client:
        before = client.get("/readyz").json()
        chat = client.post(
            "/v1/chat", json={"message": "hello", "date": "2026-11-25"}, headers={"Authorization": f"Bearer {token}"}
        )
        after = client.get("/readyz")

    assert before["status"] == "ready" and before["model"]["state"] == "unchecked"
    assert chat.status_code == 200 and "rejected the API key" in chat.json()["reply"]
    assert after.status_code == 200 and after.json()["status"] == "degraded"
    assert after.json()["model"]["state"] == "misconfigured" and "OPENAI_API_KEY" in after.json()["model"]["problem"]


def _doctor(monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": BASE_URL, "LUMO_MODEL": "qwen3"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LUMO_LLM", raising=False)
    return CliRunner().invoke(cli_app, ["doctor"])


def test_doctor_says_chat_and_tool_calls_work(monkeypatch: pytest.MonkeyPatch, route: respx.Route) -> None:
    route.side_effect = [
        completion("<think>The user wants ok.</think>ok", model="qwen3"),
        completion(None, [call("todays_priorities", {}, "call_1")], model="qwen3"),
    ]
    result = _doctor(monkeypatch)

    assert result.exit_code == 0, result.output
    assert f"model: qwen3 at {BASE_URL}" in result.output
    assert "chat: ok" in result.output and "reasoning stripped" in result.output
    assert "tool calls: ok: todays_priorities called" in result.output
    assert "tools" in sent(route, 1) and "tools" not in sent(route, 0)


def test_doctor_says_when_tool_calls_arrive_as_text(monkeypatch: pytest.MonkeyPatch, route: respx.Route) -> None:
    route.side_effect = [completion("ok"), completion('<tool_call>{"name": "todays_priorities", "arguments": {}}</tool_call>')]
    result = _doctor(monkeypatch)

    assert result.exit_code == 0 and "written as text" in result.output and "--tool-call-parser" in result.output


def test_an_answer_that_is_json_but_no_tool_call_is_shown_as_an_answer() -> None:
    from lumo.llm.dialects import clean

    answer = '{"name": "Globex", "balance": "EUR 12,150.00"}'
    assert clean(answer, {"overdue_invoices"}).text == answer


def test_doctor_says_what_is_wrong_and_exits_1(monkeypatch: pytest.MonkeyPatch, route: respx.Route) -> None:
    route.side_effect = [
        completion("ok", model="qwen3"),
        vllm_error(400, '"auto" tool choice requires --enable-auto-tool-choice'),
    ]
    result = _doctor(monkeypatch)

    assert result.exit_code == 1
    assert "chat: ok" in result.output and "tool calls: FAILED" in result.output and "--enable-auto-tool-choice" in result.output


def test_doctor_with_a_rejected_key(monkeypatch: pytest.MonkeyPatch, route: respx.Route) -> None:
    route.side_effect = [openai_error(401, "Incorrect API key provided")]
    result = _doctor(monkeypatch)

    assert result.exit_code == 1 and route.call_count == 1
    assert "chat: FAILED" in result.output and "rejected the API key" in result.output


# --- 7. finish_reason, reasoning blocks and tool calls written as text --------------------------------


async def test_an_azure_content_filter_gives_an_offline_answer_that_says_so(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [completion(None, [call("overdue_invoices", {"account": "Globex"}, "call_1")]), azure_filtered()]
    [out] = await turn(db_url, session_factory, model, u1, "Which invoices of Globex are overdue?")

    assert "INV-1042" in out["reply"] and "content filter" in out["reply"]
    assert out["model"] == "lumo-offline" and len(out["notes"]) == 1


async def test_a_reasoning_model_out_of_budget_never_gives_an_empty_reply(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [completion("<think>Let me think about Globex. First, the invoices", finish_reason="length")]
    [out] = await turn(db_url, session_factory, model, u1, "Which invoices of Globex are overdue?")

    assert "INV-1042" in out["reply"] and "<think>" not in out["reply"] and "Let me think" not in out["reply"]
    assert "output limit on reasoning" in out["reply"]


async def test_a_cut_answer_says_it_was_cut(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [completion("Hi! Your most urgent invoice is", finish_reason="length")]
    [out] = await turn(db_url, session_factory, model, u1, "hello")

    assert out["reply"] == f"Hi! Your most urgent invoice is\n\n{CUT_NOTE}" and out["notes"] == [CUT_NOTE]


async def test_think_blocks_are_never_shown(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [
        completion("<think>\nThe rep says hello. Be brief.\n</think>\n\nHi! How can I help?", model="deepseek-r1")
    ]
    [out] = await turn(db_url, session_factory, model, u1, "hello")

    assert out["reply"] == "Hi! How can I help?" and out["model"] == "deepseek-r1"


TEXT_CALLS = [
    pytest.param(
        '<tool_call>\n{"name": "overdue_invoices", "arguments": {"account": "Globex"}}\n</tool_call>', id="hermes-vllm-no-parser"
    ),
    pytest.param('[TOOL_CALLS] [{"name": "overdue_invoices", "arguments": {"account": "Globex"}}]', id="mistral"),
    pytest.param('<|python_tag|>{"name": "overdue_invoices", "parameters": {"account": "Globex"}}', id="llama-python-tag"),
    pytest.param('{"name": "overdue_invoices", "parameters": {"account": "Globex"}}', id="llama-bare-json-ollama"),
    pytest.param('```json\n{"name": "overdue_invoices", "arguments": {"account": "Globex"}}\n```', id="fenced-lm-studio"),
]


@pytest.mark.parametrize("text", TEXT_CALLS)
async def test_tool_calls_written_as_text_are_run_as_tool_calls(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient, text: str
) -> None:
    route.side_effect = [completion(text), completion("INV-1042 is overdue: EUR 12,150.00.")]
    [out] = await turn(db_url, session_factory, model, u1, "Which invoices of Globex are overdue?")

    body = sent(route, 1)
    assert_ids_valid(body)
    [result] = tool_results(body).values()
    assert [i["invoice_number"] for i in result["invoices"]] == ["INV-1042"]
    assert out["reply"] == "INV-1042 is overdue: EUR 12,150.00." and out["notes"] == []


async def test_a_text_tool_call_that_cannot_be_read_is_said_not_shown(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [completion('<tool_call>\n{"name": "overdue_invoices", "arguments": {"account": "Glo')]
    [out] = await turn(db_url, session_factory, model, u1, "Which invoices of Globex are overdue?")

    assert "<tool_call>" not in out["reply"] and "INV-1042" in out["reply"]
    assert "tool call as text" in out["reply"] and out["model"] == "lumo-offline"


# --- 8. one deadline per turn ---------------------------------------------------------------------------


async def test_a_stalled_server_holds_the_rep_no_longer_than_the_turn_deadline(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route
) -> None:
    replies = [completion(None, [call("overdue_invoices", {"account": "Globex"}, "call_1")])]
    requests: list[httpx2.Request] = []

    async def slow_then_stalled(request: httpx2.Request) -> respx.MockResponse:
        requests.append(request)
        await asyncio.sleep(0.2)  # each call alone is well within any per-call timeout
        if replies:
            return replies.pop()
        await asyncio.sleep(60)
        return completion("too late")

    route.side_effect = slow_then_stalled
    settings = LLMSettings(api_key="k", base_url=BASE_URL, max_attempts=3, request_timeout_s=30)
    started = time.perf_counter()
    async with ModelClient(settings) as client:
        [out] = await turn(db_url, session_factory, client, u1, "Which invoices of Globex are overdue?", turn_deadline_s=2.0)
    took = time.perf_counter() - started

    assert took < 10, took  # not 30 s of request timeout, nor a minute of retries
    assert len(requests) == 2 and out["notes"] == [OFFLINE_NOTE] and "INV-1042" in out["reply"]


# --- 9. tool schemas ------------------------------------------------------------------------------------


def test_compact_schemas_keep_a_property_named_title() -> None:
    [task] = [s for s in schemas() if s["function"]["name"] == "create_follow_up_task"]
    parameters = task["function"]["parameters"]
    assert "title" in parameters["properties"] and parameters["required"] == ["title"]
    assert parameters["properties"]["title"]["type"] == "string"
    assert all("title" not in p for p in parameters["properties"].values())  # the keyword is still stripped


STRICT_REFUSED = {"title", "default", "minLength", "maxLength", "examples"}


def strict_problems(node: Any, where: str = "parameters") -> list[str]:
    """OpenAI strict mode's rules for a function's parameters."""
    problems: list[str] = []
    if isinstance(node, list):
        for i, item in enumerate(node):
            problems += strict_problems(item, f"{where}[{i}]")
        return problems
    if not isinstance(node, dict):
        return problems
    problems += [f"{where}: {k} is not supported" for k in STRICT_REFUSED & set(node) if where.split(".")[-1] != "properties"]
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties must be false")
        if set(node.get("required", [])) != set(node.get("properties", {})):
            problems.append(f"{where}: every property must be required")
        for name, sub in node.get("properties", {}).items():
            problems += strict_problems(sub, f"{where}.properties.{name}")
        return problems
    for key, value in node.items():
        if isinstance(value, dict | list):
            problems += strict_problems(value, f"{where}.{key}")
    return problems


def accepts_null(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind) or any(accepts_null(o) for o in node.get("anyOf", []))


def test_strict_tool_schemas_follow_openai_strict_mode() -> None:
    for spec in schemas(strict=True):
        fn = spec["function"]
        assert fn["strict"] is True
        assert strict_problems(fn["parameters"]) == [], fn["name"]
        optional = set(fn["parameters"]["properties"]) - {
            n for n, field in REGISTRY[fn["name"]].args.model_fields.items() if field.is_required()
        }
        for name in optional:  # omitted becomes null: the schema must allow it
            assert accepts_null(fn["parameters"]["properties"][name]), (fn["name"], name)
        assert set(REGISTRY[fn["name"]].args.model_fields) == set(fn["parameters"]["properties"])


def test_a_strict_call_with_nulls_for_skipped_arguments_is_valid() -> None:
    nulls = {"title": "Call Hank about INV-1042", "due_date": None, "invoice_number": "INV-1042", "account": None}
    tool, args = parse_call({"function": {"name": "create_follow_up_task", "arguments": json.dumps(nulls)}})
    assert (args.title, args.due_date, args.account) == ("Call Hank about INV-1042", None, None)
    search = {k: None for k in REGISTRY["search_invoices"].args.model_fields} | {"overdue": True}
    _, found = parse_call({"function": {"name": "search_invoices", "arguments": json.dumps(search)}})
    assert (found.overdue, found.limit, found.page) == (True, 10, 1)  # nulls mean the defaults


async def test_lumo_strict_tools_sends_strict_schemas(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [completion("Hi!")]
    await turn(db_url, session_factory, model, u1, "hello", strict_tools=True)

    tools = sent(route, 0)["tools"]
    assert tools and all(t["function"]["strict"] is True for t in tools)


def test_lumo_strict_tools_and_the_turn_deadline_are_settings() -> None:
    from lumo.config import settings_from

    settings = settings_from({"LUMO_STRICT_TOOLS": "1", "LUMO_TURN_DEADLINE_S": "12.5"})
    assert (settings.strict_tools, settings.turn_deadline_s) == (True, 12.5)


# --- 10. evals on a dead model --------------------------------------------------------------------------


def test_a_live_eval_run_against_a_server_that_only_answers_500_fails_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, route: respx.Route, capsys: pytest.CaptureFixture[str]
) -> None:
    from evals.__main__ import main

    route.side_effect = lambda request: vllm_error(500, "engine dead")
    for key, value in {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": BASE_URL, "LUMO_MODEL_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(key, value)
    code = main(["run", "--model", "served-model", "--cases", "overdue-*", "--report", str(tmp_path), "--no-progress"])

    said = capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == 1
    assert report["offline_answers"]["answers"] == report["offline_answers"]["of"] > 0
    assert report["pass_rate"] == 0.0 and not report["thresholds"]["ok"]
    assert "answered offline" in said and "HTTP 500" in said
    markdown = (tmp_path / "report.md").read_text()
    assert "offline answers" in markdown and "HTTP 500" in markdown


def test_eval_fallback_transcripts_fail_only_in_live_runs() -> None:
    from evals import graders

    result = {"reply": "x", "model": "lumo-offline", "notes": [OFFLINE_NOTE], "pending_actions": []}
    live = {"model": "served-model", "turns": [{"index": 0, "kind": "ask", "result": result}]}
    offline = {**live, "model": "lumo-offline"}
    assert graders.offline_answers(live) == [(1, OFFLINE_NOTE)]
    assert graders.offline_answers(offline) == []


def test_the_model_is_not_blamed_for_lumo_s_own_approval_text() -> None:
    from evals.graders import model_texts

    result = {
        "reply": "I need your approval before I do this:\n"
        "- Create task 'Call Hank' for INV-1042, due 2026-11-26 (action a3-call_1)",
        "pending_actions": [
            {
                "id": "a3-call_1",
                "tool": "create_follow_up_task",
                "args": {"title": "Call Hank", "due_date": None, "invoice_number": "INV-1042"},
                "description": "Create task 'Call Hank' for INV-1042, due 2026-11-26",
            }
        ],
    }
    assert model_texts(result) == ["Call Hank"]


def test_guard_catches_are_counted_per_case() -> None:
    from evals.report import summarize

    transcripts = [
        {
            "case": {"name": "a", "group": "g"},
            "run": 1,
            "passed": True,
            "grades": [],
            "usage": {"model_calls": 3, "prompt_tokens": 0, "completion_tokens": 0, "guard_catches": 2},
            "turns": [],
        },
        {
            "case": {"name": "b", "group": "g"},
            "run": 1,
            "passed": True,
            "grades": [],
            "usage": {"model_calls": 1, "prompt_tokens": 0, "completion_tokens": 0},
            "turns": [],
        },
    ]
    summary = summarize(transcripts)
    assert summary["guard_catches"] == {"total": 2, "cases": {"a": 2}}
    assert [c["guard_catches"] for c in summary["case_results"]] == [2, 0]


async def test_an_answer_the_guard_caught_counts_in_the_turn_usage(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [completion("INV-1042: paid EUR 260.00."), completion("INV-1042: paid EUR 250.00.")]
    [out] = await turn(db_url, session_factory, model, u1, "Tell me about INV-1042")

    assert out["reply"] == "INV-1042: paid EUR 250.00." and out["usage"]["guard_catches"] == 1


async def test_a_live_answer_in_its_own_words_passes_a_case_written_with_the_offline_wording(
    tmp_path: Any, route: respx.Route, model: ModelClient
) -> None:
    from evals import runner
    from evals.cases import load_cases
    from evals.data import Databases

    def answer(request: httpx2.Request) -> respx.MockResponse:
        results = [json.loads(m["content"]) for m in json.loads(request.content)["messages"] if m["role"] == "tool"]
        if not results:
            return completion(None, [call("revenue_at_risk", {}, "call_1")])
        risk = results[0]
        total = Decimal(risk["total"])
        return completion(f"About {risk['base_currency']} {total:,.2f} of your revenue is at risk right now.")

    route.side_effect = answer
    [case] = load_cases("currency-risk-in-base-currency")
    assert case.expect.reply is not None and case.expect.reply.wording is not None  # the offline phrasing is there
    transcript = await runner.run_case(case, 1, Databases(tmp_path), model, "served-model")

    failures = [f for g in transcript["grades"] for f in g["failures"]]
    assert transcript["passed"], failures
    assert transcript["turns"][0]["result"]["reply"].startswith("About USD ")


def test_an_amount_or_date_in_a_case_is_found_in_any_format() -> None:
    from evals.graders import says

    assert says("Hank owes €12,000.00 since November 28, 2026.", "EUR 12,000.00")
    assert says("Hank owes €12,000.00 since November 28, 2026.", "2026-11-28")
    assert not says("Hank owes €12,400.00.", "EUR 12,000.00")
    assert not says("Hank owes USD 12,000.00.", "EUR 12,000.00")


def test_a_thread_stored_with_repeated_ids_is_sent_with_unique_ones() -> None:
    from lumo.agent.callids import repaired

    def prepared(result: str) -> list[dict[str, Any]]:
        calls = [{"id": "call_prep_0", "type": "function", "function": {"name": "todays_priorities", "arguments": "{}"}}]
        return [
            {"role": "user", "content": "today?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_prep_0", "content": result},
            {"role": "assistant", "content": "Start with INV-1042."},
        ]

    fixed = repaired([*prepared("first"), *prepared("second")])
    assert_ids_valid({"messages": fixed})
    results = {m["tool_call_id"]: m["content"] for m in fixed if m["role"] == "tool"}
    assert results["call_prep_0"] == "first" and sorted(results.values()) == ["first", "second"]


@pytest.mark.parametrize(
    ("content", "answer"),
    [
        pytest.param("<think>plan</think>Hi!", "Hi!", id="closed-block"),
        pytest.param("The rep greets me; be brief.\n</think>\n\nHi!", "Hi!", id="opening-tag-in-the-template-deepseek-r1"),
        pytest.param("Hi!<think>more thoughts, cut off", "Hi!", id="cut-off-while-thinking"),
        pytest.param("<thinking>a</thinking>Hi! <think>b</think>Bye.", "Hi! Bye.", id="several-blocks"),
        pytest.param("Use 3 < 4 > 2 signs freely.", "Use 3 < 4 > 2 signs freely.", id="no-reasoning"),
    ],
)
def test_reasoning_blocks_are_stripped_in_every_form_servers_send(content: str, answer: str) -> None:
    from lumo.llm.dialects import strip_reasoning

    assert strip_reasoning(content)[0] == answer
