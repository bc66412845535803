from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from lumo.crm.lifecycle import AsOf
from lumo.crm.stale import findings_for
from tests.factories import NOON, TODAY, row

D = dt.timedelta
AS_OF = AsOf(TODAY, ZoneInfo("UTC"))


def kinds(**overrides: object) -> list[str]:
    return [f.kind for f in findings_for(row(**overrides), AS_OF)]


def test_fresh_invoice_due_today_has_no_findings() -> None:
    assert kinds() == []


def test_overdue_but_status_still_sent_is_overdue_not_marked() -> None:
    assert "overdue_not_marked" in kinds(due_date=TODAY - D(days=2), status="viewed")
    assert "overdue_not_marked" not in kinds(due_date=TODAY - D(days=2), status="overdue")


def test_payments_covering_the_amount_but_not_paid_is_paid_not_marked() -> None:
    found = findings_for(row(amount_paid=Decimal("1000.00"), status="partially_paid"), AS_OF)
    assert [f.kind for f in found] == ["paid_not_marked"]
    assert "USD 1,000.00" in found[0].evidence and found[0].fix == "Mark it paid"


def test_no_activity_for_more_than_14_days() -> None:
    assert "no_recent_activity" not in kinds(status_updated_at=NOON - D(days=14), due_date=TODAY + D(days=10))
    assert "no_recent_activity" in kinds(status_updated_at=NOON - D(days=15), due_date=TODAY + D(days=10))


def test_recent_note_counts_as_activity() -> None:
    assert "no_recent_activity" not in kinds(status_updated_at=NOON - D(days=40), last_activity_at=NOON - D(days=2))


def test_draft_more_than_7_days_after_issue_is_draft_not_sent() -> None:
    assert "draft_not_sent" not in kinds(status="draft", issue_date=TODAY - D(days=7))
    assert "draft_not_sent" in kinds(status="draft", issue_date=TODAY - D(days=8))


def test_promise_passed_with_balance_open_is_promise_broken() -> None:
    assert "promise_broken" not in kinds(promise_to_pay_date=TODAY)
    assert "promise_broken" in kinds(promise_to_pay_date=TODAY - D(days=1))
    assert "promise_broken" not in kinds(promise_to_pay_date=TODAY - D(days=1), amount_paid=Decimal("1000"), status="paid")


def test_dispute_without_activity_is_stalled() -> None:
    old = NOON - D(days=20)
    assert kinds(status="disputed", status_updated_at=old, dispute_reason="wrong seats") == ["dispute_stalled"]
    assert kinds(status="disputed", status_updated_at=NOON - D(days=3)) == []
