"""The prompt size of "what should I do today?" for real-model turns, without LangChain (bench_agent.py needs it).

    .venv/bin/python evals/perf/prompt_size.py [--invoices 20000] [--reps 20] [--port 8471]

Seeds a demo book in a temporary SQLite file (about 1,000 invoices a rep by default), starts the stand-in model
(standin.py: prompt_tokens = len(request JSON) / 4) and asks the question for five reps; prints the estimated
prompt tokens of each model call. Target (ARCHITECTURE.md section 7): under 3,000 whatever the size of the book.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TODAY = dt.date(2026, 12, 3)
NOW = dt.datetime(2026, 12, 3, 15, tzinfo=dt.UTC)


async def measure(url: str, port: int, invoices: int, reps: int) -> list[tuple[str, list[int]]]:
    from sqlalchemy import select

    from lumo.compose import open_lumo
    from lumo.crm.lifecycle import AsOf
    from lumo.crm.scope import scope_for_email
    from lumo.db.migrate import upgrade
    from lumo.db.models import User
    from lumo.db.session import make_engine, make_sessionmaker
    from lumo.demo.seed import seed_demo

    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, invoices=invoices, reps=reps, seed=7, today=TODAY)
    with make_sessionmaker(engine)() as session:
        emails = list(session.scalars(select(User.email).where(User.role == "rep").order_by(User.email).limit(5)))
    base = f"http://127.0.0.1:{port}"
    env = {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": f"{base}/v1", "LUMO_MODEL": "standin"}
    out = []
    async with open_lumo(url, env) as lumo, httpx.AsyncClient(base_url=base, trust_env=False) as stats:
        for email in emails:
            with lumo.session_factory() as session:
                scope = scope_for_email(session, email)
            before = (await stats.get("/_stats", params={"since": 1 << 40})).json()["total"]
            await lumo.ask(scope, "what should I do today?", as_of=AsOf(TODAY, scope.tz), now=NOW)
            records = (await stats.get("/_stats", params={"since": before})).json()["records"]
            out.append((email, [r["prompt_tokens"] for r in records]))
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--port", type=int, default=8471)
    args = parser.parse_args()
    standin = Path(__file__).with_name("standin.py")
    server = subprocess.Popen([sys.executable, str(standin), "--port", str(args.port), "--delay-ms", "0"])
    try:
        time.sleep(2)
        with tempfile.TemporaryDirectory() as tmp:
            rows = asyncio.run(measure(f"sqlite:///{tmp}/lumo.db", args.port, args.invoices, args.reps))
    finally:
        server.terminate()
    for email, tokens in rows:
        print(f"{email}: prompt tokens per model call {tokens}")
    print(f"max {max(t for _, ts in rows for t in ts)} (target: under 3,000)")


if __name__ == "__main__":
    main()
