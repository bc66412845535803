"""The Typer app, its shared options, and the one place errors become a line and an exit code.

The commands import what they use (SQLAlchemy, the domain, the agent) in their bodies, so that `lumo --help`
and the read commands start fast: importing everything up front took 2 s.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lumo.crm.errors import ImportRejected, LumoError
from lumo.crm.lifecycle import AsOf

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from lumo.config import Settings
    from lumo.crm.scope import Scope

app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, help="Lumo, the assistant of Lumenbase CRM."
)

RepOpt = Annotated[str, typer.Option("--rep", help="Email of the user whose scope applies.")]
DateOpt = Annotated[str | None, typer.Option("--date", help="The day it is, YYYY-MM-DD (default: today for the user).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def as_of_for(scope: Scope, date: str | None, now: dt.datetime | None = None) -> AsOf:
    """The day for `scope`: the given date, or today in the user's time zone (the clock is read only here)."""
    return AsOf.given(date, now or dt.datetime.now(dt.UTC), scope.tz)


def settings() -> Settings:
    from lumo.config import get_settings

    return get_settings()


@contextmanager
def open_session() -> Iterator[Session]:
    from lumo.db.session import make_engine, make_sessionmaker

    engine = make_engine(settings().database_url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


def main() -> None:
    try:
        app()
    except ImportRejected as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        fail(str(exc), exc.exit_code)
    except LumoError as exc:
        fail(str(exc), exc.exit_code)
    except Exception as exc:  # noqa: BLE001  (a user never sees a traceback; LUMO_DEBUG=1 shows it)
        from sqlalchemy.exc import OperationalError, ProgrammingError

        from lumo.config import debug_enabled

        if isinstance(exc, OperationalError | ProgrammingError):
            text = str(exc.orig) if exc.orig else str(exc)
            if "no such table" in text or "does not exist" in text:
                fail("the database is not set up: run `lumo db upgrade` (or `lumo seed --demo`)", 1)
            fail(f"database error: {text.splitlines()[0]}", 1)
        if debug_enabled():
            raise
        logging.getLogger("lumo.cli").exception("cli.crash")
        fail(f"internal error: {type(exc).__name__}: {exc}".splitlines()[0], 1)
