"""Mail commands: `lumo digest` (preview or send the morning digests) and `lumo outbox send`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from lumo.cli.app import DateOpt, JsonOpt, app, emit_json, settings
from lumo.crm.lifecycle import parse_day

if TYPE_CHECKING:  # imported in the commands: `lumo --help` starts fast
    from sqlalchemy.orm import Session, sessionmaker

    from lumo.digest.mailer import Mailer
    from lumo.digest.run import DigestResult

outbox_app = typer.Typer(help="Approved emails waiting to be sent.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@contextmanager
def _session_factory() -> Iterator[sessionmaker[Session]]:
    from lumo.db.session import make_engine, make_sessionmaker

    engine = make_engine(settings().database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def _mailer() -> Mailer:
    from lumo.digest.mailer import Mailer

    config = settings()
    return Mailer(config.smtp_url, config.mail_from)


@app.command()
def digest(
    date: DateOpt = None,
    rep: Annotated[str | None, typer.Option("--rep", help="Only this user's digest (default: every rep and manager).")] = None,
    send: Annotated[bool, typer.Option("--send", help="Send by SMTP (once per user and day).")] = False,
    json: JsonOpt = False,
) -> None:
    """Build each rep's morning digest; print it, or send it with --send."""
    from lumo.digest.run import send_digests

    day = parse_day(date) if date else None
    now = dt.datetime.now(dt.UTC)
    mailer = _mailer() if send else None
    with _session_factory() as factory:
        results = send_digests(factory, mailer, day, user_email=rep, send=send, now=now)
    if json:
        emit_json(
            [
                {
                    "email": r.email,
                    "day": r.day.isoformat(),
                    "status": r.status,
                    "error": r.error,
                    "digest": r.digest.as_json() if r.digest and not send else None,
                }
                for r in results
            ]
        )
    else:
        typer.echo("\n".join(r.line() for r in results) if send else "\n\n".join(_preview(r) for r in results))
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _preview(result: DigestResult) -> str:
    if result.digest is None:
        return result.line()
    return f"To: {result.email}\nSubject: {result.digest.subject}\n\n{result.digest.text}"


@outbox_app.command("send")
def outbox_send(json: JsonOpt = False) -> None:
    """Send the queued approved emails (each exactly once)."""
    from lumo.digest.run import send_outbox

    with _session_factory() as factory:
        results = send_outbox(factory, _mailer(), dt.datetime.now(dt.UTC))
    if json:
        emit_json([{"id": r.id, "to": r.to, "subject": r.subject, "status": r.status, "error": r.error} for r in results])
    else:
        typer.echo("\n".join(r.line() for r in results) or "no queued emails")
    if any(r.status != "sent" for r in results):
        raise typer.Exit(1)
