"""Every route the app serves, walked from app.routes (a route added later is covered without being listed here):
without a token, with another user's token, thread id and action id, and with oversized, malformed and deeply
nested bodies. None answers a 5xx, shows data outside the caller's scope, or changes anything unapproved.

A route is behind a bearer token unless it is named below as public or as signed (Slack, Stripe): a new public
route fails the first test until it is added here on purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.config import Settings
from lumo.db.models import Activity, AgentAction, Invoice, OutboxEmail, Task
from tests.agent_support import NOW, TODAY, build_book

DATE = TODAY.isoformat()
PAY_1042 = "mark INV-1042 as paid because the wire arrived"
SLACK_SECRET = "slack-secret"
STRIPE_SECRET = "whsec_test"
MAX_BYTES = 64_000

PUBLIC = {
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/web-links/exchange"),  # trades a one-time link for a token: the link is the credential
}
SIGNED = {
    ("POST", "/slack/events"),
    ("POST", "/slack/commands"),
    ("POST", "/slack/interactions"),
    ("POST", "/webhooks/stripe"),
    ("GET", "/mail/callback/{provider}"),  # a provider's redirect: who asked is in its sealed `state`
}
# What u1 has and u2 must never see: invoice numbers, account names, amounts of u1's book.
U1_ONLY = ("INV-1042", "INV-2001", "INV-2002", "Globex", "Hooli", "12,400", "12400")


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, mounts (static files) aside."""
    return sorted(
        (method, r.path) for r in iter_route_contexts(app.routes) if r.path for method in (r.methods or ()) if method != "HEAD"
    )


