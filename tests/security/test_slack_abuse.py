"""Slack under abuse: absurd timestamps, replayed slash commands and clicks, masked links from the data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import update
from sqlalchemy.orm import Session

from lumo.db.models import Account, User
from lumo.slack import handlers
from tests.agent_support import build_book
from tests.test_slack import BOB, DANA, SECRET, LumoServer, SlackStandIn, direct, serve


@pytest.fixture
def slack_api() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def lumo_server(db_url: str, slack_api: SlackStandIn, session: Session) -> Iterator[LumoServer]:
    build_book(session)
    for uid, slack_id in (("u1", DANA), ("u2", BOB)):
        session.get_one(User, uid).slack_user_id = slack_id
    session.commit()
    with serve(db_url, slack_api, SECRET) as server:
        yield server


FORM = "application/x-www-form-urlencoded"
ENDPOINTS = [
    ("/slack/events", b'{"type": "url_verification", "challenge": "x"}', "application/json"),
    ("/slack/commands", urlencode({"text": "what should I do today?", "user_id": DANA, "channel_id": "C1"}).encode(), FORM),
    ("/slack/interactions", urlencode({"payload": json.dumps({"type": "block_actions"})}).encode(), FORM),
]


def _signed_at(server: LumoServer, path: str, body: bytes, content_type: str, timestamp: str) -> Any:
    """A request correctly signed with the real secret, whatever its timestamp says."""
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body)
    headers = {"content-type": content_type, "x-slack-request-timestamp": timestamp, "x-slack-signature": signature or ""}
    return server.http.post(server.url + path, content=body, headers=headers)


@pytest.mark.parametrize(("path", "body", "content_type"), ENDPOINTS)
@pytest.mark.parametrize("timestamp", ["9" * 309, "1" * 5000, "-1764082800", "1e9"])
def test_an_absurd_timestamp_is_refused_not_a_crash(
    lumo_server: LumoServer, slack_api: SlackStandIn, path: str, body: bytes, content_type: str, timestamp: str
) -> None:
    response = _signed_at(lumo_server, path, body, content_type, timestamp)
    assert response.status_code == 401 and response.json() == {"error": "bad Slack request timestamp"}
    lumo_server.wait_idle()
    assert slack_api.calls == []


def test_a_replayed_slash_command_runs_once(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    fields = {"command": "/lumo", "text": "what should I do today?", "user_id": DANA, "channel_id": "C2"}
    first = lumo_server.form("/slack/commands", fields)
    assert first.json()["text"] == handlers.WORKING
    slack_api.wait_posts(2)  # the question, then the answer in its thread
    for _ in range(3):  # the same signed bytes, captured and sent again inside the 5-minute window
        replay = lumo_server.http.post(
            lumo_server.url + "/slack/commands", content=first.request.content, headers=dict(first.request.headers)
        )
        assert replay.status_code == 200 and replay.json()["text"] == handlers.ALREADY_RECEIVED
    lumo_server.wait_idle()
    assert len(slack_api.posts()) == 2


def test_a_new_command_with_the_same_words_still_runs(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    fields = {"command": "/lumo", "text": "what should I do today?", "user_id": DANA, "channel_id": "C2"}
    lumo_server.form("/slack/commands", fields)
    slack_api.wait_posts(2)
    lumo_server.clock.now += 1  # Slack signs each command anew: another second, another signature
    assert lumo_server.form("/slack/commands", fields).json()["text"] == handlers.WORKING
    slack_api.wait_posts(4)


def test_markdown_links_are_not_made_clickable() -> None:
    text = handlers.to_mrkdwn("See [pay now](https://evil.test) or <https://evil.test|pay now>")
    assert "<" not in text and "|pay now>" not in text
    assert "[pay now](https://evil.test)" in text


def test_a_link_in_an_account_name_reaches_slack_as_plain_text(
    lumo_server: LumoServer, slack_api: SlackStandIn, session: Session
) -> None:
    session.execute(update(Account).where(Account.id == "a1").values(name="Globex [pay now](https://evil.test)"))
    session.commit()
    lumo_server.event(direct("what should I do today?", "1764080000.009100"), "EvLink1")
    [answer] = slack_api.wait_posts(1)
    assert "[pay now](https://evil.test)" in answer["text"]
    assert "<https://evil.test" not in json.dumps(slack_api.calls)
