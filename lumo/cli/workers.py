"""`lumo serve --workers N`: N uvicorn workers, each accepting on a listening socket of its own (SO_REUSEPORT).

uvicorn's own --workers shares one socket among the workers, and asyncio accepts a whole burst of connections
in one wake-up: of 200 chats opened at once, one worker could take 80% and run out of CPU while another idled.
With one socket per worker on the same port, the kernel spreads new connections over them by address hash.
The supervisor restarts a worker that dies (on its own socket) and stops every worker on SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
from multiprocessing.process import BaseProcess
from typing import Any

from lumo.crm.errors import InvalidInput

log = logging.getLogger("uvicorn.error")
APP = "lumo.api.app:create_app"
STARTUP_FAILURE = 3  # uvicorn's exit code for a worker that could not start: restarting it would fail the same way
STOP_SECONDS = 30


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _worker(options: dict[str, Any], sock: socket.socket) -> None:
    import uvicorn

    from lumo.api.app import create_app

    try:  # built here, not by uvicorn's factory loading: the app must know it is served (lumo.gc_tuning)
        served = create_app(serving=True)
    except Exception:  # noqa: BLE001  (bad settings: every restart would fail the same way)
        log.exception("Worker could not build the app.")
        raise SystemExit(STARTUP_FAILURE) from None
    uvicorn.Server(uvicorn.Config(served, **options)).run(sockets=[sock])


def serve_workers(options: dict[str, Any], workers: int) -> None:
    """Run `workers` processes serving the API on options' host and port until SIGINT or SIGTERM."""
    import uvicorn

    uvicorn.Config(APP, factory=True, **options)  # the parent logs as the workers do
    sockets = [listening_socket(options["host"], options["port"]) for _ in range(workers)]
    spawn = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def start(sock: socket.socket) -> BaseProcess:
        process = spawn.Process(target=_worker, args=(options, sock))
        process.start()
        return process

    processes = [start(sock) for sock in sockets]
    log.info("Started %d workers on %s:%d, one socket each", workers, options["host"], options["port"])
    failed = False
    while not stop.wait(0.5):
        for i, process in enumerate(processes):
            if process.exitcode is None:
                continue
            if process.exitcode == STARTUP_FAILURE:
                log.error("Worker [%s] failed to start, stopping the others.", process.pid)
                stop.set()
                failed = True
                break
            log.warning("Worker [%s] died (exit code %s), starting another.", process.pid, process.exitcode)
            processes[i] = start(sockets[i])
    for process in processes:
        if process.exitcode is None:
            process.terminate()
    for process in processes:
        process.join(STOP_SECONDS)
        if process.exitcode is None:
            process.kill()
    for sock in sockets:
        sock.close()
    if failed:
        raise SystemExit(STARTUP_FAILURE)
