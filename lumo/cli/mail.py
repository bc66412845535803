"""`lumo mail`: connect a rep's own Gmail or Outlook mailbox, see it, disconnect it, and read replies back."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo

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
            for email, box in session.execute(query)
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


@mail_app.command("sync")
def mail_sync(
    user: Annotated[str | None, typer.Option("--user", help="Only this rep's mailbox.")] = None, json: JsonOpt = False
) -> None:
    """Read new replies in the invoices' threads: a real one pauses chasing and suggests actions to approve."""
    from lumo.agent.reply_reader import reply_reader
    from lumo.cli.digest import _session_factory
    from lumo.config import model_settings
    from lumo.llm import LLMSettings
    from lumo.mail.config import MailConfig
    from lumo.mail.providers import Providers
    from lumo.mail.sync import sync_mailboxes

    reader = reply_reader(LLMSettings.from_env()) if model_settings().live else None  # rules alone when offline
    providers = Providers(MailConfig.from_settings(settings()))
    with _session_factory() as factory:
        results = sync_mailboxes(factory, dt.datetime.now(dt.UTC), providers=providers, user_email=user, reader=reader)
    if json:
        emit_json([r.__dict__ for r in results])
    else:
        typer.echo("\n".join(r.line() for r in results) or "no connected mailboxes to read")
    if any(r.status != "synced" for r in results):
        raise typer.Exit(1)


@mail_app.command("replies")
def mail_replies(user: UserOpt, json: JsonOpt = False) -> None:
    """Your customers' replies, newest first, with what each suggests (`lumo mail propose ID` to decide)."""
    import json as jsonlib

    from lumo.crm.users import user_by_email
    from lumo.mail.sync import pending_replies

    with open_session() as session:
        rep = user_by_email(session, user)
        rows = [
            {
                "id": m.id,
                "from": m.from_address,
                "received_at": m.received_at.isoformat(),
                "invoices": m.invoice_numbers.split(",") if m.invoice_numbers else [],
                "meaning": m.meaning,
                "excerpt": m.excerpt,
                "proposals": jsonlib.loads(m.proposals),
            }
            for m in pending_replies(session, rep.id)
        ]
    if json:
        emit_json(rows)
        return
    lines = [
        f"#{r['id']} {r['received_at'][:10]} {r['from']} on {', '.join(r['invoices'])} ({r['meaning']}): {r['excerpt']}\n"
        + "".join(f"    suggests {p['tool']} {jsonlib.dumps(p['args'], ensure_ascii=False)}\n" for p in r["proposals"])
        for r in rows
    ]
    typer.echo("".join(lines).rstrip() or "no replies")


@mail_app.command("propose")
def mail_propose(
    reply: Annotated[int, typer.Argument(help="The reply's number (#ID in `lumo mail replies`).")],
    user: UserOpt,
    json: JsonOpt = False,
) -> None:
    """Propose what a reply suggests: the actions wait for your approval (`lumo approve THREAD`)."""

    from lumo.cli.record import _propose
    from lumo.crm.users import user_by_email
    from lumo.mail.sync import reply_calls, reply_of

    with open_session() as session:
        rep = user_by_email(session, user)
        calls = reply_calls(reply_of(session, rep.id, reply), dt.datetime.now(ZoneInfo(rep.timezone or "UTC")).date())
    _propose(calls, f"(lumo mail propose) reply #{reply}", rep=user, date=None, as_json=json, thread=None)
