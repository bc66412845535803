"""The morning digest for many reps on the PostgreSQL job queue, with 1, 2 and 4 `lumo worker` processes.

    .venv/bin/python evals/perf/bench_digest.py [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] \
        [--reps 50000] [--invoices 100000] [--workers 1,2,4] [--concurrency 4] [--keep-db] [--enqueue-only]

It creates a database (`lumo_bench_digest`), migrates it and seeds the demo generator's book with `--reps` reps
(and their managers, one per 8 reps) over `--invoices` invoices, one account per rep; it starts a local SMTP
sink (aiosmtpd, counting). For each worker count it clears the digest records and the queue, starts that many
`lumo worker` processes, waits until they are registered, then times one digest tick as the queue runs it:
`due_digests` (every user is due: digest hour 00:00) and one `send_digest` job per user (batched inserts under
the (user, day) queueing lock), until every digest is recorded sent. It prints a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from lumo.config import Settings
from lumo.db.migrate import upgrade
from lumo.db.models import DigestRun
from lumo.db.session import make_engine, make_sessionmaker
from lumo.demo.seed import seed_demo
from lumo.digest.run import due_digests
from lumo.jobs.queue import Jobs, build_app, postgres_connector

DB_NAME = "lumo_bench_digest"
TIMEOUT_S = 3600
PROGRESS_S = 60


class Sink:
    """An SMTP server that accepts and counts."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--reps", type=int, default=50_000)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs per worker at once")
    parser.add_argument("--keep-db", action="store_true", help="reuse the seeded database if it exists, keep it after")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop each run after this long (a sampled rate)")
    parser.add_argument("--enqueue-only", action="store_true", help="time the digest tick alone (no workers, nothing sent)")
    return parser.parse_args(argv)


def prepare(admin_url: str, reps: int, invoices: int, keep: bool) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    url = make_url(admin_url).set(database=DB_NAME).render_as_string(hide_password=False)
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DB_NAME}).scalar()
        if exists and keep:
            admin.dispose()
            print(f"reusing {DB_NAME}", file=sys.stderr)
            return url
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    upgrade(url)
    engine = make_engine(url)
    started = time.perf_counter()
    summary = seed_demo(engine, reps=reps, invoices=invoices, accounts=reps, today=dt.date.today())
    engine.dispose()
    print(f"seeded {summary} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return url


def drop(admin_url: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    admin.dispose()


def reset(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE digest_runs"))
        conn.execute(
            text("TRUNCATE procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs, procrastinate_workers")
        )
    engine.dispose()


def lumo_command() -> list[str]:
    script = Path(sys.executable).with_name("lumo")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from lumo.cli import main; main()"]


def count(url: str, query: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


async def enqueue(url: str) -> int:
    """One digest tick, as the periodic job runs it: who is due, then one job per user."""
    engine = make_engine(url)
    session_factory = make_sessionmaker(engine)
    settings = Settings(database_url=url)
    app = build_app(postgres_connector(url, max_size=2), settings, periodic=False)
    try:
        async with app.open_async():
            due = await asyncio.to_thread(due_digests, session_factory, dt.datetime.now(dt.UTC), dt.time(0, 0))
            return await Jobs(app, session_factory, mail=True).defer_digests(due)
    finally:
        engine.dispose()


def run(url: str, smtp_url: str, sink: Sink, workers: int, concurrency: int, limit: float) -> dict[str, Any]:
    reset(url)
    sink.count = 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMO_", "OPENAI_"))}
    env.update(LUMO_DATABASE_URL=url, LUMO_SMTP_URL=smtp_url, LUMO_LLM="offline")
    logs = [Path(f"/tmp/lumo_bench_digest_w{workers}_{i}.log") for i in range(workers)]
    procs = []
    for i, log in enumerate(logs):
        with log.open("wb") as out:
            args = ["worker", "--concurrency", str(concurrency), "--name", f"bench{i}"]
            procs.append(subprocess.Popen([*lumo_command(), *args], env=env, stdout=out, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 120
        while count(url, "SELECT count(*) FROM procrastinate_workers") < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"the workers did not start: see {logs}")
            time.sleep(0.2)
        started = time.perf_counter()
        jobs = asyncio.run(enqueue(url))
        enqueued = time.perf_counter() - started
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            reported = started
            while True:
                done = session.scalar(select(func.count()).select_from(DigestRun).where(DigestRun.status != "pending")) or 0
                session.rollback()
                now = time.perf_counter()
                if done >= jobs or now - started > limit:
                    break
                if now - reported >= PROGRESS_S:  # a long run can be read (or cut short) as it goes
                    reported = now
                    elapsed = now - started
                    print(
                        f"{workers} workers: {done:,} of {jobs:,} done in {elapsed:.0f} s ({done / elapsed:.1f} jobs/s), "
                        f"load {os.getloadavg()[0]:.2f}",
                        file=sys.stderr,
                        flush=True,
                    )
                time.sleep(0.5)
            total = time.perf_counter() - started
            failed = session.scalar(select(func.count()).select_from(DigestRun).where(DigestRun.status == "failed")) or 0
        engine.dispose()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return {
        "workers": workers,
        "jobs": jobs,
        "enqueue_s": enqueued,
        "total_s": total,
        "done": done,
        "sent": sink.count,
        "failed": failed,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = prepare(args.pg_url, args.reps, args.invoices, args.keep_db)
    if args.enqueue_only:
        reset(url)
        started = time.perf_counter()
        jobs = asyncio.run(enqueue(url))
        seconds = time.perf_counter() - started
        again = time.perf_counter()
        twice = asyncio.run(enqueue(url))  # a second host's tick at once: every job is waiting already
        print(
            f"Digest tick for {args.reps:,} reps (+ managers): {jobs:,} jobs queued in {seconds:.1f} s "
            f"({jobs / seconds:,.0f} jobs/s); a second tick right after queued {twice} in {time.perf_counter() - again:.1f} s"
        )
        if not args.keep_db:
            drop(args.pg_url)
        return 0
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    rows = []
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            limit = args.max_seconds or TIMEOUT_S
            row = run(url, f"smtp://127.0.0.1:{port}", sink, workers, args.concurrency, limit)
            print(f"{row}", file=sys.stderr)
            rows.append(row)
    finally:
        controller.stop()
        if not args.keep_db:
            drop(args.pg_url)
    print(f"Digest for {args.reps:,} reps (+ managers) over {args.invoices:,} invoices, worker concurrency {args.concurrency}\n")
    print("| workers | digests queued | enqueue (tick) | done | time | jobs/s | all done in | sent by SMTP | failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rate = r["done"] / r["total_s"]  # from the start of the tick: its inserts delay the first jobs a little
        finished = r["done"] >= r["jobs"]
        total = f"{r['total_s']:.0f} s" if finished else f"~{r['jobs'] / rate / 60:.0f} min (projected)"
        print(
            f"| {r['workers']} | {r['jobs']:,} | {r['enqueue_s']:.1f} s | {r['done']:,} | {r['total_s']:.0f} s | "
            f"{rate:.1f} | {total} | {r['sent']:,} | {r['failed']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
