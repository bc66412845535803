"""`lumo web-link`: a one-time sign-in URL for the web app."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from lumo.cli.app import app, open_session


@app.command("web-link")
def web_link(
    user: Annotated[str, typer.Option("--user", help="Email of the user who signs in.")],
    base_url: Annotated[str, typer.Option("--base-url", help="Where `lumo serve` answers.")] = "http://127.0.0.1:8000",
    minutes: Annotated[int | None, typer.Option(help="How long the link works, in minutes (default 15).")] = None,
) -> None:
    """Print a sign-in URL for the web app: it works once, for a few minutes."""
    from lumo.web.signin import DEFAULT_LINK_MINUTES, create_link, link_url

    lifetime = DEFAULT_LINK_MINUTES if minutes is None else minutes
    with open_session() as session:
        token = create_link(session, user, dt.datetime.now(dt.UTC), lifetime)
        session.commit()
    typer.echo(f"sign-in link for {user} (works once, for {lifetime} minutes):")
    typer.echo(link_url(base_url, token))
