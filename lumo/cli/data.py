"""Commands that set up and move data: db upgrade, seed, import, export."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from lumo.cli.app import DateOpt, app, open_session, settings
from lumo.crm.errors import InvalidInput
from lumo.crm.lifecycle import parse_day

# Alembic, the seed and the exchange are imported in their commands: `lumo --help` starts fast.

db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    from lumo.db.migrate import upgrade

    upgrade(settings().database_url)
    typer.echo("database is up to date")


@app.command()
def seed(
    demo: Annotated[bool, typer.Option("--demo", help="Seed realistic demo data.")] = False,
    invoices: Annotated[int, typer.Option(help="Number of invoices.")] = 2000,
    reps: Annotated[int, typer.Option(help="Number of reps.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same data.")] = 7,
    date: DateOpt = None,
    if_empty: Annotated[bool, typer.Option("--if-empty", help="Do nothing when the database has data.")] = False,
) -> None:
    """Fill the database with demo data (deterministic per seed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lumo.db.migrate import upgrade
    from lumo.db.session import make_engine
    from lumo.demo.seed import DEMO_REP_EMAIL as DEMO_EMAIL
    from lumo.demo.seed import database_is_empty, seed_demo

    if not demo:
        raise InvalidInput("only demo data can be seeded: pass --demo")
    if invoices < 1 or reps < 1:
        raise InvalidInput("--invoices and --reps must be at least 1")
    url = settings().database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        if not database_is_empty(engine):
            if if_empty:
                typer.echo(f"database already has data; demo login: {DEMO_EMAIL}")
                return
            raise InvalidInput("the database already has data: seed into an empty database (or use --if-empty)")
        today = parse_day(date) if date else dt.date.today()
        columns = (TextColumn("seeding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task("invoices", total=invoices)
            summary = seed_demo(
                engine, invoices=invoices, reps=reps, seed=seed, today=today, progress=lambda n: bar.update(task, completed=n)
            )
    finally:
        engine.dispose()
    typer.echo(
        f"seeded {summary.invoices:,} invoices, {summary.accounts:,} accounts and {summary.users:,} users "
        f"in {summary.seconds:.1f} s; demo login: {DEMO_EMAIL}"
    )


@app.command("import")
def import_(file: Annotated[Path, typer.Argument(help="Workspace snapshot (JSON, ARCHITECTURE.md section 5).")]) -> None:
    """Load a workspace snapshot; writes nothing if any record is bad."""
    from lumo.crm.exchange import import_snapshot, load_file
    from lumo.crm.provider_events import relink
    from lumo.db.migrate import upgrade

    data = load_file(file)
    upgrade(settings().database_url)
    with open_session() as session:
        summary = import_snapshot(session, data)
        # Stripe events that waited for an invoice this snapshot brings are applied with it, in one commit.
        linked = relink(session, now=dt.datetime.now(dt.UTC))
        session.commit()
    typer.echo(f"imported {file}: {summary}")
    if linked:
        ids = ", ".join(r.event_id for r in linked)
        typer.echo(f"applied {len(linked)} Stripe event(s) that waited for these invoices: {ids}")


@app.command()
def export(file: Annotated[Path, typer.Argument(help="Where to write the snapshot (JSON).")]) -> None:
    """Write the whole workspace as a snapshot that `lumo import` reads back."""
    from lumo.crm.exchange import export_snapshot

    with open_session() as session:
        data = export_snapshot(session)
    try:
        file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise InvalidInput(f"cannot write {file}: {exc.strerror}") from None
    typer.echo(f"exported to {file}")
