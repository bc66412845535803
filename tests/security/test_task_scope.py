"""Scope through tasks: a task is shown to whoever sees its owner, but its links only to whoever sees them.

A rep's task on an account of another team used to leak that account's name and invoice number to
the rep's manager (priorities, digest). Import now refuses such links (tests/security/test_import_hardening.py).
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from lumo.crm.lifecycle import AsOf
from lumo.crm.priorities import compute_priorities
from lumo.crm.scope import scope_for_email
from lumo.db.models import User
from lumo.digest.build import build_digest
from tests import factories as f

AS_OF = AsOf(f.TODAY, ZoneInfo("UTC"))


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    """m1's team (u1, u2) and m2's team (u5, owner of Umbrella); u1 has a task on Umbrella and one on Globex."""
    f.basic_book(session)
    f.user(session, "m2", role="manager")
    f.user(session, "u5", manager_id="m2")
    f.account(session, "a5", "u5", name="Umbrella")
    f.contact(session, "c5", "a5")
    secret = f.invoice(session, "a5", contacts=("c5",), days_overdue=-20, number="INV-5555")
    f.task(session, "t-leak", "u1", f.TODAY, account_id="a5", invoice_id=secret.id, title="Call back")
    own = f.invoice(session, "a1", contacts=("c1",), days_overdue=-20, number="INV-1111")
    f.task(session, "t-own", "u1", f.TODAY, account_id="a1", invoice_id=own.id, title="Call Hank")
    session.commit()
    return {"secret": secret}


def task_items(session: Session, email: str) -> dict[str, dict[str, Any]]:
    scope = scope_for_email(session, email)
    return {i.task_id: i.as_json() for i in compute_priorities(session, scope, AS_OF, limit=50) if i.task_id}


@pytest.mark.parametrize("viewer", ["m1@acme.test", "u1@acme.test"])
def test_a_task_on_another_teams_account_shows_neither_its_name_nor_its_invoice(
    session: Session, book: dict[str, Any], viewer: str
) -> None:
    items = task_items(session, viewer)

    leak = items["t-leak"]
    assert leak["account"] is None and leak["invoice_number"] is None
    assert "Umbrella" not in json.dumps(items) and "INV-5555" not in json.dumps(items)
    assert items["t-own"]["account"] == "Globex" and "for invoice INV-1111" in items["t-own"]["reasons"]


def test_the_accounts_own_team_still_sees_the_links(session: Session, book: dict[str, Any]) -> None:
    items = task_items(session, "admin@acme.test")
    assert items["t-leak"]["account"] == "Umbrella" and "for invoice INV-5555" in items["t-leak"]["reasons"]


def test_the_managers_digest_lists_the_task_without_the_other_teams_data(session: Session, book: dict[str, Any]) -> None:
    manager = session.get(User, "m1")
    assert manager is not None

    digest = build_digest(session, manager, f.TODAY)

    tasks = {t["task_id"]: t for t in digest.sections["tasks_due"]["items"]}
    assert (tasks["t-leak"]["account"], tasks["t-leak"]["invoice_number"]) == (None, None)
    assert tasks["t-own"]["account"] == "Globex"
    for text in (digest.text, digest.html, json.dumps(digest.as_json())):
        assert "Umbrella" not in text and "INV-5555" not in text
