"""A poison email (a subject with a line break, a recipient that is not one address) never stops the outbox.

It is refused where it is written (the model's draft, the rep's edit, the approval) and, should one
reach the outbox anyway, that row alone fails with its reason while the rest still go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.agent import toolrun
from lumo.crm.drafts import draft_for_invoice
from lumo.crm.errors import InvalidInput
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import scope_for_email
from lumo.db.models import AgentAction, OutboxEmail
from lumo.digest import Mailer, send_outbox
from tests import factories as f
from tests.agent_support import approve, ask, build_book, open_lumo, scope_of
from tests.reliability.smtp_faults import FaultySmtp

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
POISON_SUBJECT = "Reminder: INV-1042\r\nBcc: attacker@evil.test"


@pytest.fixture
def server() -> Iterator[FaultySmtp]:
    smtp = FaultySmtp().start()
    yield smtp
    smtp.stop()


def mailer(server: FaultySmtp) -> Mailer:
    return Mailer(server.url, "Lumo <lumo@lumenbase.test>", timeout=5, sleep=lambda _: None)


def test_a_poison_row_is_marked_failed_with_its_reason_and_the_emails_after_it_still_go(
    session_factory: sessionmaker[Session], server: FaultySmtp
) -> None:
    with session_factory() as s:
        f.basic_book(s)
        first, second, third = (f.invoice(s, "a1", contacts=("c1",), days_overdue=10).number for _ in range(3))
        poison = f.outbox_email(s, [first], subject=POISON_SUBJECT, at=NOW)
        smuggled = f.outbox_email(s, [second], subject="Reminder", to="ap,attacker@evil.test", at=NOW)
        good = f.outbox_email(s, [third], at=NOW)
        s.commit()

    results = send_outbox(session_factory, mailer(server), NOW)

    assert [(r.id, r.status) for r in results] == [(poison, "failed"), (smuggled, "failed"), (good, "sent")]
    assert "subject must be one line" in (results[0].error or "")
    assert "is not one email address" in (results[1].error or "")
    assert [str(m["Subject"]) for m in server.kept] == [f"Reminder: {third}"]
    assert send_outbox(session_factory, mailer(server), NOW) == []  # the next run is not stuck either
    with session_factory() as s:
        assert s.get(OutboxEmail, poison).status == "failed"  # type: ignore[union-attr]


def test_the_model_cannot_propose_an_email_whose_subject_has_a_line_break() -> None:
    tool = toolrun.REGISTRY["send_email"]
    args = {"to": ["c1@customer.test"], "subject": POISON_SUBJECT, "body": "Hello", "invoice_numbers": ["INV-1042"]}

    with pytest.raises(toolrun.ToolCallError, match="subject: .*one line"):
        toolrun.validate(tool, args)


def test_a_template_draft_keeps_its_subject_on_one_line_whatever_the_account_is_called(session: Session) -> None:
    f.basic_book(session)
    f.account(session, "a9", "u1", name="Evil\r\nBcc: attacker@evil.test")
    f.contact(session, "c9", "a9")
    inv = f.invoice(session, "a9", contacts=("c9",), days_overdue=40, amount=Decimal("500.00"))

    draft = draft_for_invoice(session, scope_for_email(session, "u1@acme.test"), inv.number, AsOf(f.TODAY, ZoneInfo("UTC")))

    assert draft.skipped_reason is None and "\r" not in draft.subject and "\n" not in draft.subject


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    return build_book(session)


def _queued(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(OutboxEmail)) or 0


@pytest.mark.parametrize(
    "edit",
    [{"subject": POISON_SUBJECT}, {"cc": ["billing<attacker@evil.test>"]}, {"to": ["ap,attacker@evil.test"]}],
    ids=["subject-line-break", "cc-display-name", "to-list"],
)
async def test_an_edit_that_breaks_the_headers_is_refused_and_queues_nothing(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any], edit: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Send the reminder for INV-1042")
        [action] = out["pending_actions"]
        with pytest.raises(InvalidInput, match=f"the edit is refused and {action['id']} still waits"):
            await approve(lumo, scope, out["thread_id"], action_id=action["id"], edit=edit)
        still = await lumo.result(scope, out["thread_id"])
    assert [a["id"] for a in still["pending_actions"]] == [action["id"]]  # a corrected edit can still send it
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(AgentAction)) == 0
    assert _queued(session_factory) == 0