def fill(path: str, values: dict[str, str]) -> str:
    """The path with each {param} replaced; a parameter this file does not know gets a plain value."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "x1"), path)


@dataclass
class Api:
    client: TestClient
    app: FastAPI
    tokens: dict[str, str]
    factory: sessionmaker[Session]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def send(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers=headers or {}, **kwargs)

    def authed(self) -> list[tuple[str, str]]:
        return [r for r in routes(self.app) if r not in PUBLIC and r not in SIGNED]

    def bodies(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Routes that take a JSON body, with the body's schema (resolved from the OpenAPI components)."""
        spec = self.app.openapi()
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                content = (op.get("requestBody") or {}).get("content", {})
                if "application/json" in content:
                    ref = content["application/json"]["schema"].get("$ref", "")
                    schema = spec["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
                    out[(method.upper(), path)] = schema
        return out


@pytest.fixture
def api(db_url: str, session: Session, session_factory: sessionmaker[Session]) -> Iterator[Api]:
    build_book(session)
    tokens = {who: create_token(session, f"{who}@acme.test", NOW, "test") for who in ("u1", "u2")}
    session.commit()
    settings = Settings(
        database_url=db_url,
        slack_signing_secret=SLACK_SECRET,
        slack_bot_token="xoxb-test",
        slack_api_url="http://127.0.0.1:9/api/",  # never reached: nothing below gets past a signature to an answer
        stripe_webhook_secret=STRIPE_SECRET,
    )
    app = create_app(settings, env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, app, tokens, session_factory)


def waiting_thread(api: Api, who: str = "u1") -> tuple[str, str]:
    """A thread of `who` waiting on one action (marking their invoice paid): its thread id and action id."""
    message = PAY_1042 if who == "u1" else PAY_1042.replace("INV-1042", "INV-3001")
    body = api.send("POST", "/v1/chat", api.auth(who), json={"message": message, "date": DATE}).json()
    [action] = body["pending_actions"]
    return body["thread_id"], action["id"]


def nothing_changed(api: Api) -> None:
    with api.factory() as s:
        assert s.scalars(select(Invoice.status).where(Invoice.number.in_(["INV-1042", "INV-3001"]))).all() == ["sent"] * 2
        assert s.scalar(select(func.count()).select_from(AgentAction)) == 0
        assert s.scalar(select(func.count()).select_from(OutboxEmail)) == 0
        assert s.scalar(select(func.count()).select_from(Task)) == 0
        assert s.scalar(select(func.count()).select_from(Activity).where(Activity.kind != "note")) == 0


# --- the walk sees everything ------------------------------------------------------------------------------------


def test_the_walk_finds_every_documented_route_and_each_is_public_signed_or_behind_a_token(api: Api) -> None:
    walked = set(routes(api.app))
    documented = {(m.upper(), p) for p, ops in api.app.openapi()["paths"].items() for m in ops}
    assert documented <= walked and (PUBLIC | SIGNED) <= walked
    assert len(api.authed()) >= 19  # chat, threads, reads, record, payments, web: as of this writing


# --- no token, a bad token ----------------------------------------------------------------------------------------


NO_VALID_TOKEN = {
    "none": {},
    "unknown": {"Authorization": "Bearer lumo_not-a-token"},
    "basic": {"Authorization": "Basic dTE6cHc="},
    "empty": {"Authorization": "Bearer "},
}


def test_every_route_behind_a_token_answers_401_without_a_valid_one(api: Api) -> None:
    thread_id, _ = waiting_thread(api)
    values = {"thread_id": thread_id, "number": "INV-1042", "line_id": "1"}
    wrong = {}
    for name, headers in NO_VALID_TOKEN.items():
        for method, path in api.authed():
            response = api.send(method, fill(path, values), headers, json={} if method == "POST" else None)
            got = (response.status_code, response.json(), response.headers.get("www-authenticate"))
            if got[0] != 401 or got[2] != "Bearer" or set(got[1]) != {"error"}:
                wrong[(name, method, path)] = got
    assert wrong == {}
    nothing_changed(api)


def test_public_routes_answer_without_a_token_and_signed_ones_refuse_an_unsigned_request(api: Api) -> None:
    for method, path in sorted(PUBLIC):
        body = {"link": "lumo_nope"} if method == "POST" else None
        response = api.send(method, path, json=body)
        assert response.status_code < 500 and (method == "GET") == (response.status_code == 200), (path, response.text)
    for method, path in sorted(SIGNED):
        body = {"type": "url_verification", "challenge": "x"} if method == "POST" else None
        for params in ({}, {"code": "c", "state": "forged"}):
            response = api.send(method, fill(path, {"provider": "gmail"}), json=body, params=params)
            assert response.status_code in (400, 401, 422), (path, response.status_code)
            assert "challenge" not in response.text
    nothing_changed(api)


# --- another user's token, thread id and action id ---------------------------------------------------------------


def example_body(method: str, path: str, thread_id: str, action_id: str) -> dict[str, Any] | None:
    """A well-formed body aimed at u1's data (u1's invoice, thread and action); a route unknown here gets {}."""
    if method != "POST":
        return None
    examples: dict[str, dict[str, Any]] = {
        "/v1/chat": {"message": "Tell me about INV-1042", "thread_id": thread_id, "date": DATE},
        "/v1/chat/stream": {"message": "Tell me about INV-1042", "thread_id": thread_id, "date": DATE},
        "/v1/threads/{thread_id}/decision": {"decision": "approve", "action_id": action_id, "date": DATE},
        "/v1/record": {
            "tool": "record_promise",
            "args": {"invoice_number": "INV-1042", "date": "2026-12-01"},
            "thread_id": thread_id,
            "date": DATE,
        },
        "/v1/stale/fix": {"thread_id": thread_id, "date": DATE},
        "/v1/payments/lines/{line_id}/apply": {"invoice_numbers": ["INV-1042"], "thread_id": thread_id, "date": DATE},
    }
    return examples.get(path, {})


def test_another_users_token_with_the_first_users_thread_action_and_invoice_gets_nothing(api: Api) -> None:
    """u2 aiming at u1's thread, action, invoice and book gets exactly what ids that do not exist get: no 5xx, no data."""
    thread_id, action_id = waiting_thread(api, "u1")
    before = api.send("GET", f"/v1/threads/{thread_id}", api.auth("u1")).json()
    aimed = {"thread_id": thread_id, "number": "INV-1042", "action_id": action_id, "rep": "u1@acme.test"}
    nowhere = {"thread_id": "nosuchthread", "number": "INV-9999", "action_id": "a0-nosuch", "rep": "nobody@acme.test"}

    def answer(method: str, path: str, values: dict[str, str], switch: bool = False) -> tuple[int, str]:
        body = example_body(method, path, values["thread_id"], values["action_id"])
        if body and "invoice_numbers" in body:
            body["invoice_numbers"] = [values["number"]]
        if body and "args" in body:
            body["args"]["invoice_number"] = values["number"]
        params = {"rep": values["rep"]} if switch else None  # a manager's switch to one rep's book
        response = api.send(method, fill(path, values | {"line_id": "424242"}), api.auth("u2"), json=body, params=params)
        text = response.text
        for key, value in values.items():
            text = text.replace(value, f"<{key}>")  # what the caller sent may be echoed back ("INV-1042 not found")
        return response.status_code, text

    got = {(m, p, False): (answer(m, p, aimed), answer(m, p, nowhere)) for m, p in api.authed()}
    got |= {(m, p, True): (answer(m, p, aimed, True), answer(m, p, nowhere, True)) for m, p in api.authed() if m == "GET"}
    assert {route: a for route, (a, _) in got.items() if a[0] >= 500} == {}
    assert {route: a for route, (a, b) in got.items() if a != b} == {}  # outside the scope reads as not there
    assert {route: a for route, (a, _) in got.items() if any(word in a[1] for word in U1_ONLY)} == {}
    assert api.send("GET", f"/v1/threads/{thread_id}", api.auth("u1")).json() == before  # still waiting, as it was
    nothing_changed(api)


@pytest.mark.parametrize("route", ["/v1/threads/{t}", "/v1/threads/{t}/history", "/v1/threads/{t}/decision"])
def test_another_users_thread_id_is_not_found(api: Api, route: str) -> None:
    thread_id, _ = waiting_thread(api, "u1")
    method, body = ("POST", {"date": DATE}) if route.endswith("decision") else ("GET", None)
    response = api.send(method, route.replace("{t}", thread_id), api.auth("u2"), json=body)
    expected = f"thread {thread_id} has no action waiting for approval" if body else f"thread {thread_id} not found"
    assert (response.status_code, response.json()) == (404, {"error": expected})
    nothing_changed(api)


def test_another_users_action_id_on_ones_own_waiting_thread_is_not_found_and_runs_nothing(api: Api) -> None:
    _, foreign_action = waiting_thread(api, "u1")
    own_thread, own_action = waiting_thread(api, "u2")
    if foreign_action == own_action:  # ids are per thread: make sure the test names one u2 does not have
        foreign_action = foreign_action + "-u1"
    response = api.send(
        "POST",
        f"/v1/threads/{own_thread}/decision",
        api.auth("u2"),
        json={"decision": "approve", "action_id": foreign_action, "date": DATE},
    )
    assert response.status_code == 404 and foreign_action in response.json()["error"]
    waiting = api.send("GET", f"/v1/threads/{own_thread}", api.auth("u2")).json()["pending_actions"]
    assert [a["id"] for a in waiting] == [own_action]
    nothing_changed(api)


# --- an unknown thread id ---------------------------------------------------------------------------------------


UNKNOWN_THREAD_BODIES = {
    "/v1/chat": {"message": "what should I do today?"},
    "/v1/chat/stream": {"message": "what should I do today?"},
    "/v1/record": {"tool": "record_promise", "args": {"invoice_number": "INV-1042", "date": "2026-12-01"}},
    "/v1/stale/fix": {},
}


def test_an_unknown_thread_id_is_404_and_starts_no_thread(api: Api) -> None:
    for path, extra in UNKNOWN_THREAD_BODIES.items():
        response = api.send("POST", path, api.auth("u1"), json={"thread_id": "no-such-thread", "date": DATE, **extra})
        assert (response.status_code, response.json()) == (404, {"error": "thread no-such-thread not found"}), path
    assert api.send("GET", "/v1/threads/no-such-thread", api.auth("u1")).status_code == 404
    assert api.send("GET", "/v1/threads", api.auth("u1")).json()["threads"] == []


def test_without_a_thread_id_a_new_thread_starts_and_its_id_continues_it(api: Api) -> None:
    first = api.send("POST", "/v1/chat", api.auth("u1"), json={"message": "what should I do today?", "date": DATE}).json()
    again = api.send(
        "POST", "/v1/chat", api.auth("u1"), json={"message": "and Hooli?", "thread_id": first["thread_id"], "date": DATE}
    )
    assert again.status_code == 200 and again.json()["thread_id"] == first["thread_id"]


# --- oversized, malformed, deeply nested bodies ------------------------------------------------------------------


def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


def abusive_bodies() -> dict[str, bytes]:
    return {
        "truncated": b'{"message": "hi"',
        "not utf-8": b"\xff\xfe\x00{",
        "not an object": b"[1, 2, 3]",
        "null": b"null",
        "huge number": b'{"message": 1e999999, "limit": 99999999999999999999999999999}',
        "nested arrays": b"[" * 30_000 + b"]" * 30_000,
        "nested objects": nested(10_000).encode(),
        "nul in a key": b'{"message\\u0000": "hi"}',
    }


def field_values() -> dict[str, str]:
    """Raw JSON for one field: each must be refused or handled, in whatever field of whatever body."""
    return {
        "deep": nested(900),
        "deeper": nested(3000),
        "list": "[" + ",".join(['"x"'] * 5000) + "]",
        "nul": '"a\\u0000b"',
        "long": '"' + "x" * 50_000 + '"',
        "number": "1e308",
        "bool": "true",
    }


def test_every_json_body_refuses_abuse_with_a_4xx_and_never_a_5xx(api: Api) -> None:
    thread_id, _ = waiting_thread(api)
    values = {"thread_id": thread_id, "number": "INV-1042", "line_id": "1"}
    bodies = api.bodies()
    assert {("POST", "/v1/chat"), ("POST", "/v1/threads/{thread_id}/decision"), ("POST", "/v1/record")} <= set(bodies)
    headers = api.auth("u1") | {"content-type": "application/json"}
    got: dict[tuple[str, str, str], int] = {}
    for method, path in bodies:
        url = fill(path, values)
        for name, raw in abusive_bodies().items():
            got[(method, path, name)] = api.send(method, url, headers, content=raw).status_code
        oversized = b'{"message": "' + b"x" * MAX_BYTES + b'"}'
        got[(method, path, "oversized")] = api.send(method, url, headers, content=oversized).status_code
        got[(method, path, "oversized, chunked")] = api.send(method, url, headers, content=iter([oversized])).status_code
    nothing_changed(api)  # a body that cannot be read decides nothing (a readable one may approve: that is its job)
    for (method, path), schema in bodies.items():
        url = fill(path, values)
        for prop in schema.get("properties", {}):
            for kind, value in field_values().items():
                raw = f'{{"{prop}": {value}, "date": "{DATE}"}}'.encode() if prop != "date" else f'{{"date": {value}}}'.encode()
                got[(method, path, f"{prop}={kind}")] = api.send(method, url, headers, content=raw).status_code
    server_errors = {k: v for k, v in got.items() if v >= 500}
    assert server_errors == {}
    assert all(got[(m, p, "oversized")] == 413 and got[(m, p, "oversized, chunked")] == 413 for m, p in bodies)
    assert all(400 <= got[(m, p, n)] < 500 for m, p in bodies for n in abusive_bodies())


def test_an_edit_with_a_deeply_nested_argument_is_refused_and_the_action_still_waits(api: Api) -> None:
    thread_id, action_id = waiting_thread(api)
    raw = '{"decision": "edit", "args": {"reason": ' + nested(900) + "}}"
    response = api.send(
        "POST", f"/v1/threads/{thread_id}/decision", api.auth("u1") | {"content-type": "application/json"}, content=raw
    )
    assert response.status_code == 422, response.text
    waiting = api.send("GET", f"/v1/threads/{thread_id}", api.auth("u1")).json()["pending_actions"]
    assert [a["id"] for a in waiting] == [action_id]
    nothing_changed(api)


# --- signed routes with signed garbage ---------------------------------------------------------------------------


def slack_signed(body: bytes) -> dict[str, str]:
    """Slack's v0 signature over any bytes (slack_sdk's own helper only signs UTF-8)."""
    ts = str(int(time.time()))
    mac = hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": ts, "x-slack-signature": f"v0={mac}"}


def stripe_signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    mac = hmac.new(STRIPE_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"stripe-signature": f"t={ts},v1={mac}"}


def test_signed_routes_refuse_signed_garbage_with_a_4xx(api: Api) -> None:
    garbage = {**abusive_bodies(), "empty": b"", "form of nested json": b"payload=" + nested(5000).encode()}
    got = {}
    for method, path in sorted(route for route in SIGNED if route[0] == "POST"):
        for name, raw in garbage.items():
            sign = stripe_signed if path.startswith("/webhooks") else slack_signed
            form = path in ("/slack/commands", "/slack/interactions")
            headers = sign(raw) | {"content-type": "application/x-www-form-urlencoded" if form else "application/json"}
            got[(path, name)] = api.send(method, path, headers, content=raw).status_code
    assert {k: v for k, v in got.items() if v >= 500} == {}
    nothing_changed(api)


def test_a_stripe_event_signed_ten_minutes_ago_is_refused_as_a_replay(api: Api) -> None:
    body = b'{"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {}}}'
    ts = str(int(time.time()) - 600)
    mac = hmac.new(STRIPE_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"stripe-signature": f"t={ts},v1={mac}", "content-type": "application/json"}
    response = api.send("POST", "/webhooks/stripe", headers, content=body)
    assert (response.status_code, response.json()) == (400, {"error": "bad Stripe signature"})


def test_lumo_ask_with_an_unknown_thread_says_so_in_one_line_and_exits_3(
    api: Api, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lumo.cli import main

    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    monkeypatch.setenv("LUMO_LLM", "offline")
    monkeypatch.setattr("sys.argv", ["lumo", "ask", "hello", "--rep", "u1@acme.test", "--thread", "no-such-thread"])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    assert exited.value.code == 3 and (out + err).strip() == "error: thread no-such-thread not found"


def test_every_path_id_beyond_a_64_bit_integer_is_a_4xx(api: Api) -> None:
    """A number no database row can have (SQLite's driver raises on it) is refused, never a 500."""
    huge = str(2**64)
    values = {name: huge for name in ("line_id", "reply_id", "event_id", "thread_id", "number")}
    served = {}
    for method, path in api.authed():
        if "{" not in path:
            continue
        response = api.send(method, fill(path, values), api.auth("u1"), json={} if method == "POST" else None)
        served[(method, path)] = response.status_code
    assert served and all(400 <= code < 500 for code in served.values()), served
    nothing_changed(api)
