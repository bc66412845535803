"""Expected vs collected cash: when each open invoice should be paid, by week and currency, with reasons.

An open invoice's balance is spread over the days its account has paid before: each payment's delay (the day
it came in minus the due date) weighs its amount, so an invoice paid in instalments counts each at its own
day. An account with n paid invoices is shrunk toward its segment (its tier's, else the book's, read at
PRIOR_POINTS quantiles): its own delays weigh n / (n + SHRINK), the segment's the rest, so a new account takes
its segment's habit and a long history its own. Delays shorter than how late the invoice already is did not
happen and are dropped (the rest renormalised); an account with `MIN_PAID` paid invoices and none as late is
doubtful, not counted on. An account that left invoices unpaid more than `AT_RISK_DAYS` past due is counted on
for only a share of the balance (its paid invoices as late, plus one, against those plus the unpaid, plus
one); the rest is doubtful. A promise to pay still ahead puts the whole balance on its day. More than
`AT_RISK_DAYS` past due is not counted on at all: the share at risk. Beside it: cash collected per past week,
the simple DSO and the countback DSO. Everything is computed from the rows and `today` handed in.
"""

from __future__ import annotations

import datetime as dt
import heapq
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm import dso
from lumo.crm.errors import InvalidInput
from lumo.crm.invoices import fetch_rows, rows_query
from lumo.crm.lifecycle import AsOf, InvoiceRow, is_open
from lumo.crm.money import CENT, FxTable, amount_str, format_code, load_fx
from lumo.crm.scope import Scope
from lumo.db.models import Account, Invoice, Payment

MIN_PAID = 3  # paid invoices an account needs before its own history can call an invoice doubtful
SHRINK = 3  # the segment's history counts as this many of the account's own paid invoices
PRIOR_POINTS = 40  # a segment's delays are read at this many amount-weighted quantiles (the mid-points of 40 bands)
AT_RISK_DAYS = 90  # past due by more than this: at risk, not expected
MAX_WEEKS = 52
COUNTBACK_MAX_DAYS = 3650
ZERO = Decimal("0")
ONE = Decimal("1")


# --- payment behaviour ------------------------------------------------------------------------------


@dataclass
class History:
    """What paid invoices' cash did: each payment's delay (days from the due date to the day it came in) with its
    amount; each paid invoice's delay to the day its balance cleared; the invoices left unpaid more than
    AT_RISK_DAYS past due."""

    delays: list[tuple[int, Decimal]] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)
    unpaid: int = 0
    _shares: list[tuple[int, Decimal]] | None = field(default=None, repr=False)
    _quantiles: list[tuple[int, Decimal]] | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return len(self.cleared)

    @property
    def weight(self) -> Decimal:
        return sum((a for _, a in self.delays), ZERO)

    def shares(self) -> list[tuple[int, Decimal]]:
        """Each distinct delay with its share of the paid amount (computed once, after learning)."""
        if self._shares is None:
            by_delay: dict[int, Decimal] = defaultdict(lambda: ZERO)
            for d, a in self.delays:
                by_delay[d] += a
            weight = self.weight
            self._shares = [(d, a / weight) for d, a in sorted(by_delay.items())] if weight > 0 else []
        return self._shares

    def quantiles(self) -> list[tuple[int, Decimal]]:
        """The delays at PRIOR_POINTS amount-weighted quantiles, 1 / PRIOR_POINTS each (equal ones merged): a
        segment's thousands of paid invoices, summed up in a few points every invoice can be spread over."""
        if self._quantiles is None:
            out: dict[int, Decimal] = defaultdict(lambda: ZERO)
            shares, i, seen = self.shares(), 0, ZERO
            for k in range(PRIOR_POINTS):
                q = Decimal(2 * k + 1) / (2 * PRIOR_POINTS)
                while i < len(shares) - 1 and seen + shares[i][1] < q:
                    seen += shares[i][1]
                    i += 1
                out[shares[i][0]] += ONE / PRIOR_POINTS
            self._quantiles = sorted(out.items())
        return self._quantiles


