"""Database fixtures: every DB test runs on SQLite and, when LUMO_TEST_DATABASE_URL is set, on PostgreSQL.

Each test run (each pytest-xdist worker of it) creates its own PostgreSQL database and drops it at the end, so runs
never share rows.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from lumo.db.migrate import upgrade
from lumo.db.models import Base
from lumo.db.session import make_engine, make_sessionmaker
from tests.clients import Cli, OpenApi, open_api, run_cli

PG_URL = os.environ.get("LUMO_TEST_DATABASE_URL")
PG_SKIP = "LUMO_TEST_DATABASE_URL is not set: PostgreSQL tests skipped (.ci/run sets it)"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@contextmanager
def new_pg_database(prefix: str) -> Iterator[tuple[str, Engine]]:
    """A new, empty PostgreSQL database of the test server (URL, and an admin engine on the server), dropped after."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False), admin
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))  # a test may have cut it off
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    with new_pg_database("lumo_test") as (url, _admin):
        upgrade(url)
        yield url


def _truncate_all(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(text("TRUNCATE book_versions"))  # the TRUNCATE above set the version of every book: empty means empty


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database URL of each dialect."""
    if request.param == "sqlite":
        path = tmp_path / "lumo.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_database_url")
    engine = make_engine(url)
    _truncate_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as s:
        yield s


# --- shared by the CLI and HTTP tests (tests/clients.py) --------------------------------------------------


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli("forecast", "--json")`: runs `lumo` on the test's database (offline model); (exit code, stdout, stderr)."""
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    monkeypatch.setenv("LUMO_LLM", "offline")
    return lambda *args: run_cli(monkeypatch, capsys, *args)


@pytest.fixture
def api(db_url: str, session: Session) -> Iterator[OpenApi]:
    """`api("u1", "m1", stripe_webhook_secret=...)`: the app on the test's database (offline model), with a token for
    each user named (`<id>@acme.test`, already in the book); closed at the end of the test."""
    with ExitStack() as stack:
        yield lambda *users, **settings: stack.enter_context(open_api(db_url, session, users, **settings))
