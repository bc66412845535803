"""`lumo serve`: the HTTP API under uvicorn (several workers on PostgreSQL, whose jobs `lumo worker` runs)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from lumo.cli.app import app, open_session, settings
from lumo.crm.errors import InvalidInput

KEEP_ALIVE_SECONDS = 75
# The server stack (uvicorn, the agent, alembic) is imported in the command: `lumo --help` starts fast.


def _demo_setup(host: str, port: int) -> None:
    """Seed demo data into an empty database and print a working curl with a fresh demo token."""
    from lumo.auth import create_token
    from lumo.db.migrate import upgrade
    from lumo.db.session import make_engine
    from lumo.demo.seed import DEMO_REP_EMAIL, database_is_empty, seed_demo
    from lumo.web.signin import create_link, link_url

    url = settings().database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        if database_is_empty(engine):
            seed_demo(engine, today=dt.date.today())
    finally:
        engine.dispose()
    with open_session() as session:
        token = create_token(session, DEMO_REP_EMAIL, dt.datetime.now(dt.UTC), "demo")
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        page = link_url(base, create_link(session, DEMO_REP_EMAIL, dt.datetime.now(dt.UTC)))
        session.commit()
    auth = f"-H 'Authorization: Bearer {token}'"
    typer.echo(
        f"Demo rep {DEMO_REP_EMAIL}, token {token}\nTry:\n"
        f"  curl -s {auth} {base}/v1/priorities\n"
        f"  curl -s {auth} -H 'Content-Type: application/json' "
        f'-d \'{{"message": "what should I do today?"}}\' {base}/v1/chat\n'
        f"API docs: {base}/docs\n"
        f"Web app: open {page} (a one-time sign-in link; `lumo web-link --user EMAIL` makes another)"
    )


async def prepare_checkpoints(url: str) -> None:
    """Create the checkpoint tables once, before the workers start (concurrent first set-ups race)."""
    from lumo.agent.checkpoint import open_checkpointer

    async with open_checkpointer(url):
        pass


def _warn_if_too_many_connections(url: str, workers: int, per_worker: int) -> None:
    """Every worker holds up to LUMO_DB_CONNECTIONS: say so up front when PostgreSQL cannot give them all."""
    from sqlalchemy import text

    from lumo.db.session import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            allowed = int(conn.scalar(text("SHOW max_connections")) or 0)
    finally:
        engine.dispose()
    if workers * per_worker > allowed:
        typer.echo(
            f"warning: {workers} workers may hold {workers * per_worker} PostgreSQL connections "
            f"(LUMO_DB_CONNECTIONS={per_worker} each) and the server allows {allowed}: lower LUMO_DB_CONNECTIONS",
            err=True,
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (more than 1 needs PostgreSQL).")] = 1,
    demo: Annotated[bool, typer.Option("--demo", help="Seed demo data if empty and print a curl with a demo token.")] = False,
    digest_at: Annotated[str | None, typer.Option("--digest-at", help="Send digests at this local time, HH:MM.")] = None,
) -> None:
    """Serve the HTTP API (and Slack endpoints)."""
    import asyncio

    import uvicorn
    from sqlalchemy.engine import make_url

    from lumo.db.migrate import upgrade

    config = settings()
    url = config.database_url
    if workers > 1 and make_url(url).get_backend_name() != "postgresql":
        raise InvalidInput("several workers need PostgreSQL: set LUMO_DATABASE_URL=postgresql+psycopg://...")
    if digest_at is not None:
        try:
            dt.time.fromisoformat(digest_at)
        except ValueError:
            raise InvalidInput(f"bad --digest-at {digest_at!r}: use HH:MM") from None
        if workers > 1:  # worker processes build their own settings from the environment they start with
            raise InvalidInput("--digest-at needs one worker: with several, set LUMO_DIGEST_AT=HH:MM in their environment")
        from lumo.jobs.queue import in_process

        if not in_process(config):
            raise InvalidInput("on PostgreSQL the digests are sent by the workers: `lumo worker --digest-at HH:MM`")
        config = config.model_copy(update={"digest_at": digest_at})
    if demo:
        _demo_setup(host, port)
    else:
        upgrade(url)
    asyncio.run(prepare_checkpoints(url))
    if workers > 1:
        _warn_if_too_many_connections(url, workers, config.db_connections)
    # Keep idle connections longer than a client or load balancer does (60 s is the usual idle timeout): a server
    # that closes first races the client's next request on that connection, which then gets a reset.
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "info",
        "proxy_headers": False,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }
    if workers == 1:
        from lumo.api.app import create_app

        uvicorn.run(create_app(config, serving=True), **options)  # this process's settings, --digest-at included
    else:
        from lumo.cli.workers import serve_workers

        serve_workers(options, workers)  # a listening socket per worker: the connections spread evenly