@dataclass
class Behaviour:
    """Payment histories learnt from the book: per account, per tier (segment), for the whole book."""

    accounts: dict[str, History] = field(default_factory=lambda: defaultdict(History))
    tiers: dict[str, History] = field(default_factory=lambda: defaultdict(History))
    book: History = field(default_factory=History)
    _plans: dict[str, _Plan] = field(default_factory=dict, repr=False)  # per account, once learnt

    @classmethod
    def learn(
        cls,
        rows: Iterable[InvoiceRow],
        paid_on: Mapping[str, dt.date],
        before: dt.date,
        payments: Mapping[str, list[tuple[dt.date, Decimal]]] | None = None,
    ) -> Behaviour:
        """From invoices paid before `before` and those open then (never what happened after that day). With
        `payments` (per invoice: day and amount), an invoice paid in instalments counts each at its own delay."""
        b = cls()
        for r in rows:
            if r.amount <= 0:
                continue
            histories = (b.accounts[r.account_id], b.tiers[r.account_tier], b.book)
            day = paid_on.get(r.id)
            if r.status == "paid" and day is not None and day < before:
                pieces = _instalments(r, (payments or {}).get(r.id, []), day)
                for h in histories:
                    h.delays.extend(((d - r.due_date).days, a) for d, a in pieces)
                    h.cleared.append((day - r.due_date).days)
            elif is_open(r) and (before - r.due_date).days > AT_RISK_DAYS:
                for h in histories:
                    h.unpaid += 1
        return b

    def prior(self, inv: InvoiceRow) -> tuple[History, str] | None:
        """The segment an account with a short history is shrunk toward: its tier's, else the book's."""
        tier = self.tiers.get(inv.account_tier)
        if tier is not None and tier.count >= MIN_PAID:
            return tier, f"the {inv.account_tier} accounts'"
        if self.book.count >= MIN_PAID:
            return self.book, "the book's"
        return None

    def spread(self, inv: InvoiceRow, late: int) -> Spread:
        """The delays this invoice may be paid at, each with its share, given it is unpaid `late` days after its due
        date: its account's paid delays shrunk toward its segment's (an account with n paid invoices weighs
        n / (n + SHRINK)), those earlier than `late` dropped (they did not happen), the rest renormalised."""
        plan = self._plans.get(inv.account_id)
        if plan is None:
            plan = self._plans[inv.account_id] = _Plan.of(self, inv)
        return plan.spread(late)


