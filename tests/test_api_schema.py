"""Property-based: requests generated from the app's own OpenAPI spec never get a server error.

Schemathesis reads the spec over ASGI from the app, then drives a served app (lifespan, seeded SQLite database)
with a valid bearer token, so the authenticated operations are explored past the auth check. SQLite only: the
generated inputs do not depend on the dialect (tests/test_api.py covers the PostgreSQL-only NUL case).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.config import Settings
from lumo.db.session import make_engine, make_sessionmaker
from tests.agent_support import NOW, build_book

# The spec only: an app on an in-memory database, whose lifespan touches no file.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(database_url="sqlite://"), env={}))


@dataclass
class Served:
    app: FastAPI
    headers: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Served]:
    """One app over the small book of tests.agent_support, and rep u1's token."""
    path = tmp_path_factory.mktemp("schemathesis") / "lumo.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        build_book(session)
        token = create_token(session, "u1@acme.test", NOW, "schemathesis")
        session.commit()
    engine.dispose()
    # Slack configured (an unconfigured one answers 503 by design), its Web API a closed local port: nothing leaves.
    config = Settings(
        database_url=url,
        slack_signing_secret="schemathesis-secret",
        slack_bot_token="xoxb-test",
        slack_api_url="http://127.0.0.1:9/api/",
        stripe_webhook_secret="whsec_schemathesis",
    )
    yield Served(create_app(config, env={"LUMO_LLM": "offline"}), {"Authorization": f"Bearer {token}"})


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case, served: Served) -> None:
    response = case.call(app=served.app, headers=dict(served.headers))
    assert response.status_code < 500, f"{response.status_code} {response.text}\n{case.as_curl_command()}"
    assert "Traceback" not in response.text
