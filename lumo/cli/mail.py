"""`lumo mail`: connect a rep's own Gmail or Outlook mailbox, see it, disconnect it, and read replies back."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from lumo.cli.app import JsonOpt, app, emit_json, open_session, settings

mail_app = typer.Typer(help="Reps' own mailboxes (Gmail, Outlook): send from them, read replies back.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")

UserOpt = Annotated[str, typer.Option("--user", help="Email of the rep whose mailbox it is.")]


@mail_app.command("key")
def mail_key() -> None:
    """Print a new key for LUMO_MAIL_TOKEN_KEY (refresh tokens are encrypted with it)."""
    from lumo.mail.secrets import new_key

    typer.echo(new_key())


@mail_app.command("connect")
def mail_connect(
    provider: Annotated[str, typer.Argument(help="gmail or outlook.")],
    user: UserOpt,
    redirected: Annotated[
        str | None, typer.Option("--redirected", help="The address the provider sent you back to (else asked for).")
    ] = None,
) -> None:
    """Connect a mailbox: open the printed address, consent, then paste the address you are sent back to."""
    from lumo.crm.users import user_by_email
    from lumo.mail import connect
    from lumo.mail.config import MailConfig
    from lumo.mail.providers import Providers

    config = MailConfig.from_settings(settings())
    connect.check_provider(provider)
    with open_session() as session:
        rep = user_by_email(session, user)
        url = connect.start(Providers(config), provider, rep, now=dt.datetime.now(dt.UTC))
    typer.echo(f"Open this address, sign in as {rep.email} and consent:\n{url}")
    back = redirected or typer.prompt("Paste the whole address you were sent back to")
    code, state = connect.code_and_state(back)
    with open_session() as session:
        mailbox = connect.finish(session, Providers(config), provider, code=code, state=state, now=dt.datetime.now(dt.UTC))
        address = mailbox.address
        session.commit()
    typer.echo(f"connected {provider} mailbox {address} for {rep.email}: approved emails now leave from it")


@mail_app.command("status")
def mail_status(user: Annotated[str | None, typer.Option("--user", help="Only this rep.")] = None, json: JsonOpt = False) -> None:
    """Connected mailboxes: provider, address, state (connected or needs_reconnect), last sync."""
    from sqlalchemy import select

    from lumo.crm.users import user_by_email
    from lumo.db.models import Mailbox, User

    with open_session() as session:
        query = select(User.email, Mailbox).join(Mailbox, Mailbox.user_id == User.id).order_by(User.email)
        if user is not None:
            query = query.where(User.id == user_by_email(session, user).id)
        rows = [
            {
                "user": email,
                "provider": box.provider,
                "address": box.address,
                "status": box.status,
                "synced_at": box.synced_at.isoformat() if box.synced_at else None,
                "error": box.last_error,
            }
            for email, box in session.execute(query).tuples()
        ]
    if json:
        emit_json(rows)
        return
    lines = [
        f"{r['user']}: {r['provider']} {r['address']} {r['status']}"
        + (f", synced {r['synced_at']}" if r["synced_at"] else ", not synced yet")
        + (f" ({r['error']})" if r["error"] else "")
        for r in rows
    ]
    typer.echo("\n".join(lines) or "no connected mailboxes: emails leave by SMTP")


@mail_app.command("disconnect")
def mail_disconnect(user: UserOpt) -> None:
    """Forget a rep's mailbox and its grant: their approved emails leave by SMTP again."""
    from lumo.crm.users import user_by_email
    from lumo.mail.connect import disconnect

    with open_session() as session:
        rep = user_by_email(session, user)
        mailbox = disconnect(session, rep)
        provider, address = mailbox.provider, mailbox.address
        session.commit()
    typer.echo(f"disconnected {provider} mailbox {address} of {rep.email}; revoke Lumo's access in the account's settings too")
