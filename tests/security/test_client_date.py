"""A client's `date` is the day Lumo believes it is for reads; emails and status changes are checked and worded
against the server's real today (the injected `now`), so a day months ahead cannot make them claim more."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from lumo.agent.service import Lumo
from lumo.crm.lifecycle import AsOf
from lumo.db.models import Invoice, OutboxEmail
from tests import factories as f
from tests.agent_support import AS_OF, NOW, TODAY, build_book, open_lumo, scope_of

AHEAD = AsOf(TODAY + dt.timedelta(days=46), ZoneInfo("UTC"))  # INV-1042 is 38 days overdue today, 84 that day
SEND = "Send the reminder for INV-1042"


@pytest.fixture
async def lumo(db_url: str, session: Session, session_factory: sessionmaker[Session]) -> AsyncIterator[Lumo]:
    build_book(session)
    async with open_lumo(db_url, session_factory, None) as opened:
        yield opened


async def ask(lumo: Lumo, session_factory: sessionmaker[Session], as_of: AsOf, message: str = SEND) -> dict[str, Any]:
    return await lumo.ask(scope_of(session_factory, "u1@acme.test"), message, as_of=as_of, now=NOW)


def outbox(session_factory: sessionmaker[Session]) -> list[OutboxEmail]:
    with session_factory() as s:
        return list(s.scalars(select(OutboxEmail)))


def set_invoice(session_factory: sessionmaker[Session], number: str, **values: Any) -> None:
    with session_factory() as s:
        s.execute(update(Invoice).where(Invoice.number == number).values(**values))
        s.commit()


async def test_a_date_months_ahead_cannot_queue_a_final_notice(lumo: Lumo, session_factory: sessionmaker[Session]) -> None:
    result = await ask(lumo, session_factory, AHEAD)
    [action] = result["pending_actions"]
    email = f"{action['args']['subject']}\n{action['args']['body']}"
    assert "84 days" not in email and "final" not in email.lower()
    assert "38 days" in email  # worded against the real today
    scope = scope_of(session_factory, "u1@acme.test")
    await lumo.approve(scope, result["thread_id"], as_of=AHEAD, now=NOW)
    [queued] = outbox(session_factory)
    assert "84 days" not in queued.body and "38 days" in queued.body


async def test_the_same_date_still_answers_reads_about_that_day(lumo: Lumo, session_factory: sessionmaker[Session]) -> None:
    result = await ask(lumo, session_factory, AHEAD, "what should I do today?")
    [big] = [i for i in result["items"] if i.get("invoice_number") == "INV-1042"]
    assert big["days_overdue"] == 84


async def test_a_date_ahead_does_not_skip_a_pending_promise(lumo: Lumo, session_factory: sessionmaker[Session]) -> None:
    set_invoice(session_factory, "INV-1042", promise_to_pay_date=TODAY + dt.timedelta(days=10))
    result = await ask(lumo, session_factory, AHEAD)
    assert result["pending_actions"] == []  # on that day the promise would be broken; today it still stands
    assert outbox(session_factory) == []


async def test_a_date_ahead_does_not_skip_the_cooldown(
    lumo: Lumo, session: Session, session_factory: sessionmaker[Session]
) -> None:
    f.email_sent(session, session.scalars(select(Invoice).where(Invoice.number == "INV-1042")).one(), days_ago=1)
    session.commit()
    result = await ask(lumo, session_factory, AHEAD)
    assert result["pending_actions"] == []
    assert outbox(session_factory) == []


async def test_a_decision_dated_ahead_is_checked_against_today(lumo: Lumo, session_factory: sessionmaker[Session]) -> None:
    result = await ask(lumo, session_factory, AS_OF)
    assert [a["tool"] for a in result["pending_actions"]] == ["send_email"]
    # Meanwhile the customer promised to pay in 10 days: approving "as of" a day after that must not send.
    set_invoice(session_factory, "INV-1042", promise_to_pay_date=TODAY + dt.timedelta(days=10))
    scope = scope_of(session_factory, "u1@acme.test")
    done = await lumo.approve(scope, result["thread_id"], as_of=AHEAD, now=NOW)
    assert outbox(session_factory) == []
    assert "promise_pending" in done["reply"]
