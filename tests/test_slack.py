"""Slack end to end over loopback: the real app in uvicorn, a stand-in Slack Web API, signed requests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
import uvicorn
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.api.app import create_app
from lumo.config import Settings
from lumo.db.models import Invoice, SlackEvent, User
from lumo.slack import handlers
from tests.agent_support import NOW, build_book

SECRET = "test-secret"
BOT = "UBOT"
DANA, BOB, STRANGER = "UDANA", "UBOB", "UNOBODY"  # u1, u2, and nobody Lumenbase knows
WAIT_SECONDS = 20.0


# ---- a stand-in of the Slack Web API ------------------------------------------------------------------------------


class SlackStandIn:
    """Records every Web API call and answers like Slack; can answer 429 a few times first."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.throttle = 0  # how many next calls get 429
        self._lock = threading.Lock()
        self._ts = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                if "json" in (self.headers.get("content-type") or ""):
                    args = json.loads(raw or "{}")
                else:
                    args = {k: v[0] for k, v in parse_qs(raw).items()}
                status, body, headers = standin.answer(self.path.rsplit("/", 1)[-1], args, self.headers.get("authorization", ""))
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {**headers, "content-type": "application/json", "content-length": str(len(payload))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def answer(self, method: str, args: dict[str, Any], auth: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            if self.throttle > 0:
                self.throttle -= 1
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"}
            self._ts += 1
            ts = f"1764082800.{self._ts:06d}"
            self.calls.append({"method": method, "args": args, "auth": auth, "ts": ts})
        return 200, {"ok": True, "channel": args.get("channel"), "ts": ts, "message_ts": ts}, {}

    def posts(self, method: str = "chat.postMessage") -> list[dict[str, Any]]:
        with self._lock:
            return [c["args"] | {"ts": c["ts"]} for c in self.calls if c["method"] == method]

    def wait_posts(self, count: int, method: str = "chat.postMessage") -> list[dict[str, Any]]:
        wait_until(lambda: len(self.posts(method)) >= count, f"{count} {method} call(s)")
        return self.posts(method)

    def __enter__(self) -> SlackStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---- the app in a real server -------------------------------------------------------------------------------------


@dataclass
class Clock:
    """The app's clock (`app.state.clock`): Slack's 5-minute window and the rep's day both read it."""

    now: float = field(default_factory=NOW.timestamp)

    def __call__(self) -> float:
        return self.now


@dataclass
class LumoServer:
    url: str
    app: Any
    clock: Clock
    http: httpx.Client

    def signed(
        self,
        path: str,
        body: bytes,
        content_type: str,
        *,
        secret: str = SECRET,
        at: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        ts = str(int(self.clock.now if at is None else at))
        signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        sent = {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": signature or ""}
        return self.http.post(self.url + path, content=body, headers=sent | (headers or {}))

    def event(self, event: dict[str, Any], event_id: str, **kwargs: Any) -> httpx.Response:
        payload = {
            "type": "event_callback",
            "team_id": "T1",
            "event_id": event_id,
            "event": event,
            "authorizations": [{"team_id": "T1", "user_id": BOT, "is_bot": True}],
        }
        return self.signed("/slack/events", json.dumps(payload).encode(), "application/json", **kwargs)

    def form(self, path: str, fields: dict[str, str], **kwargs: Any) -> httpx.Response:
        return self.signed(path, urlencode(fields).encode(), "application/x-www-form-urlencoded", **kwargs)

    def wait_idle(self) -> None:
        """Every answer job finished (each is queued before its ack returns; the queue runs in the app's process)."""
        wait_until(lambda: self.app.state.jobs.idle(), "the answer jobs")


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def slack_api() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    out = build_book(session)
    for uid, slack_id in (("u1", DANA), ("u2", BOB)):
        session.get_one(User, uid).slack_user_id = slack_id
    session.commit()
    return out


@contextmanager
def serve(db_url: str, slack_api: SlackStandIn, secret: str) -> Iterator[LumoServer]:
    """The app in uvicorn on a free loopback port, in a thread, with its own event loop."""
    settings = Settings(
        database_url=db_url,
        slack_signing_secret=secret,
        slack_bot_token="xoxb-test",
        slack_api_url=slack_api.url,
        jobs="in-process",  # on PostgreSQL too: no `lumo worker` here (tests/multihost runs real workers)
    )
    app = create_app(settings, env={})  # no OPENAI_API_KEY: the offline model answers
    clock = Clock()
    app.state.clock = clock
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    assert server.started, "uvicorn did not start"
    try:
        with httpx.Client(timeout=10) as http:
            yield LumoServer(f"http://127.0.0.1:{sock.getsockname()[1]}", app, clock, http)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def lumo_server(db_url: str, slack_api: SlackStandIn, book: dict[str, Any]) -> Iterator[LumoServer]:
    with serve(db_url, slack_api, SECRET) as server:
        yield server


def mention(text: str, ts: str, *, user: str = DANA, channel: str = "C1", thread_ts: str | None = None) -> dict[str, Any]:
    event = {"type": "app_mention", "user": user, "channel": channel, "ts": ts, "text": f"<@{BOT}> {text}"}
    return event | ({"thread_ts": thread_ts} if thread_ts else {})


def direct(text: str, ts: str, *, user: str = DANA, thread_ts: str | None = None, **extra: Any) -> dict[str, Any]:
    event = {"type": "message", "channel_type": "im", "user": user, "channel": "D1", "ts": ts, "text": text}
    return event | ({"thread_ts": thread_ts} if thread_ts else {}) | extra


def _status(session_factory: sessionmaker[Session], number: str) -> str | None:
    with session_factory() as s:
        return s.scalar(select(Invoice.status).where(Invoice.number == number))


# ---- the tests ----------------------------------------------------------------------------------------------------


def test_url_verification_echoes_the_challenge(lumo_server: LumoServer) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    response = lumo_server.signed("/slack/events", body.encode(), "application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_mention_is_acked_fast_and_answered_in_the_thread(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    started = time.monotonic()
    response = lumo_server.event(mention("what should I do today?", "1764080000.000100"), "Ev001")
    ack_seconds = time.monotonic() - started
    assert response.status_code == 200 and ack_seconds < 3.0
    [post] = slack_api.wait_posts(1)
    assert post["channel"] == "C1" and post["thread_ts"] == "1764080000.000100"
    assert "INV-1042" in post["text"] and "INV-2001" in post["text"]
    assert "INV-3001" not in post["text"]  # u2's invoice: not Dana's priorities
    assert slack_api.calls[0]["auth"] == "Bearer xoxb-test"


def test_a_retried_event_is_answered_once(
    lumo_server: LumoServer, slack_api: SlackStandIn, session_factory: sessionmaker[Session]
) -> None:
    event = direct("what should I do today?", "1764080000.000200")
    assert lumo_server.event(event, "Ev002").status_code == 200
    retry = lumo_server.event(event, "Ev002", headers={"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"})
    assert retry.status_code == 200
    slack_api.wait_posts(1)
    lumo_server.wait_idle()
    assert len(slack_api.posts()) == 1
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(SlackEvent)) == 1


def test_bots_edits_and_channel_chatter_are_ignored(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    ignored = [
        direct("what should I do today?", "1764080000.000301", bot_id="B1"),  # Lumo's own answers come back as this
        direct("what should I do today?", "1764080000.000302", subtype="message_changed"),
        direct("what should I do today?", "1764080000.000303", user=BOT),
        direct("what should I do today?", "1764080000.000304", channel_type="channel"),
    ]
    for n, event in enumerate(ignored):
        assert lumo_server.event(event, f"Ev03{n}").status_code == 200
    lumo_server.wait_idle()
    assert slack_api.calls == []


def test_bad_or_missing_signature_is_refused(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    wrong = lumo_server.event(mention("what should I do today?", "1764080000.000400"), "Ev004", secret="not-the-secret")
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid Slack signature"}
    unsigned = lumo_server.http.post(lumo_server.url + "/slack/events", json={"type": "url_verification", "challenge": "x"})
    assert unsigned.status_code == 401 and unsigned.json() == {"error": "missing Slack signature"}
    command = lumo_server.form("/slack/commands", {"text": "hi", "user_id": DANA, "channel_id": "C1"}, secret="nope")
    assert command.status_code == 401
    lumo_server.wait_idle()
    assert slack_api.calls == []


def test_stale_timestamp_is_refused(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    six_minutes_ago = lumo_server.clock.now - 6 * 60
    response = lumo_server.event(mention("what should I do today?", "1764080000.000500"), "Ev005", at=six_minutes_ago)
    assert response.status_code == 401 and response.json() == {"error": "stale Slack request timestamp"}
    lumo_server.wait_idle()
    assert slack_api.calls == []


def test_a_replay_after_the_window_is_refused(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    first = lumo_server.event(mention("what should I do today?", "1764080000.000600"), "Ev006")
    assert first.status_code == 200
    slack_api.wait_posts(1)
    lumo_server.clock.now += 6 * 60  # the same signed bytes, captured and sent again later
    replay = lumo_server.http.post(
        lumo_server.url + "/slack/events", content=first.request.content, headers=dict(first.request.headers)
    )
    assert replay.status_code == 401
    lumo_server.wait_idle()
    assert len(slack_api.posts()) == 1


def test_unknown_slack_user_gets_a_polite_refusal_and_no_data(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    response = lumo_server.event(mention("what should I do today?", "1764080000.000700", user=STRANGER), "Ev007")
    assert response.status_code == 200
    [post] = slack_api.wait_posts(1)
    assert post["text"] == handlers.REFUSAL and post["thread_ts"] == "1764080000.000700"
    assert "INV-" not in json.dumps(slack_api.calls)


def test_slash_command_acks_ephemeral_then_posts_the_answer(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    fields = {
        "command": "/lumo",
        "text": "what should I do today?",
        "user_id": DANA,
        "channel_id": "C2",
        "response_url": "https://hooks.slack.test/commands/1",
    }
    started = time.monotonic()
    response = lumo_server.form("/slack/commands", fields)
    assert time.monotonic() - started < 3.0
    assert response.status_code == 200
    assert response.json() == {"response_type": "ephemeral", "text": "Working on it…"}
    question, answer = slack_api.wait_posts(2)
    assert question["channel"] == "C2" and "what should I do today?" in question["text"]
    assert answer["channel"] == "C2" and answer["thread_ts"] == question["ts"] and "INV-1042" in answer["text"]

    empty = lumo_server.form("/slack/commands", fields | {"text": "  "})
    assert empty.json() == {"response_type": "ephemeral", "text": handlers.HELP}
    stranger = lumo_server.form("/slack/commands", fields | {"user_id": STRANGER})
    assert stranger.json() == {"response_type": "ephemeral", "text": handlers.REFUSAL}
    lumo_server.wait_idle()
    assert len(slack_api.calls) == 2


def _click(server: LumoServer, post: dict[str, Any], user: str, decision: str) -> httpx.Response:
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
    return server.form("/slack/interactions", {"payload": json.dumps(payload)})


def test_approve_button_changes_the_invoice_and_posts_the_result(
    lumo_server: LumoServer, slack_api: SlackStandIn, session_factory: sessionmaker[Session]
) -> None:
    root = "1764080000.000800"
    lumo_server.event(mention("mark INV-1042 as paid because the wire arrived", root), "Ev008")
    [asking] = slack_api.wait_posts(1)
    assert asking["thread_ts"] == root and "approval" in asking["text"]
    assert {e["text"]["text"] for b in asking["blocks"] if b["type"] == "actions" for e in b["elements"]} == {"Approve", "Reject"}
    assert _status(session_factory, "INV-1042") == "sent"  # nothing before the click

    assert _click(lumo_server, asking, BOB, "approve").status_code == 200  # not his thread: nothing to approve
    [refused] = slack_api.wait_posts(1, "chat.postEphemeral")
    assert refused["user"] == BOB and refused["text"] == handlers.NOT_WAITING
    lumo_server.wait_idle()
    assert _status(session_factory, "INV-1042") == "sent"

    started = time.monotonic()
    assert _click(lumo_server, asking, DANA, "approve").status_code == 200
    assert time.monotonic() - started < 3.0
    _, done = slack_api.wait_posts(2)
    assert done["thread_ts"] == root and f"<@{DANA}> approved" in done["text"] and "blocks" not in done
    assert _status(session_factory, "INV-1042") == "paid"


def test_text_reject_in_the_thread_changes_nothing(
    lumo_server: LumoServer, slack_api: SlackStandIn, session_factory: sessionmaker[Session]
) -> None:
    root = "1764080000.000900"
    lumo_server.event(direct("mark INV-2001 as paid because the wire arrived", root), "Ev009")
    [asking] = slack_api.wait_posts(1)
    assert asking["blocks"]
    lumo_server.event(direct("what should I do today?", "1764080000.000901", thread_ts=root), "Ev010")
    [_, hint] = slack_api.wait_posts(2)
    assert "approve" in hint["text"] and "INV-1042" not in hint["text"]  # the thread waits: no new turn yet
    lumo_server.event(direct("reject not yet", "1764080000.000902", thread_ts=root), "Ev011")
    [*_, done] = slack_api.wait_posts(3)
    assert done["thread_ts"] == root and "not yet" in done["text"]
    assert _status(session_factory, "INV-2001") == "sent"


def test_posting_survives_slack_rate_limits(lumo_server: LumoServer, slack_api: SlackStandIn) -> None:
    slack_api.throttle = 1  # the first post gets 429 with Retry-After: the client waits and tries again
    lumo_server.event(mention("what should I do today?", "1764080000.001000"), "Ev012")
    [post] = slack_api.wait_posts(1)
    assert "INV-1042" in post["text"]


def test_without_a_signing_secret_slack_is_not_configured(db_url: str, slack_api: SlackStandIn) -> None:
    with serve(db_url, slack_api, "") as server:
        response = server.event(mention("hi", "1764080000.001100"), "Ev013")
        assert response.status_code == 503 and response.json() == {"error": "Slack is not configured"}


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("approve", handlers.Decision("approve")),
        ("Yes!", handlers.Decision("approve")),
        ("reject not yet", handlers.Decision("reject", "not yet")),
        ("No: wrong amount", handlers.Decision("reject", "wrong amount")),
        ("no", handlers.Decision("reject", handlers.DEFAULT_REJECT_REASON)),
        ("nothing new?", None),
        ("approve INV-1042 and INV-2001", None),
        ("what should I do today?", None),
    ],
)
def test_decision_words(text: str, decision: handlers.Decision | None) -> None:
    assert handlers.parse_decision(text) == decision


def test_thread_ids_and_mentions() -> None:
    assert handlers.thread_id_for("C1", "1764080000.000100") == "slack-C1-1764080000_000100"
    assert handlers.strip_mentions(f"<@{BOT}> ask <@U2> about INV-1", frozenset({BOT})) == "ask <@U2> about INV-1"
    assert handlers.strip_mentions("<@UX|lumo> hi", frozenset()) == "hi"
    assert handlers.plain_text("invoices of A&amp;B &lt; 30 days ") == "invoices of A&B < 30 days"
    assert handlers.to_mrkdwn("**INV-1** is A&B's <late>") == "*INV-1* is A&amp;B's &lt;late&gt;"


def test_an_event_whose_answer_cannot_be_queued_is_refused_so_that_slack_sends_it_again(
    lumo_server: LumoServer, slack_api: SlackStandIn, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = lumo_server.app.state.jobs

    async def queue_down(*args: Any) -> None:
        raise OSError("connection refused")

    event = direct("what should I do today?", "1764080000.000900")
    with monkeypatch.context() as patch:
        patch.setattr(jobs, "defer_slack", queue_down)
        refused = lumo_server.event(event, "Ev900")
    assert refused.status_code == 503
    with session_factory() as s:  # the claim is undone: Slack's retry is a first delivery
        assert s.scalar(select(func.count()).select_from(SlackEvent)) == 0
    retry = lumo_server.event(event, "Ev900", headers={"x-slack-retry-num": "1", "x-slack-retry-reason": "http_error"})
    assert retry.status_code == 200
    [post] = slack_api.wait_posts(1)
    assert "INV-1042" in post["text"]
