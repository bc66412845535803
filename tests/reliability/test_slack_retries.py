"""Slack's retries and replays arriving at the same moment: each event, command and click is processed once.

Slack resends an event it thinks we missed (same event_id, X-Slack-Retry-Num), a captured request can be sent
again inside the 5-minute window, and a rep double-clicks Approve (two requests, each signed anew). Here they
arrive concurrently, over loopback, against the real app in uvicorn, on both dialects.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.db.models import Activity, AgentAction, Invoice, SlackEvent, User
from lumo.slack import handlers
from tests.agent_support import build_book
from tests.test_slack import BOT, DANA, SECRET, LumoServer, SlackStandIn, direct, mention, serve

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def slack_api() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def lumo_server(db_url: str, slack_api: SlackStandIn, session: Session) -> Iterator[LumoServer]:
    build_book(session)
    session.get_one(User, "u1").slack_user_id = DANA
    session.commit()
    with serve(db_url, slack_api, SECRET) as server:
        yield server


def signed(server: LumoServer, body: bytes, content_type: str) -> dict[str, str]:
    ts = str(int(server.clock.now))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body) or ""
    return {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": signature}


def at_once(server: LumoServer, path: str, requests: list[tuple[bytes, dict[str, str]]]) -> list[httpx.Response]:
    """Send the requests at the same moment, each on a connection of its own."""
    start = threading.Barrier(len(requests))

    def send(request: tuple[bytes, dict[str, str]]) -> httpx.Response:
        body, headers = request
        with httpx.Client(timeout=10) as client:
            start.wait()
            return client.post(server.url + path, content=body, headers=headers)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def event_body(event: dict[str, Any], event_id: str) -> bytes:
    payload = {
        "type": "event_callback",
        "team_id": "T1",
        "event_id": event_id,
        "event": event,
        "authorizations": [{"team_id": "T1", "user_id": BOT, "is_bot": True}],
    }
    return json.dumps(payload).encode()


def count(factory: sessionmaker[Session], model: Any, *where: Any) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_an_event_delivered_five_times_at_once_is_answered_once(
    lumo_server: LumoServer, slack_api: SlackStandIn, session_factory: sessionmaker[Session]
) -> None:
    body = event_body(direct("what should I do today?", "1764080000.100100"), "EvStorm1")
    headers = signed(lumo_server, body, "application/json")
    retries = [{"x-slack-retry-num": str(i), "x-slack-retry-reason": "http_timeout"} for i in range(1, 5)]
    deliveries = [(body, headers), *((body, headers | retry) for retry in retries)]

    responses = at_once(lumo_server, "/slack/events", deliveries)

    assert [r.status_code for r in responses] == [200] * 5
    slack_api.wait_posts(1)
    lumo_server.wait_idle()
    assert len(slack_api.posts()) == 1 and "INV-1042" in slack_api.posts()[0]["text"]
    assert count(session_factory, SlackEvent) == 1


def test_a_slash_command_replayed_three_times_at_once_runs_once(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    fields = {"command": "/lumo", "text": "what should I do today?", "user_id": DANA, "channel_id": "C2"}
    body = urlencode(fields).encode()
    headers = signed(lumo_server, body, FORM)

    responses = at_once(lumo_server, "/slack/commands", [(body, headers)] * 3)

    said = sorted(r.json()["text"] for r in responses)
    assert said == sorted([handlers.WORKING, handlers.ALREADY_RECEIVED, handlers.ALREADY_RECEIVED])
    slack_api.wait_posts(2)  # the question, then the answer in its thread
    lumo_server.wait_idle()
    assert len(slack_api.posts()) == 2


def click_body(post: dict[str, Any], user: str, decision: str) -> bytes:
    """The form Slack posts when `user` clicks the `decision` button of `post`."""
    [button] = [
        e
        for b in post["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if json.loads(e["value"])["decision"] == decision
    ]
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": post["channel"]},
        "container": {"type": "message", "message_ts": post["ts"], "channel_id": post["channel"]},
        "message": {"ts": post["ts"], "thread_ts": post["thread_ts"], "text": post["text"]},
        "actions": [{"type": "button", "action_id": button["action_id"], "value": button["value"]}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_approve_double_clicked_and_replayed_at_once_changes_the_invoice_once(
    lumo_server: LumoServer, slack_api: SlackStandIn, session_factory: sessionmaker[Session]
) -> None:
    lumo_server.event(mention("mark INV-1042 as paid because the wire arrived", "1764080000.100200"), "EvPay1")
    [asking] = slack_api.wait_posts(1)
    body = click_body(asking, DANA, "approve")
    first = signed(lumo_server, body, FORM)
    lumo_server.clock.now += 1  # the second click, a second later: signed anew
    second = signed(lumo_server, body, FORM)

    responses = at_once(lumo_server, "/slack/interactions", [(body, first), (body, first), (body, first), (body, second)])

    assert [r.status_code for r in responses] == [200] * 4
    slack_api.wait_posts(2)
    lumo_server.wait_idle()
    with session_factory() as s:
        invoice_id = s.scalar(select(Invoice.id).where(Invoice.number == "INV-1042"))
        assert s.scalar(select(Invoice.status).where(Invoice.id == invoice_id)) == "paid"
    assert count(session_factory, Activity, Activity.invoice_id == invoice_id, Activity.kind == "status_change") == 1
    assert count(session_factory, AgentAction) == 1
    assert len([p for p in slack_api.posts() if f"<@{DANA}> approved" in p["text"]]) == 1  # one result in the thread
    [told] = slack_api.posts("chat.postEphemeral")  # the other click is told what happened, to the clicker only
    assert told["user"] == DANA and "approved" in told["text"], told["text"]