@dataclass
class _Plan:
    """One account's spread before `late` is known, worked out once per forecast: the points its balance may come
    in at (own delays shrunk toward its segment's, by delay), and each Spread asked for, by where `late` cuts in."""

    own: History
    name: str
    source: str
    ds: list[int]  # the points' delays, ascending
    ws: list[Decimal]  # their weights, as the shrinking summed them
    cleared: list[int]  # the account's paid invoices' delays to the day they cleared, ascending
    spreads: dict[tuple[int, bool, int], Spread] = field(default_factory=dict)
    totals: dict[int, Decimal] = field(default_factory=dict)

    @classmethod
    def of(cls, b: Behaviour, inv: InvoiceRow) -> _Plan:
        own = b.accounts.get(inv.account_id) or History()
        prior = b.prior(inv)
        n = own.count
        own_share = ONE if prior is None else Decimal(n) / Decimal(n + SHRINK) if n else ZERO
        points: dict[int, Decimal] = defaultdict(lambda: ZERO)
        if n:
            for d, share in own.shares():
                points[d] += own_share * share
        if prior is not None and own_share < 1:
            for d, share in prior[0].quantiles():
                points[d] += (ONE - own_share) * share
        paid = f"{n} paid invoice" + ("" if n == 1 else "s")
        if n and prior is not None:
            pct = int((own_share * 100).quantize(ONE, rounding=ROUND_HALF_EVEN))
            source = f"{inv.account_name}'s {paid} ({pct}%) and {prior[1]} {prior[0].count} ({100 - pct}%)"
        elif n:
            source = f"{inv.account_name}'s {paid}"
        elif prior is not None:
            source = f"{prior[1]} {prior[0].count} paid invoices"
        else:
            source = ""  # no points: never said
        ordered = sorted(points.items())
        return cls(own, inv.account_name, source, [d for d, _ in ordered], [w for _, w in ordered], sorted(own.cleared))

    def spread(self, late: int) -> Spread:
        own, n = self.own, len(self.cleared)
        if n >= MIN_PAID and late > 0 and self.cleared[-1] < late:
            return Spread((), f"{self.name} never paid an invoice this late", ONE, doubtful=True)
        if not self.ds:
            said = "no paid history yet: the due date" if late <= 0 else "no paid history yet: today"
            return Spread(((max(late, 0), ONE),), said, ONE, fallback=True)
        start = bisect_left(self.ds, late)
        total = self.totals.get(start)
        if total is None:
            total = self.totals[start] = sum(self.ws[start:], ZERO)
        if start == len(self.ds) or total <= 0:
            return Spread(((late, ONE),), "no paid invoice was as late: today", ONE, fallback=True)
        as_late = late > 0 and start > 0
        paid = n - bisect_left(self.cleared, late) if own.unpaid else -1
        key = (start, as_late, paid)
        spread = self.spreads.get(key)
        if spread is None:
            paying = ONE if own.unpaid == 0 else Decimal(paid + 1) / Decimal(paid + own.unpaid + 1)
            delays = tuple((d, w / total) for d, w in zip(self.ds[start:], self.ws[start:], strict=True))
            reason = f"the delays of {self.source}" + (" as late or later" if as_late else "")
            spread = self.spreads[key] = Spread(delays, reason, paying)
        return spread


def _instalments(r: InvoiceRow, payments: list[tuple[dt.date, Decimal]], cleared: dt.date) -> list[tuple[dt.date, Decimal]]:
    """The invoice's cash as it came in; the whole amount on the day it cleared when the payments do not add up to
    it plainly (a refund or reversal among them, or none known)."""
    if payments and all(a > 0 for _, a in payments) and sum((a for _, a in payments), ZERO) == r.amount:
        return sorted(payments)
    return [(cleared, r.amount)]


_OFFSETS: dict[int, dt.timedelta] = {}  # a delay in days as a timedelta, made once (there are a few hundred)


@dataclass(frozen=True)
class Spread:
    delays: tuple[tuple[int, Decimal], ...]  # (days after the due date, share of what is counted on), shares sum to 1
    reason: str
    paying: Decimal  # the share of the balance counted on at all
    doubtful: bool = False
    fallback: bool = False  # no history to spread over: one day, said in the reason
    # Worked out once, for every invoice spread over it: each delay as a timedelta with the shares summed up to
    # it, and the index of the first delay where that sum reaches one half (the median).
    steps: tuple[tuple[dt.timedelta, Decimal], ...] = field(init=False, repr=False)
    median: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        steps, cum = [], ZERO
        for d, share in self.delays:
            cum += share
            offset = _OFFSETS.get(d)
            if offset is None:
                offset = _OFFSETS[d] = dt.timedelta(days=d)
            steps.append((offset, cum))
        object.__setattr__(self, "steps", tuple(steps))
        object.__setattr__(self, "median", next((i for i, (_, c) in enumerate(steps) if c * 2 >= 1), len(steps) - 1))


def _signed(days: int) -> str:
    if days < 0:
        return f"{-days} days early"
    return "1 day" if days == 1 else f"{days} days"


