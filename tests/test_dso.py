"""DSO per rep and for the team, beside the account figure, with its definition."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from lumo.crm.dso import dso_report
from lumo.crm.health import account_health
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import scope_for_email
from tests import factories as f

AS_OF = AsOf(f.TODAY, ZoneInfo("UTC"))


def _book(session: Session) -> None:
    f.basic_book(session)
    issued = f.TODAY - dt.timedelta(days=30)
    # u1: billed 9,000 in the window, 3,000 of it open -> 30 days
    f.invoice(session, "a1", issue_date=issued, due_date=issued + dt.timedelta(days=30), amount=Decimal("3000.00"))
    f.invoice(
        session,
        "a1",
        issue_date=issued,
        due_date=issued,
        amount=Decimal("6000.00"),
        status="paid",
        amount_paid=Decimal("6000.00"),
    )
    f.invoice(session, "a1", issue_date=issued, due_date=issued, amount=Decimal("500.00"), status="draft")  # not billed
    # u2: billed 1,000, all open -> 90 days
    f.invoice(session, "a2", issue_date=issued, due_date=issued + dt.timedelta(days=30), amount=Decimal("1000.00"))
    session.commit()


def test_a_manager_sees_each_reps_dso_and_the_teams(session: Session) -> None:
    _book(session)
    report = dso_report(session, scope_for_email(session, "m1@acme.test"), AS_OF)
    assert [(r["rep_id"], r["dso_days"]) for r in report["reps"]] == [("u1", 30), ("u2", 90)]
    assert report["team"] == {"dso_days": 36, "open_base": "4000.00", "billed_base": "10000.00"}
    assert report["definition"].startswith("DSO = open balance / amount billed in the last 90 days x 90, in USD")


def test_a_rep_sees_only_their_own_dso(session: Session) -> None:
    _book(session)
    report = dso_report(session, scope_for_email(session, "u1@acme.test"), AS_OF)
    assert [r["rep_id"] for r in report["reps"]] == ["u1"] and report["team"]["dso_days"] == 30


def test_the_account_figure_uses_the_same_definition(session: Session) -> None:
    _book(session)
    [globex] = account_health(session, scope_for_email(session, "u1@acme.test"), AS_OF, account="a1")
    assert globex.dso_days == 30


def test_nothing_billed_in_the_window_has_no_dso(session: Session) -> None:
    f.basic_book(session)
    f.invoice(session, "a1", days_overdue=200)
    session.commit()
    report = dso_report(session, scope_for_email(session, "u1@acme.test"), AS_OF)
    assert report["team"]["dso_days"] is None
