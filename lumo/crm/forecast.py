"""Expected vs collected cash: when each open invoice should be paid, by week and currency, with reasons.

An open invoice's expected pay date is its due date plus its account's amount-weighted average delay over
its paid invoices (delay = the day the balance cleared minus the due date); an account with fewer than
`MIN_PAID` paid invoices takes its segment's (tier's) average, then the book's, then no delay. A promise to
pay still ahead replaces it. An invoice already later than expected is expected when its account's paid
invoices that were as late were paid on average (the book's when the account has little history); later than
its account ever paid, it is doubtful and not counted on. One more than
`AT_RISK_DAYS` past due is not counted on at all: it is the share at risk. Beside it: cash collected per past
week, the simple DSO and the countback DSO. Everything is computed from the rows and `today` handed in.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm import dso
from lumo.crm.errors import InvalidInput
from lumo.crm.health import last_payment_dates
from lumo.crm.invoices import fetch_rows, rows_query
from lumo.crm.lifecycle import AsOf, InvoiceRow, is_open
from lumo.crm.money import FxTable, amount_str, format_code, load_fx
from lumo.crm.scope import Scope
from lumo.db.models import Account, Invoice, Payment

MIN_PAID = 3  # paid invoices an account needs before its own average is trusted
AT_RISK_DAYS = 90  # past due by more than this: at risk, not expected
MAX_WEEKS = 52
COUNTBACK_MAX_DAYS = 3650
ZERO = Decimal("0")


# --- payment behaviour ------------------------------------------------------------------------------


@dataclass
class _Weighted:
    weight: Decimal = ZERO
    total: Decimal = ZERO
    count: int = 0

    def add(self, amount: Decimal, delay: int) -> None:
        self.weight += amount
        self.total += amount * delay
        self.count += 1

    def mean(self) -> Decimal | None:
        return self.total / self.weight if self.weight > 0 else None


@dataclass(frozen=True)
class Delay:
    days: int
    reason: str


@dataclass
class Behaviour:
    """Average delays learnt from paid invoices: per account, per tier (segment), for the whole book."""

    accounts: dict[str, _Weighted] = field(default_factory=lambda: defaultdict(_Weighted))
    tiers: dict[str, _Weighted] = field(default_factory=lambda: defaultdict(_Weighted))
    book: _Weighted = field(default_factory=_Weighted)
    # Every paid invoice's delay with its amount, by delay: what "still open this late" has meant before.
    delays: list[tuple[int, Decimal]] = field(default_factory=list)
    by_account: dict[str, list[tuple[int, Decimal]]] = field(default_factory=lambda: defaultdict(list))
    _tail: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # suffix sums (amount, amount x delay)

    @classmethod
    def learn(cls, rows: Iterable[InvoiceRow], paid_on: Mapping[str, dt.date], before: dt.date) -> Behaviour:
        """From invoices paid before `before` (never what happened after the day the forecast is made)."""
        b = cls()
        for r in rows:
            day = paid_on.get(r.id)
            if r.status != "paid" or day is None or day >= before or r.amount <= 0:
                continue
            delay = (day - r.due_date).days
            b.accounts[r.account_id].add(r.amount, delay)
            b.tiers[r.account_tier].add(r.amount, delay)
            b.book.add(r.amount, delay)
            b.delays.append((delay, r.amount))
            b.by_account[r.account_id].append((delay, r.amount))
        b.delays.sort()
        weight, total = ZERO, ZERO
        b._tail = [(ZERO, ZERO)] * (len(b.delays) + 1)
        for i in range(len(b.delays) - 1, -1, -1):
            weight += b.delays[i][1]
            total += b.delays[i][1] * b.delays[i][0]
            b._tail[i] = (weight, total)
        return b

    def still_late(self, inv: InvoiceRow, late: int) -> Delay | None:
        """For an invoice `late` days past due and later than expected: the amount-weighted average delay of the
        paid invoices that were later than that, its account's (the book's when the account has fewer than
        MIN_PAID). None: its account, with a history, never paid one this late (not counted on)."""
        own = self.by_account.get(inv.account_id, [])
        if len(own) >= MIN_PAID:
            later = [(d, a) for d, a in own if d > late]
            weight = sum((a for _, a in later), ZERO)
            if not later or weight <= 0:
                return None
            days = int((sum((a * d for d, a in later), ZERO) / weight).quantize(Decimal("1"), rounding=ROUND_HALF_EVEN))
            n = len(later)
            return Delay(days, f"{inv.account_name}'s {n} paid invoices as late were paid at {_signed(days)} on average")
        i = bisect.bisect_right(self.delays, (late, Decimal("Infinity")))
        weight, total = self._tail[i]
        count = len(self.delays) - i
        if count < MIN_PAID or weight <= 0:
            return Delay(late, "no paid invoice was as late: this week")
        days = int((total / weight).quantize(Decimal("1"), rounding=ROUND_HALF_EVEN))
        return Delay(days, f"the book's {count} paid invoices as late were paid at {_signed(days)} on average")

    def delay_for(self, inv: InvoiceRow) -> Delay:
        own = self.accounts.get(inv.account_id)
        for source, label in (
            (own, f"{inv.account_name}'s"),
            (self.tiers.get(inv.account_tier), f"the {inv.account_tier} accounts'"),
            (self.book, "the book's"),
        ):
            if source is not None and source.count >= MIN_PAID and (mean := source.mean()) is not None:
                days = int(mean.quantize(Decimal("1"), rounding=ROUND_HALF_EVEN))
                return Delay(days, f"{label} average delay of {_signed(days)} over {source.count} paid invoices")
        return Delay(0, "no paid history yet: the due date")


def _signed(days: int) -> str:
    if days < 0:
        return f"{-days} days early"
    return "1 day" if days == 1 else f"{days} days"


# --- the forecast -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    inv: InvoiceRow
    day: dt.date | None  # None: not expected (at risk, or doubtful)
    reason: str
    doubtful: bool = False  # later than its account ever paid, but not yet AT_RISK_DAYS past due


def expect(inv: InvoiceRow, today: dt.date, behaviour: Behaviour) -> Expected:
    """When this open invoice's balance should come in, and why."""
    late = (today - inv.due_date).days
    if late > AT_RISK_DAYS:
        return Expected(inv, None, f"{late} days past due: at risk, not counted on")
    if inv.promise_to_pay_date is not None and inv.promise_to_pay_date >= today:
        return Expected(inv, inv.promise_to_pay_date, f"promised for {inv.promise_to_pay_date.isoformat()}")
    delay = behaviour.delay_for(inv)
    day = inv.due_date + dt.timedelta(days=delay.days)
    reason = f"due {inv.due_date.isoformat()} + {delay.reason}"
    if day < today:
        again = behaviour.still_late(inv, max(late, 0))
        if again is None:
            why = f"{reason} = {day.isoformat()}, passed; {inv.account_name} never paid an invoice this late"
            return Expected(inv, None, f"{why}: doubtful, not counted on", doubtful=True)
        later = max(inv.due_date + dt.timedelta(days=again.days), today)
        return Expected(inv, later, f"{reason} = {day.isoformat()}, passed; {again.reason}: {later.isoformat()}")
    return Expected(inv, day, f"{reason} = {day.isoformat()}")


