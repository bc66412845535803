"""The job queue of a process: procrastinate on PostgreSQL, in memory inside `lumo serve` otherwise.

`build_app` registers the job functions of lumo.jobs.work and the periodic ones of PERIODIC; `Jobs` enqueues;
`serving_jobs` is what `lumo serve` opens (and where the in-process worker runs), `run_worker` is `lumo worker`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import procrastinate
from procrastinate import JobContext, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.testing import InMemoryConnector
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from lumo import gc_tuning
from lumo.config import Settings
from lumo.digest.mailer import Mailer
from lumo.digest.run import OUTBOX_MAX_ATTEMPTS, queued_outbox_ids
from lumo.jobs import work
from lumo.jobs.work import Deps
from lumo.mail.providers import Providers
from lumo.slack.handlers import SlackRuntime

log = logging.getLogger("lumo.jobs")

DEFER_BATCH = 500
# After deferring this many jobs at once, refresh PostgreSQL's statistics of the jobs table: each job's fetch is
# planned from them. Planned without them (the table was empty before the digest tick), a fetch with 56,000 jobs
# waiting took 14 ms (70 s when naming the queues), 4 ms after ANALYZE. Autovacuum may be off, or a minute late.
ANALYZE_AFTER = 1000
DRAIN_SECONDS = 20.0  # on shutdown, running jobs get this long to finish (then they are aborted and retried)
IN_PROCESS_CONCURRENCY = 8  # Slack answers wait on the model: several at once
EMAIL_BACKOFF_BASE_S = 5  # a transient SMTP failure is retried after 5 s, then 25 s (then the email fails)


@dataclass(frozen=True)
class Periodic:
    """A job the queue starts every `every(settings)` seconds, on one worker of all hosts (procrastinate keeps one
    job per tick, and a queueing lock keeps ticks from piling up behind a slow one)."""

    name: str
    run: Callable[[JobContext, int], Awaitable[None]]
    every: Callable[[Settings], int]


# The periodic jobs: another one is one line here.
PERIODIC: list[Periodic] = [
    Periodic("digest_tick", work.digest_tick, lambda s: s.digest_tick_s),
    Periodic("outbox_sweep", work.outbox_sweep, lambda s: s.jobs_sweep_s),
    Periodic("retry_stalled", work.retry_stalled, lambda s: s.jobs_sweep_s),
    Periodic("mail_sync", work.mail_sync, lambda s: s.digest_tick_s),  # beside the digest, as often as its tick
]


def _mail(settings: Settings) -> dict[str, Any]:
    """The reps' mailboxes and, with a live model, the reader of replies the rules cannot read."""
    from lumo.agent.reply_reader import reply_reader
    from lumo.config import model_settings
    from lumo.llm import LLMSettings
    from lumo.mail.config import MailConfig

    reader = reply_reader(LLMSettings.from_env()) if model_settings().live else None
    return {"mailboxes": Providers(MailConfig.from_settings(settings)), "reply_reader": reader}


def cron_every(seconds: int) -> str:
    """A cron line for every `seconds` (under a minute: procrastinate's sixth, seconds field; else whole minutes)."""
    if seconds < 60:
        return f"* * * * * */{seconds}"
    return f"*/{min(seconds // 60, 59)} * * * *"


def build_app(connector: Any, settings: Settings, *, periodic: bool = True) -> procrastinate.App:
    """The job queue's app: the job functions, and the PERIODIC ones on their schedule (unless `periodic` False)."""
    app = procrastinate.App(connector=connector)
    app.task(name="send_digest", queue="digests", pass_context=True)(work.send_digest)
    email_retry = RetryStrategy(
        max_attempts=OUTBOX_MAX_ATTEMPTS, exponential_wait=EMAIL_BACKOFF_BASE_S, retry_exceptions=[work.RetryLater]
    )
    app.task(name="send_email", queue="mail", pass_context=True, retry=email_retry)(work.send_email)
    app.task(name="slack_answer", queue="slack", pass_context=True)(work.slack_answer)
    for every in PERIODIC:
        task = app.task(name=every.name, queue="periodic", queueing_lock=every.name, pass_context=True)(every.run)
        if periodic:
            app.periodic(cron=cron_every(every.every(settings)), periodic_id=every.name)(task)
    return app


