"""CRM read latency over a big book: one rep's priorities, stale findings and overdue search.

    python evals/perf/bench_crm.py [--db PATH|URL] [--invoices 1000000] [--accounts 100000] [--reps 500]
                                   [--runs 50] [--reseed] [--date YYYY-MM-DD]

Seeds the SQLite file first when it does not exist (or with --reseed), then times each metric
`--runs` times, cycling over several reps, and prints a markdown table of p50/p95 in ms on stdout.
A PostgreSQL URL works too: it is migrated and seeded when empty. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from lumo.crm.lifecycle import AsOf
from lumo.db.migrate import upgrade
from lumo.db.models import Invoice, User
from lumo.db.session import make_engine, make_sessionmaker
from lumo.demo.seed import DEMO_REP_EMAIL, SeedSummary, database_is_empty, seed_demo

SAMPLED_REPS = 10


# One small function per metric: each returns how many rows it produced (a sanity check).


def run_priorities(session: Session, email: str, today: dt.date) -> int:
    from lumo.crm.priorities import compute_priorities
    from lumo.crm.scope import scope_for_email

    scope = scope_for_email(session, email)
    return len(compute_priorities(session, scope, AsOf(today, scope.tz)))


def run_stale(session: Session, email: str, today: dt.date) -> int:
    from lumo.crm.invoices import actionable_rows
    from lumo.crm.scope import scope_for_email
    from lumo.crm.stale import stale_findings

    scope = scope_for_email(session, email)
    return len(stale_findings(actionable_rows(session, scope), AsOf(today, scope.tz)))


def run_overdue_search(session: Session, email: str, today: dt.date) -> int:
    from lumo.crm.invoices import InvoiceFilter, search_invoices
    from lumo.crm.scope import scope_for_email

    scope = scope_for_email(session, email)
    return search_invoices(session, scope, InvoiceFilter(overdue=True), AsOf(today, scope.tz)).total


METRICS: dict[str, Callable[[Session, str, dt.date], int]] = {
    "priorities": run_priorities,
    "stale findings": run_stale,
    "overdue search": run_overdue_search,
}


@dataclass(frozen=True)
class Result:
    metric: str
    timings_ms: list[float]
    rows: list[int]

    def percentile(self, p: int) -> float:
        if len(self.timings_ms) == 1:
            return self.timings_ms[0]
        return statistics.quantiles(self.timings_ms, n=100, method="inclusive")[p - 1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="/tmp/bench.db", help="SQLite file path, or a database URL")
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--runs", type=int, default=50, help="timed calls per metric")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reseed", action="store_true", help="delete the SQLite file and seed again")
    parser.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        help="the day to seed and ask for (default: today when seeding, else the day after the latest activity in the database)",
    )
    return parser.parse_args(argv)


def database_url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{Path(db).resolve()}"


def sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def seed_with_progress(engine: Engine, args: argparse.Namespace, today: dt.date) -> SeedSummary:
    columns = (TextColumn("seeding"), BarColumn(), MofNCompleteColumn(), TextColumn("invoices"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("seed", total=args.invoices)
        return seed_demo(
            engine,
            invoices=args.invoices,
            accounts=args.accounts,
            reps=args.reps,
            seed=args.seed,
            today=today,
            progress=lambda n: progress.update(task, completed=n),
        )


def seed_day(engine: Engine) -> dt.date:
    """The seed's `today`: every seeded moment is before it, and some fall on the day before."""
    with Session(engine) as session:
        latest = session.scalar(select(func.max(Invoice.last_activity_at)))
    if latest is None:
        return dt.date.today()
    if isinstance(latest, str):  # an aggregate skips the column type on SQLite
        latest = dt.datetime.fromisoformat(latest)
    return latest.date() + dt.timedelta(days=1)


def sampled_reps(engine: Engine, count: int = SAMPLED_REPS) -> list[str]:
    """The demo rep and reps spread evenly over the rest, so no single book decides the numbers."""
    with Session(engine) as session:
        emails = list(session.scalars(select(User.email).where(User.role == "rep").order_by(User.id)))
    others = [e for e in emails if e != DEMO_REP_EMAIL]
    step = max(1, len(others) // max(1, count - 1))
    return [DEMO_REP_EMAIL, *others[::step][: count - 1]]


def time_metrics(engine: Engine, reps: list[str], today: dt.date, runs: int) -> list[Result]:
    factory = make_sessionmaker(engine)
    results = []
    for name, fn in METRICS.items():
        with factory() as session:  # warm-up: imports, statement caches, the page cache
            fn(session, reps[0], today)
        timings, rows = [], []
        for i in range(runs):
            with factory() as session:
                started = time.perf_counter()
                rows.append(fn(session, reps[i % len(reps)], today))
                timings.append((time.perf_counter() - started) * 1000)
        results.append(Result(name, timings, rows))
    return results


def markdown(results: list[Result], reps: int) -> str:
    lines = [
        "| metric | runs | reps | p50 ms | p95 ms | max ms | rows (median) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.metric} | {len(r.timings_ms)} | {reps} | {r.percentile(50):.1f} | {r.percentile(95):.1f} "
            f"| {max(r.timings_ms):.1f} | {statistics.median(r.rows):.0f} |"
        )
    return "\n".join(lines)


def size_text(path: Path | None) -> str:
    if path is None or not path.exists():
        return "n/a"
    return f"{path.stat().st_size / 1024**2:,.0f} MiB"


def prepare(args: argparse.Namespace) -> tuple[Engine, dt.date, str]:
    """Migrate and seed when needed; returns the engine, the day to ask for, and a line about the seed."""
    url = database_url(args.db)
    path = sqlite_path(url)
    if args.reseed:
        if path is None:
            raise SystemExit("--reseed works on SQLite files only: empty the database yourself")
        remove_sqlite(path)
    upgrade(url)
    engine = make_engine(url)
    if not database_is_empty(engine):
        return engine, args.date or seed_day(engine), f"seed: reused {args.db} ({size_text(path)})"
    today = args.date or dt.date.today()
    started = time.perf_counter()
    summary = seed_with_progress(engine, args, today)
    seconds = time.perf_counter() - started
    line = (
        f"seed: {summary.invoices:,} invoices, {summary.accounts:,} accounts, {args.reps} reps, "
        f"{summary.activities:,} activities, {summary.payments:,} payments in {seconds:.1f} s "
        f"({size_text(path)})"
    )
    return engine, today, line


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engine, today, seed_line = prepare(args)
    print(seed_line, flush=True)
    reps = sampled_reps(engine)
    results = time_metrics(engine, reps, today, args.runs)
    print(f"\nas of {today.isoformat()}, {args.runs} runs per metric over {len(reps)} reps\n")
    print(markdown(results, len(reps)))
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
