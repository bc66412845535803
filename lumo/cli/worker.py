"""`lumo worker`: run the jobs (digests, approved emails, Slack answers) of the PostgreSQL queue."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from lumo.cli.app import app, settings
from lumo.crm.errors import InvalidInput


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs this worker runs at once.")] = 4,
    digest_at: Annotated[str | None, typer.Option("--digest-at", help="Send digests at this local time, HH:MM.")] = None,
    name: Annotated[str, typer.Option(help="The worker's name in the logs.")] = "worker",
) -> None:
    """Run jobs until stopped (SIGINT/SIGTERM: running jobs finish first). Start as many as you like, on any host."""
    import asyncio
    import logging

    from sqlalchemy.engine import make_url

    from lumo.jobs.queue import run_worker

    config = settings()
    if make_url(config.database_url).get_backend_name() != "postgresql":
        raise InvalidInput(
            "a worker needs PostgreSQL (LUMO_DATABASE_URL=postgresql+psycopg://...); on SQLite, `lumo serve` runs the jobs"
        )
    if digest_at is not None:
        try:
            dt.time.fromisoformat(digest_at)
        except ValueError:
            raise InvalidInput(f"bad --digest-at {digest_at!r}: use HH:MM") from None
        config = config.model_copy(update={"digest_at": digest_at})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_worker(config, None, concurrency=concurrency, name=name))