def expected_by_week(expected: Iterable[Expected], today: dt.date, weeks: int) -> list[dict[str, Decimal]]:
    """Expected cash per week from today (week 0 = today to today + 6), per currency."""
    out: list[dict[str, Decimal]] = [defaultdict(lambda: ZERO) for _ in range(weeks)]
    for e in expected:
        if e.day is None:
            continue
        week = (e.day - today).days // 7
        if 0 <= week < weeks:
            out[week][e.inv.currency] += e.inv.balance
    return out


def countback_dso(rows: Iterable[InvoiceRow], today: dt.date, fx: FxTable) -> int | None:
    """Days of the latest billing, counted back from today, that the open balance equals (None: nothing open)."""
    open_base = ZERO
    billed: dict[dt.date, Decimal] = defaultdict(lambda: ZERO)
    for r in rows:
        if is_open(r):
            open_base += fx.to_base(r.balance, r.currency)
        if r.status not in ("draft", "void") and r.issue_date <= today:
            billed[r.issue_date] += fx.to_base(r.amount, r.currency)
    if open_base <= 0:
        return None
    left = open_base
    for n in range(COUNTBACK_MAX_DAYS):
        left -= billed.get(today - dt.timedelta(days=n), ZERO)
        if left <= 0:
            return n + 1
    return COUNTBACK_MAX_DAYS


def _totals(by_ccy: Mapping[str, Decimal]) -> dict[str, str]:
    return {c: amount_str(by_ccy[c]) for c in sorted(by_ccy) if by_ccy[c] != 0}


def _week(today: dt.date, k: int) -> tuple[dt.date, dt.date]:
    start = today + dt.timedelta(days=7 * k)
    return start, start + dt.timedelta(days=6)


def _in_words(by_ccy: Mapping[str, Decimal]) -> str:
    return ", ".join(format_code(by_ccy[c], c) for c in sorted(by_ccy) if by_ccy[c] != 0) or "nothing"


