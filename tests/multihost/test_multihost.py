"""Several hosts on one PostgreSQL: two `lumo serve` and two `lumo worker` processes on loopback.

A fresh database, the offline model, and a local SMTP server (aiosmtpd) that holds one rep's digest at RCPT TO,
so that the worker sending it can be killed (SIGKILL) mid-job. The test shows that a thread started on one API
is approved on the other, that each rep gets one digest, that one approval sends one email, and that the killed
worker's job is run by the other worker (procrastinate's stalled-job retry, lumo.jobs.work.retry_stalled).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from lumo.auth import create_token
from lumo.cli.serve import prepare_checkpoints
from lumo.db.migrate import upgrade
from lumo.db.models import DigestRun, OutboxEmail, User
from lumo.db.session import make_engine, make_sessionmaker
from tests.agent_support import NOW, TODAY, build_book
from tests.conftest import PG_SKIP, PG_URL

pytestmark = pytest.mark.skipif(not PG_URL, reason=PG_SKIP)

DATE = TODAY.isoformat()
VICTIM = "u2@acme.test"  # their digest is held at RCPT TO until its worker is killed
DIGEST_USERS = {"u1@acme.test", "u2@acme.test", "m1@acme.test"}
STARTUP_SECONDS = 45
WAIT_SECONDS = 30
HOLD_SECONDS = 60


@dataclass
class Mailbox:
    """aiosmtpd handler: keeps every accepted message; holds the victim's RCPT until `released`."""

    messages: list[EmailMessage] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    released: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address == VICTIM and not self.released:
            self.held.set()
            deadline = time.monotonic() + HOLD_SECONDS
            while not self.released and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return "451 4.3.0 held"  # its sender was killed meanwhile: nobody reads this
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content, policy=default))  # type: ignore[arg-type]
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if str(m["To"]) == address]

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(m["Subject"]) for m in self.messages]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database, set up as `lumo db upgrade` does (the queue's and the checkpoints' tables)."""
    assert PG_URL is not None
    name = f"lumo_multihost_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)

        asyncio.run(prepare_checkpoints(url))  # once, before five processes open them at the same time
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _seed(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            build_book(session)
            session.get_one(User, "u2").timezone = "Asia/Tokyo"  # each rep's own local day
            session.get_one(User, "m1").timezone = "America/New_York"
            tokens = {who: create_token(session, f"{who}@acme.test", NOW, "test") for who in ("u1", "u2")}
            session.commit()
    finally:
        engine.dispose()
    return tokens


def _lumo() -> list[str]:
    script = Path(sys.executable).with_name("lumo")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from lumo.cli import main; main()"]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, str]]:
    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, f"smtp://127.0.0.1:{port}"
    finally:
        box.released = True
        controller.stop()


def _start(name: str, args: list[str], env: dict[str, str], tmp_path: Path) -> Process:
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen([*_lumo(), *args], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    return Process(name, popen, log)


def _stop(process: Process) -> None:
    if process.popen.poll() is None:
        process.popen.send_signal(signal.SIGTERM)
        try:
            process.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait(timeout=5)


def _wait_ready(process: Process, base_url: str) -> None:
    def ready() -> bool:
        if process.popen.poll() is not None:
            pytest.fail(f"{process.name} exited with {process.popen.returncode}:\n{process.text()}")
        try:
            return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, f"{process.name} to be ready", timeout=STARTUP_SECONDS)


def test_two_apis_and_two_workers_share_one_database(database: str, mailbox: tuple[Mailbox, str], tmp_path: Path) -> None:
    box, smtp_url = mailbox
    tokens = _seed(database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMO_", "OPENAI_"))}
    env.update(
        LUMO_DATABASE_URL=database,
        LUMO_LLM="offline",
        LUMO_SMTP_URL=smtp_url,
        PYTHONUNBUFFERED="1",
        # Fast ticks, so that the test takes seconds: digests looked for every 2 s, stalled jobs swept every 2 s,
        # a worker without a heartbeat for 3 s is taken for dead.
        LUMO_DIGEST_TICK_S="2",
        LUMO_JOBS_SWEEP_S="2",
        LUMO_JOBS_HEARTBEAT_S="1",
        LUMO_JOBS_STALLED_AFTER_S="3",
    )
    ports = [_free_port(), _free_port()]
    processes: list[Process] = []
    try:
        # The second API is `lumo serve --workers 2`: the approval lands on either of its processes.
        apis = [
            _start("api1", ["serve", "--port", str(ports[0])], env, tmp_path),
            _start("api2", ["serve", "--port", str(ports[1]), "--workers", "2"], env, tmp_path),
        ]
        # 00:00 has passed in every zone: every rep's digest of their local day is due at once.
        workers = [
            _start(f"w{i}", ["worker", "--digest-at", "00:00", "--name", f"w{i}", "--concurrency", "2"], env, tmp_path)
            for i in (1, 2)
        ]
        processes = [*apis, *workers]
        urls = [f"http://127.0.0.1:{port}" for port in ports]

        # A worker is sending the victim's digest, held at RCPT TO: kill it (SIGKILL: no clean-up, no goodbye).
        wait_until(box.held.is_set, "the victim's digest to reach the SMTP server", timeout=STARTUP_SECONDS)
        # Each long-running process set its collector once started (lumo.gc_tuning).
        assert all("gc_frozen=" in w.text() for w in workers)
        started = re.compile(r"Starting job (?:\S*\.)?send_digest\[(\d+)\]\([^)]*user_id='u2'")

        def running(worker: Process) -> list[str]:  # the victim's jobs it started and has not ended
            log = worker.text()
            return [i for i in started.findall(log) if not re.search(rf"Job (?:\S*\.)?send_digest\[{i}\].* ended", log)]

        holders = [(w, ids) for w in workers if (ids := running(w))]
        assert len(holders) == 1, [w.text() for w in workers]
        [(holder, [job_id])] = holders
        holder.popen.send_signal(signal.SIGKILL)
        holder.popen.wait(timeout=10)
        box.released = True  # from now on the victim's mail goes through
        [survivor] = [w for w in workers if w is not holder]
        for api, url in zip(apis, urls, strict=True):
            _wait_ready(api, url)

        # Meanwhile, a thread started on one API is approved on the other.
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {tokens['u1']}"}) as http:
            asked = http.post(f"{urls[0]}/v1/chat", json={"message": "Send the reminder for INV-1042", "date": DATE})
            assert asked.status_code == 200, asked.text
            [action] = asked.json()["pending_actions"]
            assert action["tool"] == "send_email"
            thread_id = asked.json()["thread_id"]
            done = http.post(f"{urls[1]}/v1/threads/{thread_id}/decision", json={"decision": "approve", "date": DATE})
            assert done.status_code == 200 and done.json()["pending_actions"] == [], done.text
            again = http.post(f"{urls[0]}/v1/threads/{thread_id}/decision", json={"decision": "approve", "date": DATE})
            assert again.status_code == 409  # decided already, on the other host

        # The killed worker's job runs on the other worker; every rep has a digest; the approved email left.
        wait_until(lambda: len(box.to(VICTIM)) == 1, "the victim's digest, from the other worker")
        # The dead worker's job was found stalled (no heartbeat) by the survivor, put back, and run by it.
        log = survivor.text()
        assert re.search(rf"jobs\.stalled_retried job={job_id} task=send_digest", log), log
        assert re.search(rf"Starting job (?:\S*\.)?send_digest\[{job_id}\]", log), log
        wait_until(lambda: all(box.to(user) for user in DIGEST_USERS), "a digest for every rep and the manager")
        wait_until(lambda: len(box.to("c1@customer.test")) == 1, "the approved email")

        time.sleep(5)  # two more digest ticks and sweeps: still one of each
        for user in DIGEST_USERS:
            assert len(box.to(user)) == 1, (user, box.subjects())
        assert len(box.to("c1@customer.test")) == 1, box.subjects()
        assert len(box.messages) == len(DIGEST_USERS) + 1, box.subjects()

        engine = make_engine(database)
        try:
            with make_sessionmaker(engine)() as session:
                runs = {user: status for user, status in session.execute(select(DigestRun.user_id, DigestRun.status))}
                assert runs.keys() == {"m1", "u1", "u2"} and runs["u2"] == "sent"  # the victim's, from the survivor
                # Another digest may have been leaving the killed worker: the server took it (once, above), and its
                # row stays 'sending' (never sent again; reported uncertain once older than any send takes).
                assert set(runs.values()) <= {"sent", "sending"}, runs
                [email] = session.scalars(select(OutboxEmail)).all()
                assert (email.status, email.attempts) == ("sent", 1)
                waiting = (
                    "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') AND task_name = 'send_digest'"
                )
                stalled = session.execute(text(waiting)).scalar_one()
                assert stalled == 0
        finally:
            engine.dispose()
    finally:
        box.released = True
        for process in processes:
            _stop(process)
    for api in apis:
        assert "Traceback" not in api.text(), api.text()
