"""The cash forecast over a seeded book: one rep's, a manager's team and the whole workspace (--all).

    python evals/perf/bench_forecast.py [--invoices 20000 100000] [--runs 5] [--dir /tmp] [--date YYYY-MM-DD]
                                        [--db PATH] [--profile]

Each `--invoices` size is seeded (lumo's demo seed, seed 7, one account per ten invoices, one rep per 1,000
invoices) into `<dir>/lumo_bench_forecast_<n>.db` the first time, then reused. `--db PATH` times an existing
SQLite file instead (opened read-only, e.g. the 1,000,000-invoice book of bench_crm.py), `--date` then
defaults to the day after its latest activity. Each call is what `lumo forecast [--team|--all] --json` does:
the caller's scope, `cash_forecast` with 13 weeks, the JSON text. It prints the open invoices in scope, the
p50 and max wall time in ms over `--runs` calls (after one warm-up) and the CPU time's p50 (steadier on a busy
machine). `--profile` prints cProfile's top functions for one --all call instead. Progress goes to stderr;
nothing here is a test.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime as dt
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from lumo.crm.forecast import cash_forecast
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import Scope, scope_for_email
from lumo.db.migrate import upgrade
from lumo.db.models import Invoice, User
from lumo.db.seed import ADMIN_EMAIL, DEMO_REP_EMAIL, database_is_empty, seed_demo
from lumo.db.session import make_engine, make_sessionmaker

SEED_DAY = dt.date(2026, 11, 25)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--runs", type=int, default=5, help="timed calls per scope")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--db", type=Path, help="an existing SQLite file (read-only) instead of seeding")
    parser.add_argument("--date", type=dt.date.fromisoformat, help=f"the day (default {SEED_DAY} when seeding)")
    parser.add_argument("--scopes", nargs="+", default=["rep", "team", "all"], choices=["rep", "team", "all"])
    parser.add_argument("--profile", action="store_true", help="cProfile one --all call (the first size)")
    return parser.parse_args(argv)


def seeded(path: Path, invoices: int, today: dt.date) -> Engine:
    url = f"sqlite:///{path.resolve()}"
    upgrade(url)
    engine = make_engine(url)
    if database_is_empty(engine):
        started = time.perf_counter()
        seed_demo(engine, invoices=invoices, reps=max(1, invoices // 1000), seed=7, today=today)
        print(f"seeded {path}: {invoices:,} invoices in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return engine


def read_only(path: Path) -> Engine:
    if not path.exists():
        raise SystemExit(f"no such file: {path}")
    return make_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")


def latest_day(engine: Engine) -> dt.date:
    with Session(engine) as session:
        latest = session.scalar(select(func.max(Invoice.last_activity_at)))
    if isinstance(latest, str):  # an aggregate skips the column type on SQLite
        latest = dt.datetime.fromisoformat(latest)
    return latest.date() + dt.timedelta(days=1) if latest is not None else SEED_DAY


def scopes(session: Session) -> dict[str, Scope]:
    """As `lumo forecast` narrows them: the demo rep's own book, its manager's team, the admin's workspace."""
    rep = scope_for_email(session, DEMO_REP_EMAIL)
    manager_id = session.scalar(select(User.manager_id).where(User.email == DEMO_REP_EMAIL))
    manager_email = session.scalar(select(User.email).where(User.id == manager_id))
    assert manager_email is not None
    return {
        "rep": dataclasses.replace(rep, owner_ids=frozenset({rep.user_id})),
        "team": scope_for_email(session, manager_email),
        "all": scope_for_email(session, ADMIN_EMAIL),
    }


def one_call(session: Session, scope: Scope, today: dt.date) -> tuple[float, float]:
    """Wall and CPU ms of what `lumo forecast --json` does once the scope is known: the forecast and its JSON."""
    started, cpu = time.perf_counter(), time.process_time()
    result = cash_forecast(session, scope, AsOf(today, scope.tz))
    json.dumps(result, indent=2, ensure_ascii=False)
    return (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000


def open_count(session: Session, scope: Scope) -> int:
    from lumo.crm.invoices import fetch_rows, rows_query
    from lumo.crm.lifecycle import is_open

    return sum(1 for r in fetch_rows(session, rows_query(scope)) if is_open(r))


def bench(engine: Engine, label: str, today: dt.date, args: argparse.Namespace) -> list[str]:
    factory = make_sessionmaker(engine)
    lines = []
    with factory() as session:
        by_name = scopes(session)
        counts = {name: open_count(session, by_name[name]) for name in args.scopes}
    for name in args.scopes:
        with factory() as session:
            one_call(session, by_name[name], today)  # warm-up: imports, statement caches, the page cache
        timings, cpu = [], []
        for _ in range(args.runs):
            with factory() as session:
                wall_ms, cpu_ms = one_call(session, by_name[name], today)
            timings.append(wall_ms)
            cpu.append(cpu_ms)
        lines.append(
            f"| {label} | {name} | {counts[name]:,} | {len(timings)} | {statistics.median(timings):,.1f} "
            f"| {max(timings):,.1f} | {statistics.median(cpu):,.1f} |"
        )
        print(lines[-1], file=sys.stderr)
    return lines


def profile(engine: Engine, today: dt.date) -> None:
    factory = make_sessionmaker(engine)
    with factory() as session:
        scope = scopes(session)["all"]
        profiler = cProfile.Profile()
        profiler.enable()
        cash_forecast(session, scope, AsOf(today, scope.tz))
        profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    books: list[tuple[str, Engine, dt.date]] = []
    if args.db is not None:
        engine = read_only(args.db)
        books.append((args.db.name, engine, args.date or latest_day(engine)))
    else:
        today = args.date or SEED_DAY
        for n in args.invoices:
            books.append((f"{n:,} invoices", seeded(args.dir / f"lumo_bench_forecast_{n}.db", n, today), today))
    if args.profile:
        profile(books[0][1], books[0][2])
        return 0
    lines = [
        "| book | scope | open invoices | runs | p50 ms | max ms | CPU p50 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, engine, today in books:
        lines.extend(bench(engine, label, today, args))
        engine.dispose()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"
    print(f"as of {', '.join(sorted({b[2].isoformat() for b in books}))}, {args.runs} runs per scope, load {load}\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
