"""The job functions. Each takes procrastinate's JobContext, whose additional context carries `Deps`."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, cast

from procrastinate import JobContext
from procrastinate.exceptions import UniqueViolation
from procrastinate.jobs import Status
from sqlalchemy.orm import Session, sessionmaker

from lumo.config import Settings
from lumo.digest.run import (
    Sender,
    due_digests,
    expire_outbox_claims,
    send_digest_of,
    send_outbox_email,
)
from lumo.mail.providers import Providers
from lumo.mail.sync import Reader, sync_mailboxes
from lumo.slack import handlers
from lumo.slack.handlers import Click, Incoming, SlackRuntime

log = logging.getLogger("lumo.jobs")


class RetryLater(Exception):
    """A transient failure (the SMTP server said 4xx, or was not reachable): the queue retries with backoff."""


class Deferrer(Protocol):
    """What a job may enqueue next (lumo.jobs.queue.Jobs)."""

    async def defer_digests(self, due: Iterable[tuple[str, dt.date]]) -> int: ...

    async def defer_emails(self) -> int: ...


@dataclass(frozen=True)
class Deps:
    """What the jobs of one process share: opened once, when the worker starts."""

    settings: Settings
    session_factory: sessionmaker[Session]
    mailer: Sender | None  # None: mail is off here (in-process without digest_at): emails wait for `lumo outbox send`
    slack: SlackRuntime | None
    queue: Deferrer
    clock: Callable[[], dt.datetime]
    mailboxes: Providers | None = None  # the reps' own Gmail/Outlook: sends from them, and reads their replies
    reply_reader: Reader | None = None  # the model, for a reply the rules cannot read (None: rules alone)


def deps(context: JobContext) -> Deps:
    return cast(Deps, context.additional_context["lumo"])


# ---- digests ------------------------------------------------------------------------------------------------------


async def digest_tick(context: JobContext, timestamp: int) -> None:
    """Periodic: one send_digest job per rep whose local clock has reached the digest hour and who has no digest
    of their local day yet. The (rep, local day) queueing lock keeps a second tick (another host, a restart) from
    queueing it twice; DigestRun keeps a job that runs twice from sending twice."""
    d = deps(context)
    if not d.settings.digest_at or d.mailer is None:
        return
    now = d.clock()
    due = await asyncio.to_thread(due_digests, d.session_factory, now, dt.time.fromisoformat(d.settings.digest_at))
    deferred = await d.queue.defer_digests(due)
    log.info("jobs.digest_tick at=%s due=%d deferred=%d", now.isoformat(), len(due), deferred)


async def send_digest(context: JobContext, user_id: str, day: str) -> None:
    """One rep's digest of one local day; a failed send is recorded (never marked sent) and due again next tick."""
    d = deps(context)
    if d.mailer is None:
        return
    await asyncio.to_thread(send_digest_of, d.session_factory, d.mailer, user_id, dt.date.fromisoformat(day), now=d.clock())


# ---- the outbox ---------------------------------------------------------------------------------------------------


async def send_email(context: JobContext, outbox_id: int) -> None:
    """One approved email, sent once: the outbox claim decides (a second run finds it taken or sent)."""
    d = deps(context)
    if d.mailer is None:
        return
    result = await asyncio.to_thread(send_outbox_email, d.session_factory, d.mailer, outbox_id, d.clock(), d.mailboxes)
    if result is not None and result.status == "queued":  # transient, and the message did not leave
        raise RetryLater(result.error or "transient failure")


async def outbox_sweep(context: JobContext, timestamp: int) -> None:
    """Periodic: interrupted claims become uncertain; every email still queued gets its job (if it has none)."""
    d = deps(context)
    if d.mailer is None:
        return
    await asyncio.to_thread(expire_outbox_claims, d.session_factory, d.clock())
    await d.queue.defer_emails()


async def mail_sync(context: JobContext, timestamp: int) -> None:
    """Periodic: read the new replies in the invoices' threads of every connected mailbox (lumo.mail.sync)."""
    d = deps(context)
    if d.mailboxes is None:
        return
    mailboxes, reader, now = d.mailboxes, d.reply_reader, d.clock()
    await asyncio.to_thread(lambda: sync_mailboxes(d.session_factory, now, providers=mailboxes, reader=reader))


# ---- Slack --------------------------------------------------------------------------------------------------------


async def slack_answer(context: JobContext, kind: str, data: dict[str, str], now: str) -> None:
    """Answer a Slack message, slash command or button click (the event was stored and acked already).

    A worker that dies mid-answer leaves the job stalled; another worker runs it again. Decisions are applied once
    (AgentAction), so the rerun at worst posts the answer twice, never acts twice."""
    d = deps(context)
    rt = d.slack
    if rt is None:
        raise RuntimeError("this process has no Slack runtime")
    at = dt.datetime.fromisoformat(now)
    if kind == "message":
        await handlers.answer_message(rt, Incoming(**data), at)
    elif kind == "command":
        msg = Incoming(**data)
        scope = await rt.scope_for_slack_user(msg.user)
        if scope is None:
            log.info("slack.unknown_user user=%s", msg.user)
            return
        await handlers.answer_command(rt, scope, msg, at)
    elif kind == "click":
        await handlers.answer_click(rt, Click(**data), at)
    else:
        raise ValueError(f"unknown Slack job kind {kind!r}")
    await d.queue.defer_emails()  # an approval may have queued an email


# ---- the queue's own upkeep ---------------------------------------------------------------------------------------


async def retry_stalled(context: JobContext, timestamp: int) -> None:
    """Periodic: the running jobs of workers without a heartbeat for jobs_stalled_after_s (killed, frozen, lost)
    go back to the queue, for a live worker."""
    d = deps(context)
    manager = context.app.job_manager
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=d.settings.jobs_stalled_after_s):
        try:
            await manager.retry_job(job)
            log.warning("jobs.stalled_retried job=%s task=%s dead_worker=%s", job.id, job.task_name, job.worker_id)
        except UniqueViolation:  # its twin (same queueing lock) is waiting already, and does this very work
            await manager.finish_job(job, status=Status.ABORTED, delete_job=False)
            log.warning("jobs.stalled_superseded job=%s task=%s dead_worker=%s", job.id, job.task_name, job.worker_id)
