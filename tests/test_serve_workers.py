"""`lumo serve --workers 2` on PostgreSQL: one listening socket per worker on the same port, a worker that dies
is replaced, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from lumo.cli.workers import listening_socket
from lumo.crm.errors import InvalidInput
from tests.test_api_server import _free_port, _lumo_command, _wait_ready


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _listening_sockets(port: int) -> set[str]:
    """The inodes of the sockets in LISTEN on this port (Linux /proc/net/tcp: state 0A)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return {r[9] for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port}


def _wait_for(check: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail("timed out")


def test_two_workers_listen_apart_a_dead_one_is_replaced_and_sigterm_stops_all(pg_database_url: str, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMO_", "OPENAI_"))}
    env.update(LUMO_DATABASE_URL=pg_database_url, LUMO_LLM="offline", PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        server = subprocess.Popen([*_lumo_command(port), "--workers", "2"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(server, base, log)
        _wait_for(lambda: log.read_text().count("Application startup complete.") == 2)
        assert len(_listening_sockets(port)) == 2  # uvicorn's own --workers would share one
        workers = _children(server.pid)
        victim = max(workers)
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: "died" in log.read_text() and log.read_text().count("Application startup complete.") == 3)
        assert log.read_text().count("Collector settled") == 3  # each worker, the replacement too, set its collector
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=40) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=5)
    assert "Traceback" not in log.read_text(), log.read_text()


def test_a_port_another_program_holds_is_one_line() -> None:
    with socket.socket() as taken:  # without SO_REUSEPORT: nobody may share its port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(InvalidInput, match="cannot listen on 127.0.0.1"):
            listening_socket("127.0.0.1", taken.getsockname()[1])