# --- the forecast -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    inv: InvoiceRow
    day: dt.date | None  # the median day it is expected; None: not expected (at risk, or doubtful)
    reason: str
    doubtful: bool = False  # later than its account ever paid, but not yet AT_RISK_DAYS past due
    parts: tuple[tuple[dt.date, Decimal], ...] = ()  # the balance counted on, spread over the days it may come in

    @property
    def counted(self) -> Decimal:
        return sum((a for _, a in self.parts), ZERO)

    def in_range(self, start: dt.date, end: dt.date) -> Decimal:
        return sum((a for d, a in self.parts if start <= d <= end), ZERO)


def _split(amount: Decimal, due: dt.date, spread: Spread) -> tuple[tuple[dt.date, Decimal], ...]:
    """The amount over the spread's days by their shares, in cents that add up to it exactly (rounded cumulatively)."""
    out, given, quantize = [], ZERO, Decimal.quantize
    for offset, cum in spread.steps:
        upto = quantize(amount * cum, CENT, ROUND_HALF_EVEN)
        if upto != given:
            out.append((due + offset, upto - given))
            given = upto
    return tuple(out)


def expect(inv: InvoiceRow, today: dt.date, behaviour: Behaviour) -> Expected:
    """When this open invoice's balance should come in (spread over the days its account's history says), and why."""
    late = (today - inv.due_date).days
    if late > AT_RISK_DAYS:
        return Expected(inv, None, f"{late} days past due: at risk, not counted on")
    if inv.promise_to_pay_date is not None and inv.promise_to_pay_date >= today:
        day = inv.promise_to_pay_date
        return Expected(inv, day, f"promised for {day.isoformat()}", parts=((day, inv.balance),))
    spread = behaviour.spread(inv, late)
    head = f"due {inv.due_date.isoformat()}" + (f", {late} days past due" if late > 0 else "")
    if spread.doubtful:
        return Expected(inv, None, f"{head}: {spread.reason}: doubtful, not counted on", doubtful=True)
    counted = (inv.balance * spread.paying).quantize(CENT, rounding=ROUND_HALF_EVEN)
    parts = _split(counted, inv.due_date, spread)
    if not parts:
        why = f"{head}: {spread.reason}; counted on at 0%: doubtful, not counted on"
        return Expected(inv, None, why, doubtful=True)
    due = inv.due_date
    lo, hi = spread.delays[0][0], spread.delays[-1][0]
    first, last = due + dt.timedelta(days=lo), due + dt.timedelta(days=hi)
    median = due + dt.timedelta(days=spread.delays[spread.median][0])
    if spread.fallback:
        return Expected(inv, median, f"{head}: {spread.reason} = {median.isoformat()}", parts=parts)
    when = (
        f"{_signed(lo)} = {first.isoformat()}"
        if lo == hi
        else f"{_signed(lo)} to {_signed(hi)}, median {median.isoformat()}: {first.isoformat()} to {last.isoformat()}"
    )
    reason = f"{head} + {spread.reason}: {when}"
    if spread.paying < 1:
        pct = (spread.paying * 100).quantize(ONE, rounding=ROUND_HALF_EVEN)
        unpaid = behaviour.accounts[inv.account_id].unpaid
        left = "1 invoice" if unpaid == 1 else f"{unpaid} invoices"
        reason += f"; counted on at {pct}% ({inv.account_name} left {left} unpaid over {AT_RISK_DAYS} days past due)"
    return Expected(inv, median, reason, parts=parts)


