"""The invoice lifecycle (ARCHITECTURE.md, domain rules): statuses, open, overdue, days overdue, aging buckets.

The status and bucket names are defined here once; every schema, query and rule imports them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from lumo.crm.errors import InvalidInput

InvoiceStatus = Literal["draft", "sent", "viewed", "partially_paid", "paid", "overdue", "disputed", "void", "written_off"]
STATUSES: tuple[InvoiceStatus, ...] = get_args(InvoiceStatus)
OPEN_STATUSES: frozenset[InvoiceStatus] = frozenset({"sent", "viewed", "partially_paid", "overdue", "disputed"})
CLOSED_STATUSES: frozenset[InvoiceStatus] = frozenset({"paid", "void", "written_off"})
# Statuses any rule of priorities, staleness or drafts can act on.
ACTIONABLE_STATUSES: frozenset[InvoiceStatus] = OPEN_STATUSES | {"draft"}
# Open statuses whose invoice can be overdue: a disputed one is not chased.
CHASEABLE_STATUSES: frozenset[InvoiceStatus] = OPEN_STATUSES - {"disputed"}

Bucket = Literal["current", "1-30", "31-60", "61-90", "90+"]
BUCKETS: tuple[Bucket, ...] = get_args(Bucket)
OVERDUE_BUCKETS: tuple[Bucket, ...] = BUCKETS[1:]


ZERO = Decimal("0")
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 1), dt.date(2200, 12, 31)


def parse_day(value: str, name: str = "date") -> dt.date:
    """A YYYY-MM-DD day from a person or a client, within the years the rules can count in."""
    try:
        day = dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"bad {name} {value!r}: use YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(f"bad {name} {value!r}: must be between {FIRST_DAY} and {LAST_DAY}")
    return day


@dataclass(frozen=True)
class AsOf:
    """The day it is for the person asking, in their time zone."""

    today: dt.date
    tz: ZoneInfo

    def local_date(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.tz).date()

    def days_since(self, moment: dt.datetime) -> int:
        return (self.today - self.local_date(moment)).days

    @classmethod
    def at(cls, now: dt.datetime, tz: ZoneInfo) -> AsOf:
        return cls(now.astimezone(tz).date(), tz)

    @classmethod
    def given(cls, date: str | None, now: dt.datetime, tz: ZoneInfo) -> AsOf:
        """The day a request names (YYYY-MM-DD), or today in `tz` at `now`."""
        return cls.at(now, tz) if date is None else cls(parse_day(date), tz)


@dataclass(slots=True, eq=True)
class InvoiceRow:
    """One invoice as the rules see it, joined with its account (treat as read-only: not frozen, because
    frozen dataclasses build slower and thousands are built per request)."""

    id: str
    number: str
    account_id: str
    account_name: str
    account_tier: str
    renewal_date: dt.date | None
    owner_id: str
    issue_date: dt.date
    due_date: dt.date
    amount: Decimal
    currency: str
    amount_paid: Decimal
    status: InvoiceStatus
    status_updated_at: dt.datetime
    promise_to_pay_date: dt.date | None
    dispute_reason: str | None
    payment_url: str | None
    last_activity_at: dt.datetime | None
    last_contacted_at: dt.datetime | None
    customer_replied_at: dt.datetime | None = None  # a reply the rep has not acted on yet (crm.replies)
    balance: Decimal = field(init=False)  # what is left to pay, never negative

    def __post_init__(self) -> None:
        self.balance = max(self.amount - self.amount_paid, ZERO)

    @property
    def last_touch(self) -> dt.datetime:
        """The latest event, note or status change."""
        if self.last_activity_at and self.last_activity_at > self.status_updated_at:
            return self.last_activity_at
        return self.status_updated_at


def is_open(inv: InvoiceRow) -> bool:
    return inv.status in OPEN_STATUSES and inv.balance > 0


def is_overdue(inv: InvoiceRow, today: dt.date) -> bool:
    """Overdue is derived, whatever the status says: open, not disputed, past due, balance left."""
    return is_open(inv) and inv.status != "disputed" and inv.due_date < today


def days_overdue(inv: InvoiceRow, today: dt.date) -> int:
    return (today - inv.due_date).days if is_overdue(inv, today) else 0


def days(count: int) -> str:
    """'1 day', '5 days': a count of days in words."""
    return f"{count} day" if count == 1 else f"{count} days"


def aging_bucket(days: int) -> Bucket:
    if days <= 0:
        return "current"
    if days <= 30:
        return "1-30"
    if days <= 60:
        return "31-60"
    if days <= 90:
        return "61-90"
    return "90+"


def bucket_range(bucket: str) -> tuple[int, int | None]:
    """Days-overdue bounds (inclusive; None open-ended) of a bucket name."""
    ranges: dict[str, tuple[int, int | None]] = {
        "current": (0, 0),
        "1-30": (1, 30),
        "31-60": (31, 60),
        "61-90": (61, 90),
        "90+": (91, None),
    }
    try:
        return ranges[bucket]
    except KeyError:
        raise InvalidInput(f"unknown aging bucket {bucket!r}: use one of {', '.join(BUCKETS)}") from None


def promise_pending(inv: InvoiceRow, today: dt.date) -> bool:
    return inv.promise_to_pay_date is not None and inv.promise_to_pay_date >= today


def promise_broken(inv: InvoiceRow, today: dt.date) -> bool:
    return inv.promise_to_pay_date is not None and inv.promise_to_pay_date < today and is_open(inv)