def in_process(settings: Settings) -> bool:
    if settings.jobs == "auto":
        return make_url(settings.database_url).get_backend_name() != "postgresql"
    return settings.jobs == "in-process"


def postgres_connector(database_url: str, *, max_size: int) -> procrastinate.PsycopgConnector:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("the job queue needs PostgreSQL: set LUMO_DATABASE_URL=postgresql+psycopg://...")
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=max_size, timeout=10.0)


class InProcessConnector(InMemoryConnector):
    """procrastinate's in-memory queue, for a long-running process: it keeps no log of its queries and no events
    of the jobs it deleted (the test connector keeps both, forever)."""

    async def generic_execute(self, query: str, suffix: str, **arguments: Any) -> Any:
        return await getattr(self, f"{self.reverse_queries[query]}_{suffix}")(**arguments)

    async def finish_job_run(self, job_id: int, status: str, delete_job: bool) -> None:
        await super().finish_job_run(job_id, status, delete_job)
        if delete_job:
            self.events.pop(job_id, None)

    def idle(self) -> bool:
        return not any(
            job["status"] in ("todo", "doing") and job["task_name"] not in _PERIODIC_NAMES for job in self.jobs.values()
        )


_PERIODIC_NAMES = frozenset(p.name for p in PERIODIC)