def expected_by_week(expected: Iterable[Expected], today: dt.date, weeks: int) -> list[dict[str, Decimal]]:
    """Expected cash per week from today (week 0 = today to today + 6), per currency."""
    out: list[dict[str, Decimal]] = [defaultdict(lambda: ZERO) for _ in range(weeks)]
    for e in expected:
        for day, amount in e.parts:
            week = (day - today).days // 7
            if 0 <= week < weeks:
                out[week][e.inv.currency] += amount
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
    paid_on, payments = paid_payments(session, [r.id for r in rows if r.status == "paid"], as_of)
    behaviour = Behaviour.learn(rows, paid_on, today, payments)
    expected = [expect(r, today, behaviour) for r in rows if is_open(r)]
    horizon_end = _week(today, weeks - 1)[1]
    # One pass over every invoice's parts: its amount in each week ahead (the lines), and after the horizon.
    buckets: list[dict[str, Decimal]] = [defaultdict(lambda: ZERO) for _ in range(weeks)]
    lines: list[list[tuple[Expected, Decimal]]] = [[] for _ in range(weeks)]
    later: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for e in expected:
        by_week: dict[int, Decimal] = {}
        for day, amount in e.parts:
            k = (day - today).days // 7
            if 0 <= k < weeks:
                by_week[k] = by_week.get(k, ZERO) + amount
            elif k >= weeks:
                later[e.inv.currency] += amount
        for k, part in by_week.items():
            buckets[k][e.inv.currency] += part
            if part > 0:
                lines[k].append((e, part))
    weekly = []
    for k, totals in enumerate(buckets):
        start, end = _week(today, k)
        top = heapq.nsmallest(detail, lines[k], key=lambda ep: (-fx.to_base(ep[1], ep[0].inv.currency), ep[0].inv.number))
        weekly.append(
            {
                "week_start": start.isoformat(),
                "week_end": end.isoformat(),
                "totals": _totals(totals),
                "invoices": len(lines[k]),
                "reasons": [_line(e, part) for e, part in top],
            }
        )

    def largest_first(e: Expected) -> tuple[Decimal, str]:  # the reasons say the biggest first, in any database
        return (-fx.to_base(e.inv.balance, e.inv.currency), e.inv.number)

    risk = sorted((e for e in expected if e.day is None and not e.doubtful), key=largest_first)
    # Doubtful: what is expected of no one (later than its account ever paid) or not counted on of the rest.
    counted = {id(e): e.counted for e in expected}
    doubtful = sorted(
        (e for e in expected if e.doubtful or (e.day is not None and counted[id(e)] < e.inv.balance)), key=largest_first
    )
    doubtful_by: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for e in doubtful:
        doubtful_by[e.inv.currency] += e.inv.balance - counted[id(e)]
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
            f"each balance spread over due date + its account's paid delays (amount-weighted), shrunk toward its "
            f"tier's or the book's (n paid weigh n / (n + {SHRINK})), delays shorter than it is late dropped; a "
            f"promise to pay ahead replaces it; an account that left invoices unpaid over {AT_RISK_DAYS} days is "
            f"counted on for a share; more than {AT_RISK_DAYS} days past due is at risk, not expected"
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


def _line(e: Expected, part: Decimal) -> str:
    whole = format_code(e.inv.balance, e.inv.currency)
    amount = whole if part == e.inv.balance else f"{format_code(part, e.inv.currency)} of {whole}"
    return f"{e.inv.number} ({e.inv.account_name}) {amount}: {e.reason}"


def _sum_weeks(buckets: list[dict[str, Decimal]]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for b in buckets:
        for c, a in b.items():
            total[c] += a
    return total


def paid_payments(
    session: Session, invoice_ids: list[str], as_of: AsOf
) -> tuple[dict[str, dt.date], dict[str, list[tuple[dt.date, Decimal]]]]:
    """The payments of these (paid) invoices, one query per 1,000 through the index on the invoice: each one's
    last payment day (the day in the caller's zone it cleared) and its payments (day and amount), for learning
    instalments."""
    paid_on: dict[str, dt.date] = {}
    payments: dict[str, list[tuple[dt.date, Decimal]]] = defaultdict(list)
    for start in range(0, len(invoice_ids), 1000):
        chunk = invoice_ids[start : start + 1000]
        for invoice_id, amount, paid_at in session.execute(
            select(Payment.invoice_id, Payment.amount, Payment.paid_at).where(Payment.invoice_id.in_(chunk))
        ).all():
            day = as_of.local_date(paid_at)
            payments[invoice_id].append((day, amount))
            if invoice_id not in paid_on or day > paid_on[invoice_id]:
                paid_on[invoice_id] = day
    return paid_on, payments


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
