"""Mail commands: `lumo digest` (preview or send the morning digests) and `lumo outbox` (send, list, retry, mark-sent)."""

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

    from lumo.db.models import OutboxEmail
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
    if any(r.status in ("failed", "uncertain") for r in results):
        raise typer.Exit(1)


def _preview(result: DigestResult) -> str:
    if result.digest is None:
        return result.line()
    return f"To: {result.email}\nSubject: {result.digest.subject}\n\n{result.digest.text}"


@outbox_app.command("send")
def outbox_send(json: JsonOpt = False) -> None:
    """Send the queued approved emails (each exactly once), from the rep's own mailbox when connected."""
    from lumo.digest.run import outbox_waiting, send_outbox
    from lumo.mail.config import MailConfig
    from lumo.mail.providers import Providers

    with _session_factory() as factory:
        mailboxes = Providers(MailConfig.from_settings(settings()))  # reps with a connected mailbox send from it
        results = send_outbox(factory, _mailer(), dt.datetime.now(dt.UTC), mailboxes=mailboxes)
        with factory() as session:
            waiting = [e.id for e in outbox_waiting(session) if e.id not in {r.id for r in results}]
    if json:
        emit_json([{"id": r.id, "to": r.to, "subject": r.subject, "status": r.status, "error": r.error} for r in results])
    else:
        typer.echo("\n".join(r.line() for r in results) or "no queued emails")
        if waiting:
            shown = ", ".join(f"#{i}" for i in waiting)
            typer.echo(f"waiting for an operator (uncertain or failed): {shown}; see `lumo outbox list`")
    if any(r.status != "sent" for r in results):
        raise typer.Exit(1)


OutboxId = Annotated[int, typer.Argument(help="The outbox email's number (#ID).")]


def _row(email: OutboxEmail) -> dict[str, object]:
    return {
        "id": email.id,
        "status": email.status,
        "to": email.to,
        "subject": email.subject,
        "message_id": email.message_id,
        "attempts": email.attempts,
        "error": email.last_error,
    }


@outbox_app.command("list")
def outbox_list(json: JsonOpt = False) -> None:
    """Emails waiting for an operator: uncertain (may have been delivered) and failed."""
    from lumo.digest.run import outbox_waiting

    with _session_factory() as factory, factory() as session:
        rows = [_row(e) for e in outbox_waiting(session)]
    if json:
        emit_json(rows)
        return
    lines = [f"#{r['id']} {r['status']} to {r['to']}: {r['subject']!r} ({r['error']})" for r in rows]
    typer.echo("\n".join(lines) or "no emails waiting for an operator")


@outbox_app.command("retry")
def outbox_retry(outbox_id: OutboxId) -> None:
    """Queue an uncertain or failed email again, once you know it did not arrive (same Message-ID)."""
    from lumo.digest.run import retry_outbox_email

    with _session_factory() as factory, factory() as session:
        email = retry_outbox_email(session, outbox_id)
        message_id = email.message_id
        session.commit()
    typer.echo(f"#{outbox_id} queued again (Message-ID {message_id or 'new'}); `lumo outbox send` sends it")


@outbox_app.command("mark-sent")
def outbox_mark_sent(outbox_id: OutboxId) -> None:
    """Record an uncertain email as sent, once you know it arrived (logged on its invoices)."""
    from lumo.digest.run import mark_outbox_sent

    with _session_factory() as factory, factory() as session:
        mark_outbox_sent(session, outbox_id, dt.datetime.now(dt.UTC))
        session.commit()
    typer.echo(f"#{outbox_id} recorded as sent")
