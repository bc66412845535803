"""The API's bodies are typed: every read route declares its response model, and the agent's contracts are the ones
the HTTP schemas and Slack use (one definition each, in lumo.agent.contracts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, get_type_hints
from zoneinfo import ZoneInfo

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import is_typeddict  # typing's own misses typing_extensions' TypedDicts on 3.11

from lumo.agent import contracts
from lumo.api import schemas
from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.config import Settings
from lumo.crm.drafts import draft_for_invoice
from lumo.crm.invoices import invoice_filter, invoice_history, search_invoices
from lumo.crm.lifecycle import AsOf
from lumo.slack import handlers
from tests.agent_support import NOW, TODAY, build_book, scope_of

DATE = TODAY.isoformat()
AS_OF = AsOf(TODAY, ZoneInfo("UTC"))


def _typed(model: Any) -> bool:
    """A body with named fields: a pydantic model or a TypedDict (a bare dict, inferred from `-> dict`, says nothing)."""
    return isinstance(model, type) and (issubclass(model, BaseModel) or is_typeddict(model))


def reads(app: FastAPI) -> dict[str, Any]:
    """Every GET route under /v1, with its response model, walking app.routes into the routers it includes."""
    return {
        r.path: r.response_model
        for r in iter_route_contexts(app.routes)
        if r.path and r.path.startswith("/v1/") and "GET" in (r.methods or ())
    }


def reads_without_response_model(app: FastAPI) -> list[str]:
    return sorted(path for path, model in reads(app).items() if not _typed(model))


def test_every_read_route_declares_its_response_model() -> None:
    app = create_app(Settings(database_url="sqlite://"), env={})
    documented = {p for p, ops in app.openapi()["paths"].items() if p.startswith("/v1/") and "get" in ops}
    assert documented and set(reads(app)) == documented  # the walk sees every read the API serves
    assert reads_without_response_model(app) == []


def test_the_payment_routes_that_write_declare_their_response_models_too() -> None:
    app = create_app(Settings(database_url="sqlite://"), env={})
    writes = {
        r.path: r.response_model
        for r in iter_route_contexts(app.routes)
        if r.path and r.path.startswith("/v1/payments/") and "POST" in (r.methods or ())
    }
    assert "/v1/payments/import" in writes and "/v1/payments/events/{event_id}/link" in writes
    assert sorted(path for path, model in writes.items() if not _typed(model)) == []


def test_the_check_finds_a_read_route_without_a_response_model() -> None:
    router = APIRouter(prefix="/v1")

    @router.get("/typed", response_model=schemas.ItemsResponse)
    def typed() -> dict[str, Any]:
        return {"items": []}

    @router.get("/inferred")
    def inferred() -> dict[str, Any]:
        return {}

    @router.post("/written")
    def written() -> dict[str, Any]:
        return {}

    app = FastAPI()
    app.include_router(router)
    assert reads_without_response_model(app) == ["/v1/inferred"]


def test_the_chat_response_is_the_turn_result_and_its_actions_the_pending_action() -> None:
    assert get_type_hints(schemas.ChatResponse) == get_type_hints(contracts.TurnResult)
    assert get_type_hints(contracts.TurnResult)["pending_actions"] == list[contracts.PendingAction]


def test_slack_decides_with_the_agents_decision() -> None:
    assert handlers.Decision is contracts.Decision
    assert handlers.parse_decision("no: wrong amount") == contracts.Decision("reject", reason="wrong amount")


@pytest.mark.parametrize(
    ("decision", "state"),
    [
        (contracts.Decision(), {"type": "approve"}),
        (contracts.Decision("reject", reason="not yet"), {"type": "reject", "reason": "not yet"}),
        (
            contracts.Decision("edit", args={"subject": "Hi"}, approve_anyway=True),
            {"type": "edit", "args": {"subject": "Hi"}, "approve_anyway": True},
        ),
    ],
)
def test_a_decision_is_kept_in_the_graph_state_as_the_plain_dict_checkpoints_hold(
    decision: contracts.Decision, state: dict[str, Any]
) -> None:
    assert decision.as_state() == state
    assert contracts.Decision.of(state) == decision


# --- the typed read bodies say what the domain computed, nothing dropped ---------------------------------------


@pytest.fixture
def client(db_url: str, session: Session) -> Iterator[tuple[TestClient, dict[str, str]]]:
    build_book(session)
    token = create_token(session, "u1@acme.test", NOW, "test")
    session.commit()
    with TestClient(create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"})) as c:
        yield c, {"Authorization": f"Bearer {token}"}


def _as_sent(value: dict[str, Any]) -> Any:
    return json.loads(json.dumps(value))


def test_one_invoice_is_returned_as_invoice_history_computes_it(
    client: tuple[TestClient, dict[str, str]], session_factory: sessionmaker[Session]
) -> None:
    c, headers = client
    body = c.get("/v1/invoices/INV-1042", params={"date": DATE}, headers=headers).json()
    with session_factory() as s:
        expected = invoice_history(s, scope_of(session_factory, "u1@acme.test"), "INV-1042", AS_OF)
    assert expected["contacts"] and expected["stale"] is not None
    assert body == _as_sent(expected)


def test_a_draft_is_returned_as_the_tone_ladder_writes_it(
    client: tuple[TestClient, dict[str, str]], session_factory: sessionmaker[Session]
) -> None:
    c, headers = client
    body = c.get("/v1/invoices/INV-1042/draft", params={"date": DATE}, headers=headers).json()
    with session_factory() as s:
        expected = draft_for_invoice(s, scope_of(session_factory, "u1@acme.test"), "INV-1042", AS_OF).as_json()
    assert body == _as_sent(expected)


def test_an_invoice_page_is_returned_as_the_search_finds_it(
    client: tuple[TestClient, dict[str, str]], session_factory: sessionmaker[Session]
) -> None:
    c, headers = client
    body = c.get("/v1/invoices", params={"date": DATE, "overdue": True}, headers=headers).json()
    with session_factory() as s:
        expected = search_invoices(s, scope_of(session_factory, "u1@acme.test"), invoice_filter(overdue=True), AS_OF).as_json(
            AS_OF
        )
    assert expected["items"]
    assert body == _as_sent(expected)
