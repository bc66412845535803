from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from lumo.crm.lifecycle import AsOf, aging_bucket, days_overdue, is_open, is_overdue
from tests.factories import TODAY, row

D = dt.timedelta


def test_invoice_due_today_is_not_overdue() -> None:
    assert not is_overdue(row(due_date=TODAY), TODAY)


def test_invoice_due_yesterday_is_one_day_overdue() -> None:
    inv = row(due_date=TODAY - D(days=1))
    assert is_overdue(inv, TODAY) and days_overdue(inv, TODAY) == 1


def test_overdue_is_derived_whatever_the_status_says() -> None:
    for status in ("sent", "viewed", "partially_paid", "overdue"):
        assert is_overdue(row(status=status, due_date=TODAY - D(days=5)), TODAY)


def test_disputed_invoice_is_open_but_not_overdue() -> None:
    inv = row(status="disputed", due_date=TODAY - D(days=40))
    assert is_open(inv) and not is_overdue(inv, TODAY)


def test_partial_payment_leaves_the_rest_overdue() -> None:
    inv = row(due_date=TODAY - D(days=3), status="partially_paid", amount_paid=Decimal("400.00"))
    assert inv.balance == Decimal("600.00") and is_overdue(inv, TODAY)


def test_payments_covering_the_amount_close_the_balance() -> None:
    inv = row(due_date=TODAY - D(days=3), amount_paid=Decimal("1000.00"))
    assert inv.balance == 0 and not is_open(inv) and not is_overdue(inv, TODAY)


def test_overpayment_gives_zero_balance_not_negative() -> None:
    assert row(amount_paid=Decimal("1200.00")).balance == Decimal("0")


@pytest.mark.parametrize("status", ["paid", "void", "written_off", "draft"])
def test_closed_or_draft_invoices_are_never_overdue(status: str) -> None:
    assert not is_overdue(row(status=status, due_date=TODAY - D(days=90)), TODAY)


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"), (61, "61-90"), (90, "61-90"), (91, "90+")],
)
def test_aging_buckets_at_their_boundaries(days: int, bucket: str) -> None:
    assert aging_bucket(days) == bucket


def test_due_date_overdue_in_one_time_zone_and_not_in_another() -> None:
    # 02:00 UTC on Nov 25 is still Nov 24 in New York but already Nov 25 in Tokyo.
    now = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
    inv = row(due_date=dt.date(2026, 11, 24))
    new_york = AsOf.at(now, ZoneInfo("America/New_York"))
    tokyo = AsOf.at(now, ZoneInfo("Asia/Tokyo"))
    assert not is_overdue(inv, new_york.today)
    assert is_overdue(inv, tokyo.today) and days_overdue(inv, tokyo.today) == 1