class Jobs:
    """Enqueue work. Deferring twice what is already waiting is a no-op (queueing locks)."""

    def __init__(self, app: procrastinate.App, session_factory: sessionmaker[Session], *, mail: bool) -> None:
        self.app = app
        self.session_factory = session_factory
        self.mail = mail

    async def defer_slack(self, kind: str, data: Mapping[str, str], now: dt.datetime) -> None:
        await self.app.configure_task("slack_answer").defer_async(kind=kind, data=dict(data), now=now.isoformat())

    async def defer_emails(self) -> int:
        """A send_email job for each queued email that has none waiting."""
        if not self.mail:
            return 0
        ids = await asyncio.to_thread(queued_outbox_ids, self.session_factory)
        return await self._defer("send_email", [({"outbox_id": i}, f"outbox:{i}") for i in ids])

    async def defer_digests(self, due: Iterable[tuple[str, dt.date]]) -> int:
        items = [({"user_id": user_id, "day": day.isoformat()}, f"digest:{user_id}:{day.isoformat()}") for user_id, day in due]
        return await self._defer("send_digest", items)

    async def _defer(self, task: str, items: list[tuple[dict[str, Any], str]]) -> int:
        # Skip what is waiting or running already: a tick behind a backlog would otherwise try (and fail) every one.
        busy = await self._busy({key for _, key in items})
        items = [(kwargs, key) for kwargs, key in items if key not in busy]
        deferred = 0
        for start in range(0, len(items), DEFER_BATCH):
            # queueing_lock: one job waiting per key; lock: one running per key (a stalled job retried and a new one
            # queued meanwhile run one after the other, never side by side).
            chunk = [
                self.app.configure_task(task, queueing_lock=key, lock=key).make_new_job(**kwargs)
                for kwargs, key in items[start : start + DEFER_BATCH]
            ]
            try:
                await self.app.job_manager.batch_defer_jobs_async(chunk)
                deferred += len(chunk)
            except AlreadyEnqueued:  # some are waiting already: the others one by one
                for job in chunk:
                    with suppress(AlreadyEnqueued):
                        await self.app.job_manager.defer_job_async(job)
                        deferred += 1
        if deferred >= ANALYZE_AFTER and not isinstance(self.app.connector, InProcessConnector):
            await self.app.connector.execute_query_async("ANALYZE procrastinate_jobs")
            log.info("jobs.analyzed after=%d", deferred)
        return deferred

    async def _busy(self, keys: set[str]) -> set[str]:
        """The keys among `keys` with a job waiting or running."""
        if not keys:
            return set()
        connector = self.app.connector
        if isinstance(connector, InProcessConnector):
            return {job["queueing_lock"] for job in connector.jobs.values() if job["status"] in ("todo", "doing")} & keys
        rows = await connector.execute_query_all_async(
            "SELECT queueing_lock FROM procrastinate_jobs WHERE status IN ('todo', 'doing') AND queueing_lock = ANY(%(keys)s)",
            keys=sorted(keys),
        )
        return {row["queueing_lock"] for row in rows}

    def idle(self) -> bool:
        """In-process: no job waiting or running besides the periodic ones (tests wait on it)."""
        connector = self.app.connector
        return connector.idle() if isinstance(connector, InProcessConnector) else True


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@asynccontextmanager
async def serving_jobs(
    settings: Settings, session_factory: sessionmaker[Session], slack: SlackRuntime | None
) -> AsyncIterator[Jobs]:
    """For `lumo serve`: on the PostgreSQL queue, only enqueue; in-process, also run a worker until shutdown.

    In-process, mail (digests and approved emails) goes only with digest_at set, as before the queue: without it,
    approved emails wait for `lumo outbox send`. A `lumo worker` always sends."""
    local = in_process(settings)
    mail = not local or bool(settings.digest_at)
    app = build_app(InProcessConnector() if local else postgres_connector(settings.database_url, max_size=4), settings)
    jobs = Jobs(app, session_factory, mail=mail)
    async with app.open_async():
        if not local:
            yield jobs
            return
        mailer = Mailer(settings.smtp_url, settings.mail_from) if mail else None
        deps = Deps(settings, session_factory, mailer, slack, jobs, _utcnow, **_mail(settings))
        worker = asyncio.create_task(
            app.run_worker_async(
                name="in-process",
                concurrency=IN_PROCESS_CONCURRENCY,
                additional_context={"lumo": deps},
                install_signal_handlers=False,
                delete_jobs="always",
                shutdown_graceful_timeout=DRAIN_SECONDS,
            ),
            name="lumo-jobs",
        )
        try:
            yield jobs
        finally:
            worker.cancel()
            with suppress(asyncio.CancelledError):
                await worker


async def run_worker(settings: Settings, env: Mapping[str, str] | None, *, concurrency: int, name: str) -> None:
    """`lumo worker`: run the jobs of the PostgreSQL queue until SIGINT/SIGTERM (running jobs finish first)."""
    from lumo.compose import open_lumo
    from lumo.slack.client import SlackClient

    async with open_lumo(settings.database_url, env) as lumo:
        slack = SlackRuntime(lumo, lumo.session_factory, SlackClient.from_settings(settings))
        app = build_app(postgres_connector(settings.database_url, max_size=concurrency + 3), settings)
        jobs = Jobs(app, lumo.session_factory, mail=True)
        mailer = Mailer(settings.smtp_url, settings.mail_from)
        deps = Deps(settings, lumo.session_factory, mailer, slack, jobs, _utcnow, **_mail(settings))
        async with app.open_async():
            frozen = gc_tuning.settle()
            log.info(
                "jobs.worker_start name=%s concurrency=%d digest_at=%s gc_frozen=%d",
                name,
                concurrency,
                settings.digest_at,
                frozen,
            )
            await app.run_worker_async(
                name=name,
                concurrency=concurrency,
                additional_context={"lumo": deps},
                delete_jobs="successful",
                update_heartbeat_interval=settings.jobs_heartbeat_s,
                stalled_worker_timeout=settings.jobs_stalled_after_s,
                shutdown_graceful_timeout=DRAIN_SECONDS,
            )
