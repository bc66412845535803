"""The jobs (lumo.jobs) on the in-process queue, against each database: digests per (rep, local day), DST days,
several ticks (hosts) at once, approved emails retried with backoff and sent once, stalled jobs run again."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from lumo.config import Settings
from lumo.db.models import DigestRun, OutboxEmail
from lumo.db.session import make_engine, make_sessionmaker
from lumo.jobs import queue as queue_module
from lumo.jobs.queue import InProcessConnector, Jobs, build_app, cron_every, postgres_connector
from lumo.jobs.work import Deps
from tests import factories as f
from tests.test_digest import NOW, Smtp, smtp  # noqa: F401  (the SMTP server fixture)


@dataclass
class Clock:
    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Queue:
    """One in-memory queue shared by `hosts` (Jobs objects), and a worker that runs it until it is empty."""

    connector: InProcessConnector
    jobs: Jobs
    deps: Deps
    clock: Clock

    async def tick(self) -> None:
        await self.jobs.app.configure_task("digest_tick").defer_async(timestamp=int(self.clock.now.timestamp()))

    async def run(self) -> None:
        await self.jobs.app.run_worker_async(
            wait=False, install_signal_handlers=False, additional_context={"lumo": self.deps}, delete_jobs="never"
        )

    def jobs_of(self, task: str) -> list[dict[str, object]]:
        return [job for job in self.connector.jobs.values() if job["task_name"] == task]


@pytest.fixture
def queue(db_url: str, session_factory: sessionmaker[Session], smtp: Smtp) -> Queue:  # noqa: F811
    settings = Settings(database_url=db_url, smtp_url=smtp.url, digest_at="07:30", jobs="in-process")
    connector = InProcessConnector()
    app = build_app(connector, settings, periodic=False)
    jobs = Jobs(app, session_factory, mail=True)
    clock = Clock(NOW)
    return Queue(connector, jobs, Deps(settings, session_factory, smtp.mailer(), None, jobs, clock), clock)


def _runs(session_factory: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with session_factory() as s:
        rows = s.execute(select(DigestRun.user_id, DigestRun.day, DigestRun.status).order_by(DigestRun.user_id, DigestRun.day))
        return [(u, d.isoformat(), status) for u, d, status in rows]


def test_cron_lines() -> None:
    assert cron_every(2) == "* * * * * */2"
    assert cron_every(60) == "*/1 * * * *"
    assert cron_every(300) == "*/5 * * * *"


async def test_a_tick_queues_one_digest_per_due_rep_and_two_ticks_at_once_queue_it_once(
    queue: Queue,
    session_factory: sessionmaker[Session],
    smtp: Smtp,  # noqa: F811
) -> None:
    with session_factory() as s:
        f.workspace(s)
        f.user(s, "ny", tz="America/New_York")
        f.user(s, "tk", tz="Asia/Tokyo")
        s.commit()
    async with queue.jobs.app.open_async():
        queue.clock.now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)  # 07:00 in New York, 21:00 in Tokyo
        await queue.tick()
        await queue.run()
        assert [job["args"] for job in queue.jobs_of("send_digest")] == [{"user_id": "tk", "day": "2026-11-25"}]

        queue.clock.now = dt.datetime(2026, 11, 25, 12, 31, tzinfo=dt.UTC)  # 07:31 in New York
        # Two hosts' ticks before any worker runs: the (rep, local day) queueing lock keeps one job.
        await queue.jobs.defer_digests([("ny", dt.date(2026, 11, 25))])
        await queue.jobs.defer_digests([("ny", dt.date(2026, 11, 25))])
        await queue.run()
        assert [job["args"]["user_id"] for job in queue.jobs_of("send_digest")] == ["tk", "ny"]  # type: ignore[index]

        await queue.tick()  # later the same day, a restart: both are sent, nothing is due
        await queue.run()
        assert len(queue.jobs_of("send_digest")) == 2
    assert smtp.inbox.to() == ["ny@acme.test", "tk@acme.test"]
    assert _runs(session_factory) == [("ny", "2026-11-25", "sent"), ("tk", "2026-11-25", "sent")]


async def test_dst_days_send_one_digest_on_the_local_day(
    queue: Queue,
    session_factory: sessionmaker[Session],
    smtp: Smtp,  # noqa: F811
) -> None:
    """New York: 02:30 does not exist on 2026-03-08 (02:00 -> 03:00) and 01:30 happens twice on 2026-11-01."""
    with session_factory() as s:
        f.workspace(s)
        f.user(s, "ny", tz="America/New_York")
        s.commit()
    async with queue.jobs.app.open_async():
        queue.deps.settings.digest_at = "02:30"
        queue.clock.now = dt.datetime(2026, 3, 8, 6, 59, tzinfo=dt.UTC)  # 01:59 EST
        await queue.tick()
        await queue.run()
        assert queue.jobs_of("send_digest") == []
        queue.clock.now = dt.datetime(2026, 3, 8, 7, 0, tzinfo=dt.UTC)  # 03:00 EDT: 02:30 was skipped, it is past
        await queue.tick()
        await queue.run()
        assert _runs(session_factory) == [("ny", "2026-03-08", "sent")]

        queue.deps.settings.digest_at = "01:30"
        for hour in (5, 6):  # 01:30 EDT, then 01:30 EST an hour later: the same local day, one digest
            queue.clock.now = dt.datetime(2026, 11, 1, hour, 30, tzinfo=dt.UTC)
            await queue.tick()
            await queue.run()
        queue.clock.now = dt.datetime(2026, 11, 2, 6, 29, tzinfo=dt.UTC)  # 01:29 EST the next day: not yet
        await queue.tick()
        await queue.run()
    assert _runs(session_factory) == [("ny", "2026-03-08", "sent"), ("ny", "2026-11-01", "sent")]
    assert smtp.inbox.to() == ["ny@acme.test", "ny@acme.test"]


async def test_an_approved_email_is_retried_with_backoff_and_sent_once(
    queue: Queue,
    session_factory: sessionmaker[Session],
    smtp: Smtp,  # noqa: F811
) -> None:
    with session_factory() as s:
        f.workspace(s)
        f.user(s, "u1")
        f.outbox_email(s, [], subject="Reminder", body="Hello", at=NOW)
        s.commit()
    smtp.inbox.transient = 3  # the three tries of the first run (the mailer retries in a run) answer 451
    async with queue.jobs.app.open_async():
        assert await queue.jobs.defer_emails() == 1
        assert await queue.jobs.defer_emails() == 0  # one job per email, however often it is asked
        await queue.run()
        [job] = queue.jobs_of("send_email")
        assert job["status"] == "todo" and job["attempts"] == 1  # retried, not before its backoff
        scheduled = job["scheduled_at"]
        assert isinstance(scheduled, dt.datetime) and scheduled > dt.datetime.now(dt.UTC)
        job["scheduled_at"] = None  # the backoff has passed
        await queue.run()
        assert job["status"] == "succeeded"
        await queue.jobs.defer_emails()  # the sweep after: nothing queued any more
        await queue.run()
    assert [str(m["Subject"]) for m in smtp.inbox.messages] == ["Reminder"]
    with session_factory() as s:
        [email] = s.scalars(select(OutboxEmail)).all()
        assert (email.status, email.attempts) == ("sent", 2)


async def test_the_stalled_job_of_a_dead_worker_runs_again(
    queue: Queue,
    session_factory: sessionmaker[Session],
    smtp: Smtp,  # noqa: F811
) -> None:
    with session_factory() as s:
        f.workspace(s)
        f.user(s, "u1")
        f.outbox_email(s, [], subject="Reminder", body="Hello", at=NOW)
        s.commit()
    async with queue.jobs.app.open_async():
        await queue.jobs.defer_emails()
        [job] = queue.jobs_of("send_email")
        dead = await queue.connector.register_worker_one()  # a worker took the job, then died before sending
        job["status"], job["worker_id"] = "doing", dead["worker_id"]
        queue.connector.workers[dead["worker_id"]] = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        await queue.jobs.app.configure_task("retry_stalled").defer_async(timestamp=0)
        await queue.run()
        assert job["status"] == "succeeded"
    assert [str(m["Subject"]) for m in smtp.inbox.messages] == ["Reminder"]


async def test_a_slack_answer_whose_worker_died_is_answered_by_the_next_one(
    db_url: str,
    session_factory: sessionmaker[Session],
    queue: Queue,
) -> None:
    from dataclasses import replace

    from lumo.compose import open_lumo
    from lumo.db.models import User
    from lumo.slack.client import SlackClient
    from lumo.slack.handlers import SlackRuntime
    from tests.agent_support import build_book
    from tests.test_slack import SlackStandIn

    with session_factory() as s:
        build_book(s)
        s.get_one(User, "u1").slack_user_id = "UDANA"
        s.commit()
    with SlackStandIn() as slack_api:
        async with open_lumo(db_url, env={}) as lumo, queue.jobs.app.open_async():
            runtime = SlackRuntime(lumo, lumo.session_factory, SlackClient("xoxb-test", slack_api.url))
            queue.deps = replace(queue.deps, slack=runtime)
            message = {"user": "UDANA", "channel": "D1", "text": "what should I do today?", "thread_ts": "1764080000.000100"}
            await queue.jobs.defer_slack("message", message, NOW)
            [job] = queue.jobs_of("slack_answer")
            dead = await queue.connector.register_worker_one()  # taken by a worker that died mid-answer
            job["status"], job["worker_id"] = "doing", dead["worker_id"]
            queue.connector.workers[dead["worker_id"]] = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
            await queue.run()
            assert slack_api.posts() == []  # nothing runs a job another worker holds
            await queue.jobs.app.configure_task("retry_stalled").defer_async(timestamp=0)
            await queue.run()
            assert job["status"] == "succeeded"
        [post] = slack_api.posts()
    assert post["thread_ts"] == "1764080000.000100" and "INV-1042" in post["text"]


async def test_a_large_digest_tick_refreshes_the_job_tables_statistics(
    pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL plans each job's fetch from the statistics of procrastinate_jobs: a tick that queues many jobs
    refreshes them (ANALYZE), so the workers' fetches are not planned for the empty table of before the tick."""
    monkeypatch.setattr(queue_module, "ANALYZE_AFTER", 3)
    engine = make_engine(pg_database_url)
    try:

        def reltuples() -> float:
            with engine.connect() as conn:
                query = text("SELECT reltuples FROM pg_class WHERE relname = 'procrastinate_jobs'")
                return float(conn.execute(query).scalar_one())

        with engine.begin() as conn:
            conn.execute(text("TRUNCATE procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs"))
        assert reltuples() == -1  # never analyzed since the TRUNCATE
        settings = Settings(database_url=pg_database_url)
        app = build_app(postgres_connector(pg_database_url, max_size=2), settings, periodic=False)
        jobs = Jobs(app, make_sessionmaker(engine), mail=True)
        async with app.open_async():
            assert await jobs.defer_digests([("a", dt.date(2026, 11, 25)), ("b", dt.date(2026, 11, 25))]) == 2
            assert reltuples() == -1  # under the threshold: left to autovacuum
            due = [(user, dt.date(2026, 11, 26)) for user in ("a", "b", "c")]
            assert await jobs.defer_digests(due) == 3
            assert reltuples() == 5
            assert await jobs.defer_digests(due) == 0  # all waiting already: nothing queued, nothing analyzed
    finally:
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs"))
        engine.dispose()
