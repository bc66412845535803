"""Jobs a serving process runs beside the API when mail is on: digests at the reps' local time, the outbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from sqlalchemy.orm import Session, sessionmaker

from lumo.config import Settings
from lumo.digest.mailer import Mailer
from lumo.digest.run import digest_scheduler, send_outbox
from lumo.mail.config import MailConfig
from lumo.mail.providers import Providers

log = logging.getLogger("lumo.api")
OUTBOX_EVERY_SECONDS = 60


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _outbox_loop(session_factory: sessionmaker[Session], mailer: Mailer, mailboxes: Providers) -> None:
    while True:
        try:
            await asyncio.to_thread(lambda: send_outbox(session_factory, mailer, _now(), mailboxes=mailboxes))
        except Exception:  # noqa: BLE001  (the next round retries)
            log.exception("outbox.loop_failed")
        await asyncio.sleep(OUTBOX_EVERY_SECONDS)


@asynccontextmanager
async def mail_jobs(settings: Settings, session_factory: sessionmaker[Session]) -> AsyncIterator[None]:
    """With `digest_at` set (lumo serve --digest-at), send digests and approved emails until shutdown."""
    if not settings.digest_at:
        yield
        return
    mailer = Mailer(settings.smtp_url, settings.mail_from)
    at = dt.time.fromisoformat(settings.digest_at)
    tasks = [
        asyncio.create_task(digest_scheduler(session_factory, mailer, at, clock=_now, sleep=asyncio.sleep)),
        asyncio.create_task(_outbox_loop(session_factory, mailer, Providers(MailConfig.from_settings(settings)))),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
