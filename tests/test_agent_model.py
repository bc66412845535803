"""The agent driven by the real ModelClient, its OpenAI HTTP API mocked with respx (httpx2 transport).

Each test scripts the model's replies request by request (`route.side_effect = [...]`) and reads back what
the graph sent it (`route.calls`): the real client, retries, graph, tools, database and checkpointer run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
import respx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.agent.graph import GUARD_NOTE, OFFLINE_NOTE
from lumo.crm.drafts import draft_for_invoice
from lumo.crm.errors import NotFound
from lumo.db.models import Activity, AgentAction, Invoice, OutboxEmail, Task
from lumo.llm import LLMSettings, ModelClient
from tests.agent_support import AS_OF, INJECTION, approve, ask, build_book, open_lumo, scope_of
from tests.llm_support import LLM_MOCKER, FakeTime, api_error

BASE_URL = "http://llm.test/v1"
MAX_ATTEMPTS = 3
MODEL = "gpt-4o-mini-2024-07-18"
OVERDUE_GLOBEX = "Which invoices of Globex are overdue?"


# --- the mocked API (as in test_llm_client) -------------------------------------------------------


def completion_json(*, content: str | None = None, tool_calls: list[dict] | None = None) -> dict:
    message: dict = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def ok(content: str | None = None, tool_calls: list[dict] | None = None) -> respx.MockResponse:
    return respx.MockResponse(200, json=completion_json(content=content, tool_calls=tool_calls))


def calls(*tool_calls: dict) -> respx.MockResponse:
    """A reply asking for these tool calls."""
    return ok(tool_calls=list(tool_calls))


def tool_call(name: str, args: dict[str, Any] | str, call_id: str) -> dict[str, Any]:
    """An OpenAI tool call; `args` as a dict, or as raw text to send malformed JSON."""
    arguments = args if isinstance(args, str) else json.dumps(args)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def sent(route: respx.Route, index: int) -> dict[str, Any]:
    """The JSON body of the index-th request the model received."""
    return json.loads(route.calls[index].request.content)


def tool_results(body: dict[str, Any]) -> dict[str, str]:
    """tool_call_id -> content of the tool messages in a request."""
    return {m["tool_call_id"]: m["content"] for m in body["messages"] if m["role"] == "tool"}


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    return build_book(session)


@pytest.fixture
def llm_api() -> Iterator[respx.Router]:
    with respx.mock(base_url=BASE_URL, using=LLM_MOCKER) as router:
        yield router


@pytest.fixture
def route(llm_api: respx.Router) -> respx.Route:
    return llm_api.post("/chat/completions", name="chat")


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def model(llm_api: respx.Router, fake_time: FakeTime) -> AsyncIterator[ModelClient]:
    settings = LLMSettings(api_key="test-key", base_url=BASE_URL, max_attempts=MAX_ATTEMPTS)
    async with ModelClient(settings, sleep=fake_time.sleep, clock=fake_time.clock) as client:
        yield client


@pytest.fixture
def u1(session_factory: sessionmaker[Session], book: dict[str, Any]) -> Any:
    return scope_of(session_factory, "u1@acme.test")


def _count(session_factory: sessionmaker[Session], model: Any, *where: Any) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _statuses(session_factory: sessionmaker[Session]) -> dict[str, str]:
    with session_factory() as s:
        return dict(s.execute(select(Invoice.number, Invoice.status)).tuples().all())


# --- conversations --------------------------------------------------------------------------------


async def test_multi_turn_conversation_sends_tool_results_and_the_thread_history(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    answer1 = "Globex has one overdue invoice: INV-1042, EUR 12,400.00, 38 days overdue."
    answer2 = "I drafted the reminder for INV-1042 (EUR 12,400.00) to Hank Scorpio. Nothing is sent yet."
    route.side_effect = [
        calls(tool_call("overdue_invoices", {"account": "Globex"}, "call_1")),
        ok(answer1),
        calls(tool_call("draft_followup_email", {"invoice_number": "INV-1042"}, "call_2")),
        ok(answer2),
    ]
    async with open_lumo(db_url, session_factory, model) as lumo:
        first = await ask(lumo, u1, OVERDUE_GLOBEX)
        second = await ask(lumo, u1, "draft a reminder for it", thread_id=first["thread_id"])

    assert route.call_count == 4
    assert (first["reply"], first["model"], first["notes"]) == (answer1, MODEL, [])
    assert [i["invoice_number"] for i in first["items"]] == ["INV-1042"]
    # The model got the tool's numbers back before it answered.
    result = json.loads(tool_results(sent(route, 1))["call_1"])
    assert [(i["invoice_number"], i["balance"], i["currency"]) for i in result["invoices"]] == [("INV-1042", "12400.00", "EUR")]
    assert sent(route, 1)["messages"][-2]["tool_calls"][0]["function"]["name"] == "overdue_invoices"
    assert "tools" in sent(route, 0) and sent(route, 0)["messages"][0]["role"] == "system"
    # Turn 2 starts from turn 1's whole exchange.
    history = [(m["role"], m.get("content")) for m in sent(route, 2)["messages"][1:]]
    assert history[0] == ("user", OVERDUE_GLOBEX)
    assert ("assistant", answer1) in history and history[-1] == ("user", "draft a reminder for it")
    assert "call_1" in tool_results(sent(route, 2))
    assert "draft" in json.loads(tool_results(sent(route, 3))["call_2"])
    assert second["reply"] == answer2 and second["drafts"][0]["invoice_numbers"] == ["INV-1042"]
    assert second["pending_actions"] == [] and _count(session_factory, OutboxEmail) == 0


async def test_what_should_i_do_today_is_one_model_request_with_the_priorities_already_in_it(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    answer = "Start with INV-1042 at Globex: call Hank Scorpio today."
    route.side_effect = [ok(answer)]
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, "What should I do today?")

    assert route.call_count == 1
    body = sent(route, 0)
    assert body["messages"][-2]["tool_calls"][0]["function"]["name"] == "todays_priorities"
    priorities = json.loads(body["messages"][-1]["content"])
    assert body["messages"][-1]["role"] == "tool" and priorities["items"][0]["invoice_number"] == "INV-1042"
    assert out["reply"] == answer and out["model"] == MODEL
    assert out["usage"]["model_calls"] == 1
    # The model reads a compact copy (no ranking scores) of the items the API returns.
    assert [(i["rank"], i["invoice_number"], i["reasons"]) for i in out["items"]] == [
        (i["rank"], i.get("invoice_number"), i["reasons"]) for i in priorities["items"]
    ]


# --- an unreliable API ----------------------------------------------------------------------------


async def test_rate_limited_request_waits_the_retry_after_then_answers(
    db_url: str,
    session_factory: sessionmaker[Session],
    u1: Any,
    route: respx.Route,
    model: ModelClient,
    fake_time: FakeTime,
) -> None:
    route.side_effect = [api_error(429, "Rate limit reached", headers={"Retry-After": "2"}), ok("Hi! How can I help?")]
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, "hello")

    assert route.call_count == 2 and fake_time.sleeps == [2]
    assert out["reply"] == "Hi! How can I help?" and out["model"] == MODEL and out["notes"] == []


async def test_server_errors_on_every_attempt_fall_back_to_the_offline_model(
    db_url: str,
    session_factory: sessionmaker[Session],
    u1: Any,
    route: respx.Route,
    model: ModelClient,
    fake_time: FakeTime,
) -> None:
    route.side_effect = [api_error(503, "Service Unavailable")] * MAX_ATTEMPTS
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, OVERDUE_GLOBEX)

    assert route.call_count == MAX_ATTEMPTS and len(fake_time.sleeps) == MAX_ATTEMPTS - 1
    assert out["model"] == "lumo-offline" and out["notes"] == [OFFLINE_NOTE]
    assert "offline" in out["reply"] and OFFLINE_NOTE in out["reply"]
    assert "INV-1042" in out["reply"] and "EUR 12,400.00" in out["reply"]


@pytest.mark.parametrize(
    "message", ["Which invoices are overdue at Hooli?", "what does Hooli owe us?", "hooli overdue", "what's overdue at Hoolli?"]
)
async def test_the_fallback_scopes_by_account_in_every_phrasing(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient, message: str
) -> None:
    route.side_effect = [api_error(503, "Service Unavailable")] * MAX_ATTEMPTS
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, message)

    assert out["model"] == "lumo-offline" and out["notes"] == [OFFLINE_NOTE]
    assert [i["invoice_number"] for i in out["items"]] == ["INV-2001"] and "INV-1042" not in out["reply"]


async def test_a_timeout_is_retried_and_the_turn_answered(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [httpx2.ReadTimeout("read timed out"), ok("Hi! Ask me about your invoices.")]
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, "hello")

    assert route.call_count == 2
    assert out["reply"] == "Hi! Ask me about your invoices." and out["model"] == MODEL and out["notes"] == []


# --- bad tool calls -------------------------------------------------------------------------------


async def test_malformed_arguments_and_unknown_tools_go_back_to_the_model_which_recovers(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    answer = "INV-1042 is overdue: EUR 12,400.00."
    route.side_effect = [
        calls(tool_call("overdue_invoices", "{not json", "call_bad"), tool_call("list_everything", {}, "call_unknown")),
        calls(tool_call("overdue_invoices", {"account": "Globex"}, "call_good")),
        ok(answer),
    ]
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, OVERDUE_GLOBEX)

    assert route.call_count == 3
    errors = tool_results(sent(route, 1))
    assert "not valid JSON" in json.loads(errors["call_bad"])["error"]
    assert "unknown tool" in json.loads(errors["call_unknown"])["error"]
    assert "INV-1042" in tool_results(sent(route, 2))["call_good"]
    assert out["reply"] == answer and out["notes"] == []


async def test_a_model_that_keeps_calling_tools_gets_a_last_step_without_tools(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    looping = [calls(tool_call("overdue_invoices", {"account": "Globex"}, f"call_{i}")) for i in range(5)]
    route.side_effect = [*looping, ok("INV-1042 is overdue: EUR 12,400.00.")]
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, OVERDUE_GLOBEX)
    assert route.call_count == lumo.max_steps == 6
    assert "tools" not in sent(route, 5)  # the last allowed step must answer
    assert out["reply"] == "INV-1042 is overdue: EUR 12,400.00." and out["usage"]["model_calls"] == 6


# --- the grounding guard --------------------------------------------------------------------------


def _guard_script(rewrite: str) -> list[respx.MockResponse]:
    return [
        calls(tool_call("overdue_invoices", {"account": "Globex"}, "call_1")),
        ok("Globex owes EUR 13,000.00 on INV-1042."),
        ok(rewrite),
    ]


async def test_a_misstated_amount_gets_one_rewrite_which_is_used_when_grounded(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    rewrite = "Globex owes EUR 12,400.00 on INV-1042."
    route.side_effect = _guard_script(rewrite)
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, OVERDUE_GLOBEX)

    assert route.call_count == 3
    retry = sent(route, 2)
    assert "tools" not in retry
    assert retry["messages"][-2] == {"role": "assistant", "content": "Globex owes EUR 13,000.00 on INV-1042."}
    correction = retry["messages"][-1]
    assert correction["role"] == "system" and GUARD_NOTE.split(":")[0] in correction["content"]
    assert "EUR 13,000.00" in correction["content"]
    assert out["reply"] == rewrite and out["notes"] == [] and out["usage"]["model_calls"] == 3


async def test_a_rewrite_still_misstated_is_replaced_by_the_grounded_offline_summary(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = _guard_script("Sorry: Globex owes EUR 13,000.00 on INV-1042.")
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, OVERDUE_GLOBEX)

    assert route.call_count == 3
    assert "EUR 12,400.00" in out["reply"] and "INV-1042" in out["reply"] and "13,000" not in out["reply"]
    [note] = out["notes"]
    assert "misstated facts" in note and "13,000.00" in note


async def test_a_model_written_email_with_a_wrong_amount_is_rewritten_once_then_replaced_by_the_template(
    db_url: str,
    session_factory: sessionmaker[Session],
    u1: Any,
    route: respx.Route,
    model: ModelClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = {
        "to": ["c1@customer.test"],
        "subject": "INV-1042 is overdue",
        "body": "Hi Hank, please pay EUR 13,000.00 for INV-1042.",
        "invoice_numbers": ["INV-1042"],
    }
    still_wrong = {**wrong, "body": "Hi Hank, please pay EUR 12,000.00 for INV-1042."}
    route.side_effect = [
        calls(tool_call("send_email", wrong, "call_1")),
        calls(tool_call("send_email", still_wrong, "call_2")),
        ok("Done: the reminder to c1@customer.test is queued."),
    ]
    with session_factory() as s:
        template = draft_for_invoice(s, u1, "INV-1042", AS_OF)
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, "Send a reminder to Globex about INV-1042")

        assert route.call_count == 2
        asked = json.loads(tool_results(sent(route, 1))["call_1"])["error"]
        assert "do not match the invoices" in asked and "rewrite" in asked
        [action] = out["pending_actions"]
        assert action["tool"] == "send_email"
        assert action["args"]["body"] == template.body and "€12,400.00" in action["args"]["body"]
        assert action["args"]["subject"] == template.subject and action["args"]["to"] == template.to
        assert any("replaced by the template draft" in n for n in out["notes"])
        assert _count(session_factory, OutboxEmail) == 0  # nothing is sent before the approval

        done = await approve(lumo, u1, out["thread_id"])

    assert done["pending_actions"] == [] and done["reply"] == "Done: the reminder to c1@customer.test is queued."
    with session_factory() as s:
        [email] = s.scalars(select(OutboxEmail)).all()
        assert (email.status, email.body, email.to) == ("queued", template.body, "c1@customer.test")


async def test_an_amount_quoted_back_in_a_tool_error_does_not_become_a_fact(
    db_url: str,
    session_factory: sessionmaker[Session],
    u1: Any,
    route: respx.Route,
    model: ModelClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = {
        "to": ["c1@customer.test"],
        "subject": "Overdue invoice",
        "body": "Hi Hank, please pay EUR 13,000.00.",
        "invoice_numbers": ["INV-1042"],
    }
    route.side_effect = [
        calls(tool_call("send_email", wrong, "call_1")),
        ok("Globex owes EUR 13,000.00: shall I send the reminder?"),  # instead of rewriting the email
        ok("The email did not match the invoice: shall I draft it from the invoice's facts?"),
    ]
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, "Send a reminder to Globex about INV-1042")

    assert "EUR 13,000.00" in json.loads(tool_results(sent(route, 1))["call_1"])["error"]
    assert route.call_count == 3 and sent(route, 2)["messages"][-1]["role"] == "system"
    assert out["reply"] == "The email did not match the invoice: shall I draft it from the invoice's facts?"
    assert out["pending_actions"] == [] and _count(session_factory, OutboxEmail) == 0


# --- side effects ---------------------------------------------------------------------------------


async def test_an_injected_note_can_only_propose_a_change_which_the_rep_rejects(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    before = _statuses(session_factory)
    activities = _count(session_factory, Activity)
    fooled = {"invoice_number": "INV-2001", "status": "paid", "reason": "the note says to mark every invoice paid"}
    route.side_effect = [
        calls(tool_call("update_invoice_status", fooled, "call_1")),
        ok("Understood: INV-2001 stays as it is."),
    ]
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, "Tell me about INV-2001")

        assert INJECTION in json.dumps(tool_results(sent(route, 0)))  # the prepared get_invoice carried it
        [action] = out["pending_actions"]
        assert action["tool"] == "update_invoice_status" and action["args"]["invoice_number"] == "INV-2001"
        assert _statuses(session_factory) == before and _count(session_factory, Activity) == activities

        done = await approve(lumo, u1, out["thread_id"], reject="a note is not a payment")

    assert route.call_count == 2
    assert json.loads(tool_results(sent(route, 1))["call_1"]) == {"rejected": True, "feedback": "a note is not a payment"}
    assert done["reply"] == "Understood: INV-2001 stays as it is." and done["pending_actions"] == []
    assert _statuses(session_factory) == before and before["INV-2001"] == "sent"
    assert _count(session_factory, Activity) == activities and _count(session_factory, AgentAction) == 0


async def test_approve_resumes_the_turn_and_runs_the_side_effect_exactly_once(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    task = {"title": "Call Hank about INV-1042", "due_date": "2026-11-26", "invoice_number": "INV-1042"}
    route.side_effect = [
        calls(tool_call("create_follow_up_task", task, "call_1")),
        ok("Done: the task to call Hank about INV-1042 is due 2026-11-26."),
    ]
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, "Create a task to call Hank about INV-1042 tomorrow")
        [action] = out["pending_actions"]
        assert route.call_count == 1 and _count(session_factory, Task) == 0

        done = await approve(lumo, u1, out["thread_id"])
        assert route.call_count == 2 and done["pending_actions"] == []
        assert done["reply"] == "Done: the task to call Hank about INV-1042 is due 2026-11-26."
        assert json.loads(tool_results(sent(route, 1))["call_1"])["done"] is True
        with pytest.raises(NotFound):
            await approve(lumo, u1, out["thread_id"])

    assert route.call_count == 2
    assert _count(session_factory, Task) == 1
    with session_factory() as s:
        [ran] = s.scalars(select(AgentAction)).all()
        assert (ran.id, ran.tool) == (f"{lumo.thread_key(u1, out['thread_id'])}:{action['id']}", "create_follow_up_task")


async def test_a_rep_gets_nothing_of_another_reps_account_through_the_model_s_tool_calls(
    db_url: str, session_factory: sessionmaker[Session], u1: Any, route: respx.Route, model: ModelClient
) -> None:
    route.side_effect = [
        calls(
            tool_call("overdue_invoices", {"account": "Initech"}, "call_1"),
            tool_call("get_invoice", {"invoice_number": "INV-3001"}, "call_2"),
        ),
        ok("I can't find any overdue Initech invoices in your book."),
    ]
    async with open_lumo(db_url, session_factory, model) as lumo:
        out = await ask(lumo, u1, "Which invoices of Initech are overdue?")

    results = tool_results(sent(route, 1))
    overdue, invoice = json.loads(results["call_1"]), json.loads(results["call_2"])
    # Another rep's account is not found, exactly like an account that does not exist (not an empty list).
    assert overdue == {"error": "account Initech not found"}
    assert set(invoice) == {"error"} and "not found" in invoice["error"]
    for leaked in ("7777", "7,777", "Lumbergh", "c2@customer.test"):
        assert leaked not in results["call_1"] + results["call_2"]
    assert out["items"] == [] and out["reply"] == "I can't find any overdue Initech invoices in your book."
