"""`lumo users add` and `lumo tokens create`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from lumo.cli.app import app, open_session

users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The user's email (their login).")],
    name: Annotated[str, typer.Option(help="Full name.")],
    role: Annotated[str, typer.Option(help="rep, manager or admin.")] = "rep",
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. America/New_York.")] = "UTC",
    manager: Annotated[str | None, typer.Option(help="Email of the user's manager.")] = None,
    slack_user_id: Annotated[str | None, typer.Option(help="Slack user id, e.g. U123.")] = None,
) -> None:
    """Add a user."""
    from lumo.auth import add_user

    with open_session() as session:
        user = add_user(
            session, email=email, name=name, role=role, timezone=timezone, manager_email=manager, slack_user_id=slack_user_id
        )
        session.commit()
    typer.echo(f"added {user.role} {user.email} ({user.id})")


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option("--user", help="Email of the token's user.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
    expires: Annotated[
        str | None, typer.Option(help="Refused from then on: a number of days (90d) or a day (YYYY-MM-DD, UTC).")
    ] = None,
) -> None:
    """Create an API token; it is printed once, alone on the last line."""
    from lumo.auth import create_token, token_expiry

    now = dt.datetime.now(dt.UTC)
    with open_session() as session:
        expires_at = token_expiry(expires, now) if expires else None
        token = create_token(session, user, now, name, expires_at)
        session.commit()
    until = f", valid until {expires_at.isoformat(timespec='minutes')}" if expires_at else ""
    typer.echo(f"token for {user}{until} (shown once, store it now):")
    typer.echo(token)


@tokens_app.command("revoke")
def tokens_revoke(
    token: Annotated[str | None, typer.Argument(help="The token to revoke.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Revoke this user's tokens (all, or those with --name).")] = None,
    name: Annotated[str | None, typer.Option(help="With --user: only the tokens with this name.")] = None,
) -> None:
    """Revoke a token, or a user's tokens: requests with them get 401 from now on."""
    from lumo.auth import revoke_tokens

    with open_session() as session:
        count = revoke_tokens(session, token=token, email=user, name=name)
        session.commit()
    typer.echo(f"revoked {count} token(s)")
