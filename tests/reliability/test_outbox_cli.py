"""`lumo outbox`: an uncertain email is reported with exit code 1 and left for the operator's list, retry or mark-sent."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lumo.cli import main
from tests import factories as f
from tests.reliability.smtp_faults import FaultySmtp

SMALL_BOOK = Path(__file__).parent.parent / "data" / "small_book.json"
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def server() -> Iterator[FaultySmtp]:
    smtp = FaultySmtp(mode="drop_after_data").start()
    yield smtp
    smtp.stop()


@pytest.fixture
def lumo(db_url: str, server: FaultySmtp, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    monkeypatch.setenv("LUMO_SMTP_URL", server.url)

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["lumo", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    code, _, err = run("import", str(SMALL_BOOK))
    assert code == 0, err
    return run


def test_an_uncertain_email_is_reported_then_retried_only_by_the_operator(
    lumo: Any, server: FaultySmtp, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as s:
        f.outbox_email(s, ["INV-1042"], to="hank@globex.test", body="Hi Hank", at=NOW)
        s.commit()

    code, out, _ = lumo("outbox", "send")
    assert code == 1 and out.startswith("#1 to hank@globex.test: uncertain, not retried: no confirmation")
    assert "`lumo outbox retry 1`" in out and len(server.kept) == 1

    code, out, _ = lumo("outbox", "send")
    assert (code, out.splitlines()) == (
        0,
        ["no queued emails", "waiting for an operator (uncertain or failed): #1; see `lumo outbox list`"],
    )
    code, out, _ = lumo("outbox", "list")
    assert code == 0 and out.startswith("#1 uncertain to hank@globex.test: 'Reminder: INV-1042'")

    code, out, _ = lumo("outbox", "retry", "1")
    assert code == 0 and out.startswith("#1 queued again (Message-ID <")
    server.mode = "ok"
    code, out, _ = lumo("outbox", "send")
    assert (code, out.strip()) == (0, "#1 to hank@globex.test: sent")
    assert len(server.kept) == 2 and server.message_ids()[0] == server.message_ids()[1]

    code, _, err = lumo("outbox", "mark-sent", "1")
    assert (code, err.strip()) == (2, "error: outbox email #1 is sent, not uncertain: nothing to do")
    code, _, err = lumo("outbox", "retry", "9")
    assert (code, err.strip()) == (3, "error: no outbox email #9")
