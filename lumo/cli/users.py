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
) -> None:
    """Create an API token; it is printed once, alone on the last line."""
    from lumo.auth import create_token

    with open_session() as session:
        token = create_token(session, user, dt.datetime.now(dt.UTC), name)
        session.commit()
    typer.echo(f"token for {user} (shown once, store it now):")
    typer.echo(token)