def cash_forecast(
    session: Session, scope: Scope, as_of: AsOf, *, weeks: int = 13, detail: int = 5, fx: FxTable | None = None
) -> dict[str, Any]:
    """The caller's book: expected cash per week ahead, collected per week behind, DSO, the share at risk."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise InvalidInput(f"weeks must be between 1 and {MAX_WEEKS}, not {weeks}")
    fx = fx or load_fx(session)
    today = as_of.today
    rows = fetch_rows(session, rows_query(scope))
    paid_on = last_payment_dates(session, [r.id for r in rows if r.status == "paid"], as_of)
    behaviour = Behaviour.learn(rows, paid_on, today)
    expected = [expect(r, today, behaviour) for r in rows if is_open(r)]
    buckets = expected_by_week(expected, today, weeks)
    horizon_end = _week(today, weeks - 1)[1]
    weekly = []
    for k, totals in enumerate(buckets):
        start, end = _week(today, k)
        lines = sorted(
            (e for e in expected if e.day is not None and start <= e.day <= end),
            key=lambda e: (-fx.to_base(e.inv.balance, e.inv.currency), e.inv.number),
        )
        weekly.append(
            {
                "week_start": start.isoformat(),
                "week_end": end.isoformat(),
                "totals": _totals(totals),
                "invoices": len(lines),
                "reasons": [
                    f"{e.inv.number} ({e.inv.account_name}) {format_code(e.inv.balance, e.inv.currency)}: {e.reason}"
                    for e in lines[:detail]
                ],
            }
        )
    later: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for e in expected:
        if e.day is not None and e.day > horizon_end:
            later[e.inv.currency] += e.inv.balance
    risk = [e for e in expected if e.day is None and not e.doubtful]
    doubtful = [e for e in expected if e.doubtful]
    doubtful_by: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for e in doubtful:
        doubtful_by[e.inv.currency] += e.inv.balance
    risk_by: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for e in risk:
        risk_by[e.inv.currency] += e.inv.balance
    open_base = sum((fx.to_base(e.inv.balance, e.inv.currency) for e in expected), ZERO)
    risk_base = sum((fx.to_base(e.inv.balance, e.inv.currency) for e in risk), ZERO)
    share = (risk_base / open_base * 100).quantize(Decimal("0.1")) if open_base > 0 else ZERO
    simple = dso.Dso()
    for r in rows:
        simple.add(r, as_of, fx)
    return {
        "today": today.isoformat(),
        "weeks": weeks,
        "base_currency": fx.base,
        "definition": (
            f"expected pay date = due date + the account's amount-weighted average delay over its paid invoices "
            f"(its tier's, then the book's, with fewer than {MIN_PAID}); a promise to pay ahead replaces it; "
            f"more than {AT_RISK_DAYS} days past due is at risk, not expected"
        ),
        "expected": weekly,
        "expected_total": _totals(_sum_weeks(buckets)),
        "later": {"totals": _totals(later), "reasons": [f"expected after {horizon_end.isoformat()}"]},
        "at_risk": {
            "totals": _totals(risk_by),
            "share_percent": str(share),
            "invoices": len(risk),
            "reasons": [f"{_in_words(risk_by)} over {AT_RISK_DAYS} days past due: {share}% of the open balance in {fx.base}"]
            + [f"{e.inv.number} ({e.inv.account_name}): {e.reason}" for e in risk[:detail]],
        },
        "doubtful": {
            "totals": _totals(doubtful_by),
            "invoices": len(doubtful),
            "reasons": [f"{e.inv.number} ({e.inv.account_name}): {e.reason}" for e in doubtful[:detail]],
        },
        "collected": collected_by_week(session, scope, as_of, weeks),
        "dso": {
            "simple_days": dso.dso_days(simple.open_base, simple.billed_base),
            "countback_days": countback_dso(rows, today, fx),
            "reasons": [
                dso.definition(fx.base),
                "countback DSO = days of the latest billing, counted back from today, that the open balance equals",
            ],
        },
    }


def _sum_weeks(buckets: list[dict[str, Decimal]]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for b in buckets:
        for c, a in b.items():
            total[c] += a
    return total


def collected_by_week(session: Session, scope: Scope, as_of: AsOf, weeks: int) -> list[dict[str, Any]]:
    """Cash received per week behind today (oldest first), per currency; refunds count against it."""
    today = as_of.today
    start = today - dt.timedelta(days=7 * weeks - 1)
    # A day's margin either side: the boundaries are days in the caller's zone, the column is UTC.
    lo = dt.datetime.combine(start - dt.timedelta(days=1), dt.time(0), dt.UTC)
    hi = dt.datetime.combine(today + dt.timedelta(days=2), dt.time(0), dt.UTC)
    rows = session.execute(
        select(Payment.amount, Payment.paid_at, Invoice.currency)
        .join(Invoice, Invoice.id == Payment.invoice_id)
        .join(Account, Account.id == Invoice.account_id)
        .where(scope.account_filter(), Payment.paid_at >= lo, Payment.paid_at < hi)
    ).all()
    buckets: list[dict[str, Decimal]] = [defaultdict(lambda: ZERO) for _ in range(weeks)]
    for amount, paid_at, currency in rows:
        day = as_of.local_date(paid_at)
        back = (today - day).days
        if 0 <= back < 7 * weeks:
            buckets[weeks - 1 - back // 7][currency] += amount
    out = []
    for k, totals in enumerate(buckets):
        end = today - dt.timedelta(days=7 * (weeks - 1 - k))
        out.append(
            {"week_start": (end - dt.timedelta(days=6)).isoformat(), "week_end": end.isoformat(), "totals": _totals(totals)}
        )
    return out
