"""A real `lumo serve` on loopback over a temporary SQLite book, driven by Debian's Chromium through Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium (`apt-get install chromium`; .ci/run does it).
Without it the tests skip, saying why; under CI (CI=true) a missing browser fails them instead.
A failed test leaves a screenshot and the server's log in tmp/artifacts (LUMO_TEST_ARTIFACTS to move it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lumo.auth import create_token
from lumo.db.session import make_engine, make_sessionmaker
from lumo.web.signin import create_link, link_url
from tests.browser.book import snapshot

CHROMIUM = os.environ.get("LUMO_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LUMO_TEST_ARTIFACTS", ROOT / "tmp" / "artifacts"))
LUMO = str(Path(sys.executable).parent / "lumo")
# Chromium's own line for a response with an error status: expected where a test provokes one (a 404 page).
RESOURCE_404 = re.compile(r"^Failed to load resource: the server responded with a status of 404")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([LUMO, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"lumo {' '.join(args)} failed: {done.stderr}"
    return done.stdout


class Server:
    def __init__(self, base_url: str, db_url: str, env: dict[str, str], log: Path) -> None:
        self.base_url, self.db_url, self.env, self.log = base_url, db_url, env, log
        self.engine: Engine = make_engine(db_url)
        self.sessions: sessionmaker[Session] = make_sessionmaker(self.engine)

    def link(self, email: str) -> str:
        """A fresh one-time sign-in URL (made in process: `lumo web-link` itself is tested once, as a command)."""
        with self.sessions() as s:
            token = create_link(s, email, dt.datetime.now(dt.UTC))
            s.commit()
        return link_url(self.base_url, token)

    def token(self, email: str) -> str:
        with self.sessions() as s:
            token = create_token(s, email, dt.datetime.now(dt.UTC), "browser test")
            s.commit()
        return token

    def api(self, path: str, email: str) -> Any:
        request = urllib.request.Request(self.base_url + path, headers={"Authorization": f"Bearer {self.token(email)}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("web")
    db_url = f"sqlite:///{folder / 'lumo.db'}"
    env = {**os.environ, "LUMO_DATABASE_URL": db_url, "LUMO_LLM": "offline"}
    env.pop("OPENAI_API_KEY", None)
    book = folder / "book.json"
    book.write_text(json.dumps(snapshot(dt.datetime.now(dt.UTC).date())))
    _run(["db", "upgrade"], env)
    _run(["import", str(book)], env)
    port = _free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "lumo-serve.log"
    with log.open("w") as out:
        process = subprocess.Popen([LUMO, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=out, stderr=out)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base_url + "/healthz", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"lumo serve did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.2)
        running = Server(base_url, db_url, env, log)
        yield running
        running.engine.dispose()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is open, which the
# asyncio tests that run after these would trip over.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class Console:
    """What the page said on its console: errors fail the test unless the test expects them."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


def _open_page(browser: Any, request: pytest.FixtureRequest, width: int, height: int) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(20_000)
    console = Console()
    page.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    page.console = console
    yield page
    failed = any(
        getattr(request.node, f"report_{w}", None) and getattr(request.node, f"report_{w}").failed for w in ("setup", "call")
    )
    if failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
    if not failed:
        assert console.unexpected() == [], f"console errors: {console.unexpected()}"


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from _open_page(browser, request, 1280, 900)


@pytest.fixture
def phone(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A 375 px wide viewport, the width of a small phone."""
    yield from _open_page(browser, request, 375, 812)
