"""Account health and revenue at risk (ARCHITECTURE.md section 3)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from lumo.crm.errors import NotFound
from lumo.crm.health import account_health, revenue_at_risk
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import scope_for_email
from tests import factories as f

AS_OF = AsOf(f.TODAY, ZoneInfo("UTC"))


def healths(session: Session, who: str = "u1@acme.test", **kw):  # type: ignore[no-untyped-def]
    return account_health(session, scope_for_email(session, who), AS_OF, **kw)


def test_an_account_with_nothing_wrong_is_good(session: Session) -> None:
    f.basic_book(session)
    f.invoice(session, "a1", contacts=("c1",), days_overdue=-10)
    [h] = healths(session)
    assert (h.score, h.grade, h.reasons) == (100, "good", ["nothing overdue, disputed or stale"])


def test_overdue_disputes_and_broken_promises_lower_the_score_with_reasons(session: Session) -> None:
    f.basic_book(session)
    f.invoice(session, "a1", contacts=("c1",), days_overdue=100, amount=Decimal("3000.00"), status="overdue")
    f.invoice(
        session,
        "a1",
        contacts=("c1",),
        days_overdue=5,
        amount=Decimal("1000.00"),
        status="overdue",
        promise_to_pay_date=f.TODAY - dt.timedelta(days=1),
    )
    f.invoice(session, "a1", contacts=("c1",), days_overdue=-5, amount=Decimal("1000.00"), status="disputed")
    [h] = healths(session)
    assert h.open_base == Decimal("5000.00") and h.overdue_base == Decimal("4000.00")
    assert h.overdue_by_bucket == {"1-30": Decimal("1000.00"), "90+": Decimal("3000.00")}
    assert (h.disputes, h.broken_promises) == (1, 1)
    # 40 * 0.8 + 10 (90+) + 10 (dispute) + 10 (broken promise) = 62 points off
    assert (h.score, h.grade) == (38, "poor")
    assert h.reasons[:4] == [
        "80% of the open balance is overdue (USD 4,000.00)",
        "USD 3,000.00 more than 90 days overdue",
        "1 open dispute",
        "1 broken promise to pay",
    ]


def test_revenue_at_risk_is_overdue_plus_open_balance_of_poor_accounts(session: Session) -> None:
    f.basic_book(session)
    f.account(session, "a3", "u1", name="Hooli")
    f.invoice(session, "a1", contacts=("c1",), days_overdue=100, amount=Decimal("3000.00"), status="overdue")
    f.invoice(
        session,
        "a1",
        contacts=("c1",),
        days_overdue=5,
        amount=Decimal("1000.00"),
        status="overdue",
        promise_to_pay_date=f.TODAY - dt.timedelta(days=1),
    )
    f.invoice(session, "a1", contacts=("c1",), days_overdue=-5, amount=Decimal("1000.00"))  # poor account: counts
    f.invoice(session, "a3", days_overdue=3, amount=Decimal("100.00"), status="overdue")
    f.invoice(session, "a3", days_overdue=-5, amount=Decimal("5000.00"))  # healthy account: does not
    grades = {h.name: h.grade for h in healths(session)}
    assert grades == {"Globex": "poor", "Hooli": "good"}
    risk = revenue_at_risk(healths(session))
    assert risk["base_currency"] == "USD" and risk["total"] == "5100.00"
    assert [(a["account"], a["amount"]) for a in risk["accounts"]] == [("Globex", "5000.00"), ("Hooli", "100.00")]


def test_one_account_by_name_and_another_reps_is_not_found(session: Session) -> None:
    f.basic_book(session)
    f.invoice(session, "a1", contacts=("c1",), days_overdue=10)
    assert [h.name for h in healths(session, account="globex")] == ["Globex"]
    with pytest.raises(NotFound):
        healths(session, account="Initech")
