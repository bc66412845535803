"""Running the CLI and the HTTP app in tests (the `cli` and `api` fixtures of conftest.py use these)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

TOKEN_AT = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
Cli = Callable[..., tuple[int, str, str]]


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`lumo ARGS...` in this process: (exit code, stdout, stderr)."""
    from lumo.cli import main as cli_main

    monkeypatch.setattr(sys, "argv", ["lumo", *args])
    code = 0
    try:
        cli_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


OpenApi = Callable[..., Api]


@contextmanager
def open_api(db_url: str, session: Session, users: Sequence[str], **settings: Any) -> Iterator[Api]:
    """The app on `db_url` with the offline model and a bearer token for each user id named."""
    from lumo.api.app import create_app
    from lumo.auth import create_token
    from lumo.config import Settings

    tokens = {who: create_token(session, f"{who}@acme.test", TOKEN_AT, "test") for who in users}
    session.commit()
    app = create_app(Settings(database_url=db_url, **settings), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, tokens)
