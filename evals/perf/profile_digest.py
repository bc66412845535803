"""Profile single digests on a seeded database (bench_digest.py's, kept with --keep-db): time per digest and its
queries, then cProfile's cumulative top.

    .venv/bin/python evals/perf/profile_digest.py [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/lumo_bench_digest] \
        [--role rep|manager] [--count 20] [--top 35]

Each digest goes through `send_digest_of` as a worker's job does, to a mailer that drops the message. It deletes
the chosen users' digest runs of today first (so each digest is built and sent) and leaves them recorded as sent
(bench_digest.py clears them before each run). The first digest warms up and is not counted; the others are users
spread evenly over the role's ids.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import delete, event, select

from lumo.db.models import DigestRun, User
from lumo.db.session import make_engine, make_sessionmaker
from lumo.digest.run import send_digest_of


class DropMailer:
    def send(
        self,
        to: list[str],
        subject: str,
        text: str,
        html: str | None = None,
        cc: Any = (),
        message_id: Any = None,
        on_transmit: Any = None,
    ) -> None:
        if on_transmit is not None:
            on_transmit()

    def new_message_id(self) -> str:
        return "<profile@lumo.test>"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/lumo_bench_digest")
    parser.add_argument("--role", choices=("rep", "manager"), default="rep")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--top", type=int, default=35)
    args = parser.parse_args()
    engine = make_engine(args.pg_url)
    factory = make_sessionmaker(engine)
    queries: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        context._lumo_t0 = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        q = queries[" ".join(statement.split())]
        q[0] += 1
        q[1] += time.perf_counter() - context._lumo_t0

    with factory() as s:
        ids = list(s.scalars(select(User.id).where(User.role == args.role).order_by(User.id)))
    if len(ids) < 2:
        raise SystemExit(f"fewer than 2 users with role {args.role}: seed with bench_digest.py --keep-db first")
    step = max(len(ids) // (args.count + 1), 1)
    users = ids[::step][: args.count + 1]
    day, now = dt.date.today(), dt.datetime.now(dt.UTC)
    with factory() as s:
        s.execute(delete(DigestRun).where(DigestRun.user_id.in_(users), DigestRun.day == day))
        s.commit()
    send_digest_of(factory, DropMailer(), users[0], day, now=now)
    queries.clear()
    profile = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    profile.enable()
    for user_id in users[1:]:
        send_digest_of(factory, DropMailer(), user_id, day, now=now)
    profile.disable()
    n = len(users) - 1
    print(
        f"{args.role}, {n} digests: {(time.perf_counter() - wall) / n * 1000:.1f} ms wall, "
        f"{(time.process_time() - cpu) / n * 1000:.1f} ms CPU each; {sum(int(c) for c, _ in queries.values()) / n:.0f} queries"
    )
    for statement, (calls, seconds) in sorted(queries.items(), key=lambda kv: -kv[1][1])[:12]:
        print(f"{seconds / n * 1000:7.2f} ms/digest  x{int(calls):4d}  {statement[:200]}")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
