"""The HTTP API through a real `lumo serve` process: SSE streaming, concurrent chats and an approval over the wire.

The server runs the offline model on the test database (SQLite file or the PostgreSQL test database, shared with
the test) seeded with the small book of tests.agent_support plus a third rep, u3 (Pied Piper: INV-4001).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lumo.auth import create_token
from lumo.db.models import Activity, Invoice
from tests import factories as f
from tests.agent_support import NOW, TODAY, build_book

DATE = TODAY.isoformat()
INVOICES = {"u1": {"INV-1042", "INV-2001", "INV-2002"}, "u2": {"INV-3001"}, "u3": {"INV-4001"}}
ALL_INVOICES = set().union(*INVOICES.values())
STARTUP_SECONDS = 60


@dataclass
class Server:
    base_url: str
    tokens: dict[str, str]
    log: Path

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed(session_factory: sessionmaker[Session]) -> dict[str, str]:
    with session_factory() as session:
        build_book(session)
        f.user(session, "u3", manager_id="m1")
        f.account(session, "a4", "u3", name="Pied Piper")
        f.contact(session, "c4", "a4", name="Richard Hendricks")
        f.invoice(session, "a4", contacts=("c4",), days_overdue=9, amount=Decimal("4242.00"), number="INV-4001")
        tokens = {who: create_token(session, f"{who}@acme.test", NOW, "test") for who in INVOICES}
        session.commit()
    return tokens


def _lumo_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("lumo")
    entry = [str(script)] if script.exists() else [sys.executable, "-c", "from lumo.cli import main; main()"]
    return [*entry, "serve", "--host", "127.0.0.1", "--port", str(port)]


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"lumo serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"lumo serve was not ready after {STARTUP_SECONDS}s:\n{log.read_text()}")


@pytest.fixture
def server(db_url: str, session_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[Server]:
    tokens = _seed(session_factory)
    port = _free_port()
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMO_", "OPENAI_"))}
    env.update(LUMO_DATABASE_URL=db_url, LUMO_LLM="offline", PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        process = subprocess.Popen(_lumo_command(port), env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base_url, log)
        yield Server(base_url, tokens, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    assert "Traceback" not in log.read_text(), log.read_text()  # nothing crashed in the server either
    assert "Collector settled" in log.read_text()  # a served process sets its collector (lumo.gc_tuning)


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) per event of a text/event-stream; comments (the heartbeat pings) are skipped."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    if data:
        yield event, "\n".join(data)


def test_chat_stream_sends_the_thread_then_each_step_then_the_message(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, headers=server.auth("u1"), timeout=30) as client:
        with client.stream("POST", "/v1/chat/stream", json={"message": "what should I do today?", "date": DATE}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [(name, json.loads(data)) for name, data in parse_sse(response.iter_lines())]
        names = [name for name, _ in events]
        assert names[0] == "thread" and names[-1] == "message"
        assert set(names[1:-1]) == {"step"} and len(names) >= 3
        thread_id = events[0][1]["thread_id"]
        steps = [data for name, data in events if name == "step"]
        assert all("node" in step for step in steps)
        assert "todays_priorities" in [call for step in steps for call in step.get("tool_calls", [])]
        final = events[-1][1]
        assert final["thread_id"] == thread_id and final["items"][0]["invoice_number"] == "INV-1042"
        assert "EUR 12,400.00" in final["reply"]
        assert client.get(f"/v1/threads/{thread_id}").json() == final  # the message event is the /v1/chat body


async def test_concurrent_chats_of_several_users_stay_scoped_and_intact(server: Server) -> None:
    questions = [
        "what should I do today?",
        "Which invoices are overdue?",
        "Which statuses are stale?",
        "How much revenue is at risk?",
        "Why is Globex at risk?",
    ]
    requests = [(who, questions[n % len(questions)]) for n, who in enumerate(["u1", "u2", "u3"] * 7)][:20]

    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:

        async def ask(who: str, message: str) -> httpx.Response:
            return await client.post("/v1/chat", json={"message": message, "date": DATE}, headers=server.auth(who))

        responses = await asyncio.gather(*(ask(who, message) for who, message in requests))
        assert [r.status_code for r in responses] == [200] * len(requests), [r.text for r in responses if r.status_code != 200]
        bodies = [r.json() for r in responses]
        assert len({b["thread_id"] for b in bodies}) == len(requests)

        for (who, message), body in zip(requests, bodies, strict=True):
            others = ALL_INVOICES - INVOICES[who]
            text = json.dumps(body)
            assert not [n for n in others if n in text], (who, message, body["reply"])
        mine = [(who, b) for (who, m), b in zip(requests, bodies, strict=True) if m == "what should I do today?"]
        assert all(b["items"] and {i["invoice_number"] for i in b["items"]} <= INVOICES[who] for who, b in mine)

        stored = await asyncio.gather(
            *(
                client.get(f"/v1/threads/{b['thread_id']}", headers=server.auth(who))
                for (who, _), b in zip(requests, bodies, strict=True)
            )
        )
        assert [s.status_code for s in stored] == [200] * len(requests)
        assert [s.json() for s in stored] == bodies  # every checkpoint holds its own turn, nothing mixed up
        assert (await client.get("/readyz")).json() == {"status": "ready"}


def test_approval_round_trip_over_http(server: Server, session_factory: sessionmaker[Session]) -> None:
    with httpx.Client(base_url=server.base_url, headers=server.auth("u1"), timeout=30) as client:
        asked = client.post("/v1/chat", json={"message": "mark INV-1042 as paid because the wire arrived", "date": DATE})
        assert asked.status_code == 200
        [action] = asked.json()["pending_actions"]
        assert (action["tool"], action["args"]["status"]) == ("update_invoice_status", "paid")
        thread_id = asked.json()["thread_id"]

        stranger = client.post(f"/v1/threads/{thread_id}/decision", json={"decision": "approve"}, headers=server.auth("u2"))
        assert stranger.status_code == 404

        done = client.post(f"/v1/threads/{thread_id}/decision", json={"decision": "approve", "date": DATE})
        assert done.status_code == 200 and done.json()["pending_actions"] == []
        again = client.post(f"/v1/threads/{thread_id}/decision", json={"decision": "approve", "date": DATE})
        assert again.status_code == 409 and again.json()["outcome"]["result"] == "done"  # decided already: what happened

    with session_factory() as s:
        invoice = s.scalar(select(Invoice).where(Invoice.number == "INV-1042"))
        assert invoice is not None and invoice.status == "paid"
        changes = s.execute(
            select(Activity.from_status, Activity.to_status).where(
                Activity.invoice_id == invoice.id, Activity.kind == "status_change"
            )
        ).all()
        assert [tuple(c) for c in changes] == [("sent", "paid")]


def _get_on(conn: socket.socket) -> bytes:
    conn.sendall(b"GET /readyz HTTP/1.1\r\nHost: lumo\r\n\r\n")
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_an_idle_connection_stays_open_past_uvicorns_default(request: pytest.FixtureRequest, db_url: str) -> None:
    """A load balancer reuses idle connections for up to its idle timeout (often 60 s): a server that closes
    them sooner (uvicorn's default is 5 s) races its next request, which then meets a reset."""
    if db_url.startswith("postgresql"):  # checked before the server starts: this test waits 6 s
        pytest.skip("the keep-alive is uvicorn's, whatever the database: one dialect is enough")
    server: Server = request.getfixturevalue("server")
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        assert _get_on(conn).startswith(b"HTTP/1.1 200")
        time.sleep(6)
        assert _get_on(conn).startswith(b"HTTP/1.1 200")
