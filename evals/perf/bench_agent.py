"""Agent cost per chat turn and under load: Lumo against LangGraph's prebuilt agent, side by side.

    python evals/perf/bench_agent.py [--turns 200] [--concurrency 200] [--delay-ms 300] [--workers 2]
                                     [--invoices 20000] [--reps 20] [--pg-url URL] [--skip-load] [--keep-db]

Every turn asks "What should I do today?". Both agents talk to the same local OpenAI-compatible
stand-in (evals/perf/standin.py, a separate process), so no real model and no network are involved.

1. CPU per turn, in this process: `--turns` sequential turns through Lumo (`Lumo.ask` with the real
   `ModelClient` pointed at the stand-in answering instantly, over a seeded SQLite file in /tmp), each
   followed by one turn of the prebuilt agent (`langchain.agents.create_agent` + `ChatOpenAI` + one tool
   returning the same priorities JSON). `time.process_time()` counts this process only (every thread,
   SQLite included; not the stand-in). Also: two raw Chat Completions calls, the floor of a ReAct turn.
2. Prompt size: the stand-in's estimate (request JSON length / 4) of what each agent sent per turn.
3. Load: `--turns` chats, `--concurrency` at a time, with a model that takes `--delay-ms`: Lumo served by
   `lumo serve --workers N` on PostgreSQL (a database created for the run and dropped after), driven
   over HTTP by httpx from this process; and the prebuilt agent behind a minimal FastAPI app with the
   same uvicorn settings and workers, plus both agents in-process on one event loop (each first for 10
   chats one at a time: the unloaded latency). A server counts as up once all its workers have started;
   CPU per turn is split from /proc into server, PostgreSQL, stand-in and this process.

See evals/perf/README.md for what each figure means. Prints markdown tables on stdout (progress on
stderr) and exits 0: it is a report, not a gate.
Every server listens on 127.0.0.1 and every process started here is stopped before exit.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from pydantic import BaseModel
from sqlalchemy import select

try:  # the tool's annotation is read at runtime, so this import is module-level
    from langchain.tools import ToolRuntime
except ImportError:  # pragma: no cover
    raise SystemExit("the prebuilt agent needs the bench extras: pip install -e '.[dev,bench]'") from None

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "standin.py"
PROMPT = "What should I do today?"
SQLITE_PATH = Path("/tmp/lumo_bench_agent.db")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/lumo_bench"
LOG_DIR = Path("/tmp/lumo_bench_agent_logs")
MODEL_NAME = "standin"
API_KEY = "bench-not-a-key"
WARMUP_TURNS = 10
LOAD_WARMUP = 20
SEQUENTIAL_TURNS = 10  # chats one at a time with the slow model: the latency of a turn, unloaded
MAX_TURNS = 2000  # bounded request counts, whatever the flags say
MAX_CONCURRENCY = 1000
TARGET_CPU_P50_MS = 8.0
TARGET_PROMPT_TOKENS = 3000

os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


# --- processes: started in their own session, stopped by their process group ----------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """The servers this run starts; `stop_all` ends each one's process group (its uvicorn workers too)."""

    def __init__(self) -> None:
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        LOG_DIR.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = open(LOG_DIR / f"{name}.log", "wb")  # noqa: SIM115  (the child writes it; closed with the process)
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=HERE.parent.parent,
        )
        out.close()
        self.running[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # its own group: start_new_session made pgid == pid
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = LOG_DIR / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def wait_ready(procs: Processes, name: str, url: str, timeout_s: float = 90) -> None:
    proc = procs.running[name]
    deadline = time.monotonic() + timeout_s
    with httpx.Client(trust_env=False, timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.log_tail(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.2)
    raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s:\n{procs.log_tail(name)}")


def start_server(
    procs: Processes, name: str, cmd: list[str], env: dict[str, str], ready_url: str, workers: int, notes: list[str]
) -> None:
    """Start a uvicorn server and wait until every worker has started: a worker that fails at startup is
    reported in the notes and the server is started once more (the failure may be a first-start race)."""
    for attempt in (1, 2):
        procs.start(name, cmd, env)
        try:
            wait_ready(procs, name, ready_url)
            failure = wait_workers(procs, name, workers)
        except RuntimeError as exc:  # the server exited before it answered
            failure = wait_workers(procs, name, workers, timeout_s=1) or str(exc).splitlines()[0]
        if failure is None:
            return
        notes.append(
            f"{name}, attempt {attempt}: a worker failed at startup ({failure}); see "
            f"{LOG_DIR / (name + '.log')}" + ("; started again" if attempt == 1 else "")
        )
        log(f"{name}: a worker failed at startup: {failure}")
        if attempt == 1:
            (LOG_DIR / f"{name}.log").replace(LOG_DIR / f"{name}.failed-start.log")
        procs.stop(name)
    raise RuntimeError(f"{name}: workers keep failing at startup")


EXCEPTION_LINE = re.compile(r"^([A-Za-z_]\w*\.)*[A-Z]\w*: ")  # "psycopg.errors.UniqueViolation: ..."
LOG_LEVELS = ("INFO:", "ERROR:", "WARNING:", "DEBUG:", "CRITICAL:", "DETAIL:", "HINT:")


def wait_workers(procs: Processes, name: str, workers: int, timeout_s: float = 60) -> str | None:
    """None once `workers` workers logged a complete startup; else the error that stopped one."""
    path = LOG_DIR / f"{name}.log"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if "Application startup failed" in text or procs.running[name].poll() is not None:
            errors = [ln for ln in text.splitlines() if EXCEPTION_LINE.match(ln) and not ln.startswith(LOG_LEVELS)]
            return errors[-1] if errors else "startup failed"
        if text.count("Application startup complete.") >= workers:
            return None
        time.sleep(0.2)
    return f"fewer than {workers} workers started in {timeout_s:.0f} s"


def start_standin(procs: Processes, name: str, delay_ms: float) -> str:
    port = free_port()
    procs.start(name, [sys.executable, str(STANDIN), "--port", str(port), "--delay-ms", str(delay_ms)])
    base = f"http://127.0.0.1:{port}"
    wait_ready(procs, name, f"{base}/healthz")
    return base


class StandinStats:
    """The stand-in's request records: what each turn sent (read outside the timed windows)."""

    def __init__(self, base: str) -> None:
        self.client = httpx.AsyncClient(base_url=base, trust_env=False, timeout=10)

    async def total(self) -> int:
        return (await self.client.get("/_stats", params={"since": 1 << 40})).json()["total"]

    async def since(self, index: int) -> list[dict[str, Any]]:
        return (await self.client.get("/_stats", params={"since": index})).json()["records"]

    async def aclose(self) -> None:
        await self.client.aclose()


# --- databases ----------------------------------------------------------------------------------------


def remove_sqlite(path: Path) -> None:
    for p in (path, path.with_name(f"{path.stem}.checkpoints{path.suffix}")):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{p}{suffix}").unlink(missing_ok=True)


def seed(url: str, invoices: int, reps: int, today: dt.date) -> str:
    from lumo.db.migrate import upgrade
    from lumo.db.session import make_engine
    from lumo.demo.seed import seed_demo

    upgrade(url)
    engine = make_engine(url)
    try:
        s = seed_demo(engine, invoices=invoices, reps=reps, today=today)
    finally:
        engine.dispose()
    return f"{s.invoices:,} invoices, {s.accounts:,} accounts, {reps} reps in {s.seconds:.1f} s"


def pg_admin(url: str) -> tuple[str, str]:
    """(conninfo of the server's `postgres` database, the bench database's name)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() != "postgresql" or not u.database:
        raise SystemExit(f"--pg-url must be a PostgreSQL URL with a database name, not {url!r}")
    if u.host not in (None, "127.0.0.1", "localhost", "::1"):
        raise SystemExit("--pg-url must point at a loopback server")
    admin = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    return admin, u.database


def pg_create(url: str) -> None:
    import psycopg

    admin, name = pg_admin(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def pg_drop(url: str) -> None:
    import psycopg

    admin, name = pg_admin(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rep_emails(url: str) -> list[str]:
    from lumo.db.models import User
    from lumo.db.session import make_engine, make_sessionmaker

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(User.email).where(User.role == "rep").order_by(User.id)))
    finally:
        engine.dispose()


def mint_tokens(url: str, emails: list[str]) -> dict[str, str]:
    from lumo.auth import create_token
    from lumo.db.session import make_engine, make_sessionmaker

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            tokens = {e: create_token(session, e, dt.datetime.now(dt.UTC), "bench") for e in emails}
            session.commit()
        return tokens
    finally:
        engine.dispose()


# --- the prebuilt agent -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchContext:
    """Per-run context of the prebuilt agent: whose priorities, for which day (like Lumo's scope)."""

    scope: Any
    as_of: Any


def priorities_json(session_factory: Any, scope: Any, as_of: Any) -> str:
    """The same JSON as Lumo's `todays_priorities` tool result: compact, default limit, no scores."""
    from lumo.crm.priorities import compute_priorities
    from tools.read import PrioritiesArgs

    with session_factory() as session:
        items = compute_priorities(session, scope, as_of, limit=PrioritiesArgs().limit)
    shown = [{k: v for k, v in i.as_json().items() if k != "score"} for i in items]
    content = {"date": as_of.today.isoformat(), "items": shown}
    return json.dumps(content, default=str, separators=(",", ":"), ensure_ascii=False)


def system_prompt(scope: Any, today: dt.date) -> str:
    """Lumo's own system prompt, so the prompt sizes compare the architectures, not the instructions."""
    from lumo.templates import render

    return render("system.md.j2", name=scope.name, role=scope.role, today=today.isoformat(), timezone=scope.timezone)


def make_prebuilt(model_base: str, session_factory: Any, prompt: str, checkpointer: Any = None) -> Any:
    from langchain.agents import create_agent
    from langchain.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def todays_priorities(runtime: ToolRuntime[BenchContext]) -> str:
        """Today's ranked work for the rep, each item with its reasons and suggested next action."""
        return priorities_json(session_factory, runtime.context.scope, runtime.context.as_of)

    # The SDK's default retries, as Lumo's ModelClient has its own: a transient error is not a failed turn.
    model = ChatOpenAI(model=MODEL_NAME, base_url=f"{model_base}/v1", api_key=API_KEY, timeout=60)
    return create_agent(model, [todays_priorities], system_prompt=prompt, context_schema=BenchContext, checkpointer=checkpointer)


class PrebuiltChat(BaseModel):
    """The prebuilt app's request (module-level: FastAPI resolves the annotation at runtime)."""

    message: str
    email: str
    date: str


def prebuilt_app() -> Any:
    """The prebuilt agent behind a minimal FastAPI app (uvicorn factory; configured by BENCH_* variables).

    POST /chat {"message", "email", "date"} -> {"reply", "model_calls"}. No auth; the rep's scope is one
    query per request, as Lumo's token lookup is.
    """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    from lumo.crm.lifecycle import AsOf
    from lumo.crm.scope import scope_for_email
    from lumo.db.session import make_engine, make_sessionmaker

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        engine = make_engine(os.environ["BENCH_DATABASE_URL"])
        factory = make_sessionmaker(engine)
        with factory() as session:
            first = scope_for_email(session, os.environ["BENCH_PROMPT_EMAIL"])
        today = dt.date.fromisoformat(os.environ["BENCH_DATE"])
        state["factory"] = factory
        async with contextlib.AsyncExitStack() as stack:
            saver = None
            if os.environ.get("BENCH_CHECKPOINTER") == "postgres":  # the same saver and pool as Lumo's
                from lumo.agent.checkpoint import open_checkpointer

                saver = await stack.enter_async_context(open_checkpointer(os.environ["BENCH_DATABASE_URL"]))
            state["checkpointed"] = saver is not None
            state["agent"] = make_prebuilt(os.environ["BENCH_MODEL_URL"], factory, system_prompt(first, today), saver)
            if os.environ.get("BENCH_SETTLE_GC"):  # Lumo's served-process collector settings, for comparison
                from lumo import gc_tuning

                gc_tuning.settle()
            yield
        engine.dispose()

    app = FastAPI(lifespan=lifespan)

    def load_scope(email: str) -> Any:
        with state["factory"]() as session:
            return scope_for_email(session, email)

    @app.post("/chat")
    async def chat(body: PrebuiltChat) -> dict[str, Any]:
        scope = await asyncio.to_thread(load_scope, body.email)
        context = BenchContext(scope, AsOf(dt.date.fromisoformat(body.date), scope.tz))
        config = {"configurable": {"thread_id": uuid.uuid4().hex}} if state["checkpointed"] else None
        out = await state["agent"].ainvoke({"messages": [{"role": "user", "content": body.message}]}, config, context=context)
        messages = out["messages"]
        return {"reply": messages[-1].content, "model_calls": sum(1 for m in messages if m.type == "ai")}

    return app


# --- 1 and 2: CPU per turn and prompt size, in-process --------------------------------------------------


class PrioritiesMeter:
    """The CPU `compute_priorities` spends (thread time of the thread it runs in), whichever agent calls it.

    Installed by replacing the module attribute both agents' tools call through; Lumo's code is unchanged.
    """

    def __init__(self) -> None:
        self.cpu_s = 0.0

    @contextlib.contextmanager
    def installed(self) -> Iterator[PrioritiesMeter]:
        from lumo.crm import priorities

        original = priorities.compute_priorities

        def metered(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.cpu_s += time.thread_time() - started

        priorities.compute_priorities = metered
        try:
            yield self
        finally:
            priorities.compute_priorities = original


@dataclass
class TurnSeries:
    name: str
    cpu_ms: list[float] = field(default_factory=list)
    priorities_cpu_ms: list[float] = field(default_factory=list)  # of cpu_ms: inside compute_priorities
    wall_ms: list[float] = field(default_factory=list)
    model_calls: list[int] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)  # stand-in estimate, summed over the turn's requests
    problems: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, cpu_s: float, priorities_s: float, wall_s: float, records: list[dict[str, Any]]) -> None:
        self.cpu_ms.append(cpu_s * 1000)
        self.priorities_cpu_ms.append(priorities_s * 1000)
        self.wall_ms.append(wall_s * 1000)
        self.model_calls.append(len(records))
        self.prompt_tokens.append(sum(r["prompt_tokens"] for r in records))

    @property
    def outside_priorities_ms(self) -> list[float]:
        return [c - p for c, p in zip(self.cpu_ms, self.priorities_cpu_ms, strict=True)]


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[Any, float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    out = await fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


async def cpu_phase(sqlite_url: str, standin: str, today: dt.date, turns: int) -> list[TurnSeries]:
    import openai
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from lumo.compose import open_lumo
    from lumo.crm.lifecycle import AsOf
    from lumo.crm.scope import scope_for_email

    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": f"{standin}/v1", "LUMO_MODEL": MODEL_NAME}
    stats = StandinStats(standin)
    lumo_s, pre_s, pre_ck_s, raw_s = (
        TurnSeries("Lumo"),
        TurnSeries("prebuilt"),
        TurnSeries("prebuilt + SQLite checkpointer"),
        TurnSeries("2 raw calls"),
    )
    raw = openai.AsyncOpenAI(base_url=f"{standin}/v1", api_key=API_KEY, max_retries=0)
    ck_path = SQLITE_PATH.with_name("lumo_bench_agent.prebuilt-checkpoints.db")
    ck_path.unlink(missing_ok=True)
    stack = contextlib.ExitStack()
    try:
        async with (
            open_lumo(sqlite_url, env) as lumo,
            AsyncSqliteSaver.from_conn_string(str(ck_path)) as saver,
        ):
            meter_cm = PrioritiesMeter().installed()
            meter = stack.enter_context(meter_cm)
            await saver.setup()
            with lumo.session_factory() as session:
                scopes = [scope_for_email(session, e) for e in rep_emails(sqlite_url)]
            prompt = system_prompt(scopes[0], today)
            prebuilt = make_prebuilt(standin, lumo.session_factory, prompt)
            prebuilt_ck = make_prebuilt(standin, lumo.session_factory, prompt, checkpointer=saver)
            tool_spec = {
                "type": "function",
                "function": {
                    "name": "todays_priorities",
                    "parameters": {"type": "object", "properties": {}},
                    "description": "Today's ranked work for the rep.",
                },
            }

            async def raw_two_calls() -> Any:
                msgs: list[dict[str, Any]] = [{"role": "system", "content": prompt}, {"role": "user", "content": PROMPT}]
                first = await raw.chat.completions.create(model=MODEL_NAME, messages=msgs, tools=[tool_spec])
                call = first.choices[0].message.tool_calls[0]
                msgs += [
                    first.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": '{"items":[]}'},
                ]
                return await raw.chat.completions.create(model=MODEL_NAME, messages=msgs, tools=[tool_spec])

            log(f"cpu: {WARMUP_TURNS} warm-up + {turns} turns of each, interleaved")
            for i in range(WARMUP_TURNS + turns):
                scope = scopes[i % len(scopes)]
                as_of = AsOf(today, scope.tz)
                context = BenchContext(scope, as_of)
                warm = i < WARMUP_TURNS
                now = dt.datetime.now(dt.UTC)
                runs: list[tuple[TurnSeries, Callable[[], Awaitable[Any]], Callable[[Any], str | None]]] = [
                    (lumo_s, lambda s=scope, a=as_of, n=now: lumo.ask(s, PROMPT, as_of=a, now=n), lumo_problem),
                    (
                        pre_s,
                        lambda c=context: prebuilt.ainvoke({"messages": [{"role": "user", "content": PROMPT}]}, context=c),
                        prebuilt_problem,
                    ),
                    (
                        pre_ck_s,
                        lambda c=context, k=i: prebuilt_ck.ainvoke(
                            {"messages": [{"role": "user", "content": PROMPT}]},
                            {"configurable": {"thread_id": f"bench-{k}"}},
                            context=c,
                        ),
                        prebuilt_problem,
                    ),
                    (raw_s, raw_two_calls, lambda out: None),
                ]
                for series, fn, problem in runs:
                    index = await stats.total()
                    meter.cpu_s = 0.0
                    out, cpu, wall = await timed(fn)
                    records = await stats.since(index)
                    if warm:
                        continue
                    series.add(cpu, meter.cpu_s, wall, records)
                    if (p := problem(out)) is not None:
                        series.problems[p] += 1
                if (i + 1) % 50 == 0:
                    log(f"cpu: {i + 1}/{WARMUP_TURNS + turns}")
    finally:
        stack.close()
        await raw.close()
        await stats.aclose()
        ck_path.unlink(missing_ok=True)
    return [lumo_s, pre_s, pre_ck_s, raw_s]


def lumo_problem(result: dict[str, Any]) -> str | None:
    if result.get("model") == "lumo-offline":
        return "offline fallback"
    if not result.get("reply"):
        return "empty reply"
    if not result.get("items"):
        return "no priorities"
    return None


def prebuilt_problem(out: dict[str, Any]) -> str | None:
    messages = out["messages"]
    if not any(m.type == "tool" for m in messages):
        return "no tool call"
    return None if messages[-1].content else "empty reply"


# --- 3: load -------------------------------------------------------------------------------------------


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> tuple[int, float] | None:
    """(process group, CPU seconds) of a live process, from /proc (Linux); None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


class CpuAccount:
    """Where a load run's CPU goes: the servers started here (by process group), the PostgreSQL backends of
    the bench database (by their process title), and this process (the driver, or the in-process agent).

    Read from /proc before and after a run; a backend that exits during the run takes its CPU with it, so
    PostgreSQL is a lower bound. Other work on the machine is not counted here.
    """

    def __init__(self, db_name: str, groups: dict[str, int]) -> None:
        self.db_name = db_name
        self.groups = groups  # label -> process group id

    def snapshot(self) -> dict[str, dict[int, float]]:
        snap: dict[str, dict[int, float]] = {label: {} for label in (*self.groups, "PostgreSQL")}
        by_group = {pgid: label for label, pgid in self.groups.items()}
        for pid in _pids():
            stat = _proc_cpu(pid)
            if stat is None:
                continue
            pgrp, cpu = stat
            if pgrp in by_group:
                snap[by_group[pgrp]][pid] = cpu
                continue
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("postgres:") and f" {self.db_name} " in title:
                snap["PostgreSQL"][pid] = cpu
        snap["this process"] = {os.getpid(): time.process_time()}
        return snap

    @staticmethod
    def delta(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
        return {
            label: sum(cpu - before.get(label, {}).get(pid, 0.0) for pid, cpu in pids.items()) for label, pids in after.items()
        }


@dataclass
class LoadResult:
    name: str
    turns: int
    concurrency: int
    wall_s: float
    latencies_s: list[float]
    errors: collections.Counter[str]
    model_calls: int
    cpu_s: dict[str, float] = field(default_factory=dict)  # CpuAccount labels -> CPU seconds of the run
    busiest_worker: float | None = None  # the share of the server's CPU in its busiest process
    load_after: str = ""  # the machine's load average when the run ended (other work skews every figure)

    def cpu_cell(self) -> str:
        cells = [
            f"{self.cpu_s[k] * 1000 / self.turns:.0f}" if k in self.cpu_s else "-"
            for k in ("server", "PostgreSQL", "stand-in", "this process")
        ]
        if self.busiest_worker is not None:
            cells[0] += f" ({self.busiest_worker:.0%} in one worker)"
        return " / ".join(cells)

    @property
    def throughput(self) -> float:
        """Turns that went right, per second of the whole run."""
        return (self.turns - self.error_count) / self.wall_s if self.wall_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


async def run_load(
    name: str,
    one: Callable[[int], Awaitable[str | None]],
    turns: int,
    concurrency: int,
    stats: StandinStats,
    account: CpuAccount | None = None,
) -> LoadResult:
    """`turns` calls of `one(i)`, `concurrency` at a time; `one` returns None when the turn went right."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()

    async def run(i: int) -> None:
        async with sem:
            started = time.perf_counter()
            try:
                problem = await one(i)
            except Exception as exc:  # noqa: BLE001  (every failure is a counted error)
                root: BaseException = exc
                while (inner := root.__cause__ or root.__context__) is not None and inner is not root:
                    root = inner
                problem = type(exc).__name__ + (f" ({type(root).__name__}: {root})" if root is not exc else "")
            latencies.append(time.perf_counter() - started)
            if problem is not None:
                errors[problem] += 1

    index = await stats.total()
    before = account.snapshot() if account else {}
    started = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(turns)))
    wall = time.perf_counter() - started
    after = account.snapshot() if account else {}
    cpu = CpuAccount.delta(before, after) if account else {}
    busiest = None
    if "server" in after and cpu.get("server"):
        per_pid = [c - before["server"].get(pid, 0.0) for pid, c in after["server"].items()]
        busiest = max(per_pid) / cpu["server"]
    calls = len(await stats.since(index))
    return LoadResult(name, turns, concurrency, wall, latencies, errors, calls, cpu, busiest, load_average())


def http_client(base: str, concurrency: int) -> aiohttp.ClientSession:
    """The load driver's client. It shares the 2 cores with the servers it measures, so it should take little of
    them: aiohttp's client took about 1 ms of CPU a chat, httpx's 6 to 25 ms (evals/perf/README.md)."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=180, connect=60)
    return aiohttp.ClientSession(base_url=base, connector=connector, timeout=timeout, trust_env=False)


async def load_served(
    name: str,
    base: str,
    request: Callable[[int], dict[str, Any]],
    check: Callable[[dict[str, Any]], str | None],
    turns: int,
    concurrency: int,
    stats: StandinStats,
    account: CpuAccount,
) -> LoadResult:
    async with http_client(base, concurrency) as client:

        async def one(i: int) -> str | None:
            async with client.post(**request(i)) as r:
                if r.status != 200:
                    return f"HTTP {r.status}"
                return check(await r.json())

        warm = await run_load(f"{name} warm-up", one, min(LOAD_WARMUP, turns), min(LOAD_WARMUP, concurrency), stats)
        if warm.error_count:
            log(f"load: {name} warm-up errors {dict(warm.errors)}")
        return await run_load(name, one, turns, concurrency, stats, account)


async def load_phase(
    args: argparse.Namespace, procs: Processes, pg_url: str, today: dt.date, standin: str, notes: list[str]
) -> list[LoadResult]:
    from sqlalchemy.engine import make_url

    from lumo.cli.serve import KEEP_ALIVE_SECONDS
    from lumo.compose import open_lumo
    from lumo.crm.lifecycle import AsOf
    from lumo.crm.scope import scope_for_email

    db_name = make_url(pg_url).database or ""
    standin_group = procs.running["standin-slow"].pid
    emails = rep_emails(pg_url)
    tokens = mint_tokens(pg_url, emails)
    stats = StandinStats(standin)
    results = []
    child_env = {
        **os.environ,
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": f"{standin}/v1",
        "LUMO_MODEL": MODEL_NAME,
        "LUMO_DATABASE_URL": pg_url,
    }
    child_env.pop("LUMO_LLM", None)
    lumo_bin = str(Path(sys.executable).with_name("lumo"))
    try:
        # Lumo as shipped: `lumo serve`, one run per worker count, on PostgreSQL (checkpoints there too).
        def lumo_request(i: int) -> dict[str, Any]:
            email = emails[i % len(emails)]
            return {
                "url": "/v1/chat",
                "headers": {"Authorization": f"Bearer {tokens[email]}"},
                "json": {"message": PROMPT, "date": today.isoformat()},
            }

        for workers in args.lumo_workers:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            start_server(
                procs,
                "lumo-serve",
                [lumo_bin, "serve", "--port", str(port), "--workers", str(workers)],
                child_env,
                f"{base}/readyz",
                workers,
                notes,
            )
            account = CpuAccount(db_name, {"server": procs.running["lumo-serve"].pid, "stand-in": standin_group})
            log(f"load: lumo serve --workers {workers}")
            results.append(
                await load_served(
                    f"Lumo, `lumo serve --workers {workers}`",
                    base,
                    lumo_request,
                    lumo_problem,
                    args.turns,
                    args.concurrency,
                    stats,
                    account,
                )
            )
            procs.stop("lumo-serve")

        # The prebuilt agent behind a minimal FastAPI app, same uvicorn settings and workers; without a
        # checkpointer (the anchor), and with --prebuilt-checkpointer also with Lumo's PostgreSQL checkpointer, with
        # --prebuilt-gc also with a served Lumo process's collector settings.
        def prebuilt_request(i: int) -> dict[str, Any]:
            return {"url": "/chat", "json": {"message": PROMPT, "email": emails[i % len(emails)], "date": today.isoformat()}}

        def prebuilt_check(body: dict[str, Any]) -> str | None:
            return None if body.get("reply") and body.get("model_calls") == 2 else "bad reply"

        variants = [(w, False, False) for w in args.prebuilt_workers]
        if args.prebuilt_checkpointer:
            variants += [(w, True, False) for w in args.prebuilt_workers]
        if args.prebuilt_gc:
            variants += [(w, False, True) for w in args.prebuilt_workers]
        for workers, checkpointed, settled in variants:
            port = free_port()
            env = {
                **child_env,
                "BENCH_DATABASE_URL": pg_url,
                "BENCH_MODEL_URL": standin,
                "BENCH_DATE": today.isoformat(),
                "BENCH_PROMPT_EMAIL": emails[0],
                "BENCH_CHECKPOINTER": "postgres" if checkpointed else "",
                "BENCH_SETTLE_GC": "1" if settled else "",
            }
            base = f"http://127.0.0.1:{port}"
            start_server(
                procs,
                "prebuilt-serve",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench_agent:prebuilt_app",
                    "--factory",
                    "--app-dir",
                    str(HERE),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--timeout-keep-alive",
                    str(KEEP_ALIVE_SECONDS),  # as `lumo serve` runs
                    "--log-level",
                    "info",
                    "--no-proxy-headers",
                ],
                env,
                f"{base}/docs",
                workers,
                notes,
            )
            extra = " + PostgreSQL checkpointer" if checkpointed else " + Lumo's collector settings" if settled else ""
            name = f"prebuilt{extra}, FastAPI --workers {workers}"
            account = CpuAccount(db_name, {"server": procs.running["prebuilt-serve"].pid, "stand-in": standin_group})
            log(f"load: {name}")
            results.append(
                await load_served(name, base, prebuilt_request, prebuilt_check, args.turns, args.concurrency, stats, account)
            )
            procs.stop("prebuilt-serve")

        if args.skip_in_process:
            return results
        # Both in this process, on one event loop (the anchor's setting).
        env_lumo = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": f"{standin}/v1", "LUMO_MODEL": MODEL_NAME}
        async with open_lumo(pg_url, env_lumo) as lumo:
            with lumo.session_factory() as session:
                scopes = [scope_for_email(session, e) for e in emails]
            prebuilt = make_prebuilt(standin, lumo.session_factory, system_prompt(scopes[0], today))

            async def lumo_one(i: int) -> str | None:
                scope = scopes[i % len(scopes)]
                out = await lumo.ask(scope, PROMPT, as_of=AsOf(today, scope.tz), now=dt.datetime.now(dt.UTC))
                return lumo_problem(out)

            async def prebuilt_one(i: int) -> str | None:
                scope = scopes[i % len(scopes)]
                out = await prebuilt.ainvoke(
                    {"messages": [{"role": "user", "content": PROMPT}]}, context=BenchContext(scope, AsOf(today, scope.tz))
                )
                return prebuilt_problem(out)

            for name, one in (("Lumo in-process, 1 event loop", lumo_one), ("prebuilt in-process, 1 event loop", prebuilt_one)):
                log(f"load: {name}")
                await run_load(f"{name} warm-up", one, min(LOAD_WARMUP, args.turns), min(LOAD_WARMUP, args.concurrency), stats)
                account = CpuAccount(db_name, {"stand-in": standin_group})
                alone = name.replace("in-process, 1 event loop", "one chat at a time (in-process)")
                results.append(await run_load(alone, one, min(SEQUENTIAL_TURNS, args.turns), 1, stats, account))
                results.append(await run_load(name, one, args.turns, args.concurrency, stats, account))
    finally:
        await stats.aclose()
    return results


# --- the report ----------------------------------------------------------------------------------------


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def cpu_table(series: list[TurnSeries]) -> Iterator[str]:
    yield (
        "| per turn, instant model | CPU p50 ms | CPU p95 ms | of which priorities p50 ms | CPU outside priorities "
        "p50 ms | wall p50 ms | model calls | prompt tokens (est.) | problems |"
    )
    yield "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for s in series:
        problems = ", ".join(f"{k}: {v}" for k, v in s.problems.items()) or "none"
        yield (
            f"| {s.name} | {percentile(s.cpu_ms, 50):.1f} | {percentile(s.cpu_ms, 95):.1f} "
            f"| {percentile(s.priorities_cpu_ms, 50):.1f} | {percentile(s.outside_priorities_ms, 50):.1f} "
            f"| {percentile(s.wall_ms, 50):.1f} | {statistics.median(s.model_calls):.0f} "
            f"| {statistics.median(s.prompt_tokens):,.0f} | {problems} |"
        )


def load_table(results: list[LoadResult], delay_ms: float) -> Iterator[str]:
    yield (
        f"| {delay_ms:.0f} ms model | turns | concurrency | good turns/s | p50 s | p95 s | max s | model calls/turn "
        "| CPU ms/turn: server / PostgreSQL / stand-in / this process | errors | load avg after |"
    )
    yield "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|"
    for r in results:
        errors = ", ".join(f"{k}: {v}" for k, v in r.errors.items()) or "0"
        yield (
            f"| {r.name} | {r.turns} | {r.concurrency} | {r.throughput:.1f} | {percentile(r.latencies_s, 50):.2f} "
            f"| {percentile(r.latencies_s, 95):.2f} | {max(r.latencies_s):.2f} | {r.model_calls / r.turns:.2f} "
            f"| {r.cpu_cell()} | {errors} | {r.load_after} |"
        )


def targets_table(series: list[TurnSeries], load: list[LoadResult], args: argparse.Namespace) -> Iterator[str]:
    yield "| target (ARCHITECTURE.md section 7) | measured | met |"
    yield "|---|---|---|"
    if series:
        yield from cpu_targets(series, args)
    if load:
        yield from load_targets(load, args)


def cpu_targets(series: list[TurnSeries], args: argparse.Namespace) -> Iterator[str]:
    lumo, pre = series[0], series[1]
    lumo_cpu, pre_cpu = percentile(lumo.cpu_ms, 50), percentile(pre.cpu_ms, 50)
    ratio = pre_cpu / lumo_cpu if lumo_cpu else float("inf")
    calls = statistics.median(lumo.model_calls)
    tokens = max(lumo.prompt_tokens)
    pre_tokens = statistics.median(pre.prompt_tokens)
    yield (
        f'| "What should I do today?" takes one model call, not two | Lumo {calls:.0f}, prebuilt '
        f"{statistics.median(pre.model_calls):.0f}; wall p50 {percentile(lumo.wall_ms, 50):.1f} vs "
        f"{percentile(pre.wall_ms, 50):.1f} ms; prompt {statistics.median(lumo.prompt_tokens):,.0f} vs "
        f"{pre_tokens:,.0f} tokens | {met(calls == 1)} |"
    )
    lumo_tokens = statistics.median(lumo.prompt_tokens)
    react = schema_tokens(pre_tokens)[2]
    yield (
        f"| ... and half the tokens of a ReAct loop | {lumo_tokens:,.0f} vs {pre_tokens:,.0f} (prebuilt, 1 tool) = "
        f"{lumo_tokens / pre_tokens:.2f}x; vs ~{react:,.0f} (ReAct over Lumo's tools, estimated) = "
        f"{lumo_tokens / react:.2f}x | info |"
    )
    yield f"| CPU per chat turn p50 under {TARGET_CPU_P50_MS:.0f} ms | {lumo_cpu:.1f} ms | {met(lumo_cpu < TARGET_CPU_P50_MS)} |"
    lumo_out, pre_out = percentile(lumo.outside_priorities_ms, 50), percentile(pre.outside_priorities_ms, 50)
    yield (
        f"| ... the same, outside compute_priorities (agent overhead) | {lumo_out:.1f} ms | {met(lumo_out < TARGET_CPU_P50_MS)} |"
    )
    yield (
        f"| CPU per turn at least 2x lower than the prebuilt agent | {pre_cpu:.1f} / {lumo_cpu:.1f} = {ratio:.2f}x "
        f"| {met(ratio >= 2)} |"
    )
    out_ratio = pre_out / lumo_out if lumo_out else float("inf")
    yield (
        f"| ... the same, outside compute_priorities | {pre_out:.1f} / {lumo_out:.1f} = {out_ratio:.2f}x "
        f"| {met(out_ratio >= 2)} |"
    )
    yield (
        f'| prompt for "what should I do today" under {TARGET_PROMPT_TOKENS:,} tokens | max {tokens:,} '
        f"(book of ~{args.invoices // args.reps:,} invoices a rep) | {met(tokens < TARGET_PROMPT_TOKENS)} |"
    )


def load_targets(load: list[LoadResult], args: argparse.Namespace) -> Iterator[str]:
    best = max(
        (r for r in load if r.name.startswith("prebuilt,") and r.concurrency == args.concurrency),  # as shipped: no "+ ..."
        key=lambda r: r.throughput,
    )
    alone = {r.name.split()[0]: percentile(r.latencies_s, 50) for r in load if r.concurrency == 1}
    if {"Lumo", "prebuilt"} <= set(alone):
        half = alone["Lumo"] / alone["prebuilt"]
        yield (
            f"| ... so a turn costs half the latency ({args.delay_ms:.0f} ms model, one chat at a time) | "
            f"p50 {alone['Lumo']:.2f} s vs {alone['prebuilt']:.2f} s = {half:.2f}x | info |"
        )
    for served in (r for r in load if r.name.startswith("Lumo, `lumo serve")):
        x = served.throughput / best.throughput if best.throughput else float("inf")
        yield (
            f"| {args.concurrency} concurrent chats, {args.delay_ms:.0f} ms model: no errors ({served.name}) | "
            f"{served.error_count} errors | {met(served.error_count == 0)} |"
        )
        yield (
            f"| ... and at least 2x the prebuilt agent's throughput | {served.throughput:.1f} / "
            f"{best.throughput:.1f} ({best.name}) = {x:.2f}x | {met(x >= 2)} |"
        )
        saving = [r for r in load if r.name.startswith("prebuilt + PostgreSQL checkpointer")]
        if saving:
            like = max(saving, key=lambda r: r.throughput)
            y = served.throughput / like.throughput if like.throughput else float("inf")
            yield (
                f"| ... against the prebuilt agent that also saves its threads | {served.throughput:.1f} / "
                f"{like.throughput:.1f} ({like.name}) = {y:.2f}x | info |"
            )


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200, help="sequential turns per agent, and chats per load run")
    parser.add_argument("--concurrency", type=int, default=200, help="chats in flight at once in the load runs")
    parser.add_argument("--delay-ms", type=float, default=300, help="the model's latency in the load runs")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the prebuilt app (and of Lumo by default)")
    parser.add_argument(
        "--lumo-workers",
        type=lambda v: [int(n) for n in v.split(",")],
        default=None,
        help="worker counts of `lumo serve`, one load run each, e.g. 1,2,4 (default: --workers)",
    )
    parser.add_argument(
        "--prebuilt-workers",
        type=lambda v: [int(n) for n in v.split(",")],
        default=None,
        help="worker counts of the prebuilt app, one load run each (default: --workers)",
    )
    parser.add_argument(
        "--prebuilt-checkpointer",
        action="store_true",
        help="also run the prebuilt app with Lumo's PostgreSQL checkpointer (a thread saved per chat, as Lumo does)",
    )
    parser.add_argument(
        "--prebuilt-gc",
        action="store_true",
        help="also run the prebuilt app with the collector settings of a served Lumo process (lumo.gc_tuning)",
    )
    parser.add_argument("--invoices", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--pg-url", default=PG_URL, help="a PostgreSQL database to create, use and drop")
    parser.add_argument("--keep-db", action="store_true", help="keep the PostgreSQL database and SQLite file")
    parser.add_argument("--skip-load", action="store_true", help="only the in-process CPU and prompt figures")
    parser.add_argument("--skip-cpu", action="store_true", help="only the load figures (no CPU-per-turn phase)")
    parser.add_argument("--skip-in-process", action="store_true", help="load: only the served runs, not the in-process ones")
    args = parser.parse_args(argv)
    if not 1 <= args.turns <= MAX_TURNS or not 1 <= args.concurrency <= MAX_CONCURRENCY:
        parser.error(f"--turns must be 1..{MAX_TURNS} and --concurrency 1..{MAX_CONCURRENCY}")
    args.lumo_workers = args.lumo_workers or [args.workers]
    args.prebuilt_workers = args.prebuilt_workers or [args.workers]
    if min(args.lumo_workers + args.prebuilt_workers) < 1 or args.skip_cpu and args.skip_load:
        parser.error("--lumo-workers are counts >= 1, and --skip-cpu with --skip-load leaves nothing to run")
    if args.workers < 1 or args.delay_ms < 0 or args.reps < 1 or args.invoices < args.reps:
        parser.error("--workers >= 1, --delay-ms >= 0, --reps >= 1 and --invoices >= --reps")
    return args


async def run(args: argparse.Namespace, procs: Processes) -> tuple[list[TurnSeries], list[LoadResult], list[str]]:
    today = dt.date.today()
    notes = [f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, as of {today.isoformat()}"]
    notes.append(f"load average before: {load_average()}")
    series: list[TurnSeries] = []
    if not args.skip_cpu:
        remove_sqlite(SQLITE_PATH)
        sqlite_url = f"sqlite:///{SQLITE_PATH}"
        log("seeding SQLite ...")
        notes.append(f"SQLite {SQLITE_PATH}: {seed(sqlite_url, args.invoices, args.reps, today)}")
        instant = start_standin(procs, "standin-instant", 0)
        series = await cpu_phase(sqlite_url, instant, today, args.turns)
        procs.stop("standin-instant")
        notes.append(schema_note(statistics.median(series[1].prompt_tokens)))
    load: list[LoadResult] = []
    if not args.skip_load:
        pg_create(args.pg_url)
        try:
            log("seeding PostgreSQL ...")
            notes.append(f"PostgreSQL: {seed(args.pg_url, args.invoices, args.reps, today)}")
            slow = start_standin(procs, "standin-slow", args.delay_ms)
            load = await load_phase(args, procs, args.pg_url, today, slow, notes)
        finally:
            procs.stop_all()
            if not args.keep_db:
                pg_drop(args.pg_url)
    notes.append(f"load average after: {load_average()} (other work on the machine skews every figure)")
    return series, load, notes


def schema_tokens(prebuilt_tokens: float) -> tuple[int, int, float]:
    """(Lumo's tool schemas, the one prebuilt tool's schema, a ReAct turn over Lumo's tools), in est. tokens:
    the prebuilt turn's two requests, each carrying the other tools' schemas too."""
    from standin import estimate_tokens

    from tools import REGISTRY, schemas

    every = estimate_tokens(json.dumps(schemas()))
    one = estimate_tokens(json.dumps(REGISTRY["todays_priorities"].schema()))
    return every, one, prebuilt_tokens + 2 * (every - one)


def schema_note(prebuilt_tokens: float) -> str:
    """How much of Lumo's prompt its tool schemas are, and what a ReAct loop over the same tools would send."""
    from tools import REGISTRY

    every, one, react = schema_tokens(prebuilt_tokens)
    return (
        f"Lumo offers its {len(REGISTRY)} tool schemas on every model call (~{every:,} of its prompt tokens); the "
        f"prebuilt agent here has 1 tool (~{one:,}). A ReAct loop over the same {len(REGISTRY)} tools would send "
        f"~{react:,.0f} tokens for the turn."
    )


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    procs = Processes()
    try:
        series, load, notes = asyncio.run(run(args, procs))
    finally:
        procs.stop_all()
        if not args.keep_db:
            remove_sqlite(SQLITE_PATH)
    print("\n".join(f"- {n}" for n in notes))
    print("\n" + "\n".join(targets_table(series, load, args)))
    if series:
        print(f"\nCPU per turn ({args.turns} sequential turns each, interleaved, this process only):\n")
        print("\n".join(cpu_table(series)))
    if load:
        print(
            f"\nLoad ({args.turns} chats, {args.concurrency} in flight, ideal latency {args.delay_ms / 1000:.1f} s "
            f"a model call):\n"
        )
        print("\n".join(load_table(load, args.delay_ms)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
