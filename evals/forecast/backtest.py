"""Backtest of the cash forecast (lumo.crm.forecast) against the naive baseline (pay date = due date).

A seeded book with known payment behaviour: each account has its own habit (prompt, late, very late, or a
defaulter that mostly never pays) and each invoice a day-to-day scatter around it. At each forecast date T
the book is cut as it stood on T (paid before T: history; the rest: open), both methods forecast the open
invoices' cash per week and currency, and the seeded history says what those invoices really paid in the
following 4 and 13 weeks. Errors are in the base currency over (week, currency) cells:
WAPE = sum |forecast - actual| / sum actual, MAPE = mean over cells with cash of |forecast - actual| / actual.

    .venv/bin/python -m evals.forecast.backtest [--accounts 400] [--seeds 1,2,3,4,5,7,11,13] [--dates 6] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lumo.crm.forecast import Behaviour, expect, expected_by_week
from lumo.crm.lifecycle import InvoiceRow
from lumo.crm.money import FxTable

FIRST_T = dt.date(2026, 3, 4)
STEP_DAYS = 28
RATES = {"EUR": Decimal("1.08"), "GBP": Decimal("1.27")}
FX = FxTable("USD", RATES)
NOON = dt.time(12)
DEFAULT_SEEDS = (1, 2, 3, 4, 5, 7, 11, 13)


@dataclass(frozen=True)
class Habit:
    mean_delay: float
    scatter: float
    never: float  # chance an invoice is never paid


def _habit(rng: random.Random) -> Habit:
    kind = rng.random()
    if kind < 0.40:
        return Habit(rng.uniform(-3, 4), 2.0, 0.0)
    if kind < 0.80:
        return Habit(rng.uniform(8, 35), 4.0, 0.01)
    if kind < 0.95:
        return Habit(rng.uniform(40, 80), 7.0, 0.03)
    return Habit(rng.uniform(60, 120), 10.0, 0.8)


@dataclass(frozen=True)
class Seeded:
    row: InvoiceRow  # as it was billed (status filled in per forecast date)
    paid_on: dt.date | None  # None: never paid


def seeded_book(accounts: int, seed: int, start: dt.date, end: dt.date) -> list[Seeded]:
    """Invoices issued from `start` to `end`, each with the day its account's habit says it is paid."""
    rng = random.Random(seed)
    out: list[Seeded] = []
    for a in range(accounts):
        habit = _habit(rng)
        tier = "key" if rng.random() < 0.1 else "standard"
        currency = rng.choices(["USD", "EUR", "GBP"], weights=[70, 20, 10])[0]
        terms = rng.choice([15, 30, 30, 45])
        every = rng.choice([14, 30, 30, 30, 60])
        day = start + dt.timedelta(days=rng.randrange(every))
        size = rng.lognormvariate(7.5, 0.8)
        while day <= end:
            due = day + dt.timedelta(days=terms)
            # Billing is lumpy, as in a real B2B book: invoice sizes vary widely and quarter ends bill more.
            quarter_end = 2.0 if day.month in (3, 6, 9, 12) else 1.0
            amount = Decimal(str(round(size * quarter_end * rng.lognormvariate(0, 0.7), 2))).quantize(Decimal("0.01"))
            paid_on = None
            if rng.random() >= habit.never:
                paid_on = max(day, due + dt.timedelta(days=round(rng.gauss(habit.mean_delay, habit.scatter))))
            row = InvoiceRow(
                id=f"i{len(out)}",
                number=f"BT-{len(out)}",
                account_id=f"a{a}",
                account_name=f"Account {a}",
                account_tier=tier,
                renewal_date=None,
                owner_id="u1",
                issue_date=day,
                due_date=due,
                amount=amount,
                currency=currency,
                amount_paid=Decimal("0"),
                status="sent",
                status_updated_at=dt.datetime.combine(day, NOON, dt.UTC),
                promise_to_pay_date=None,
                dispute_reason=None,
                payment_url=None,
                last_activity_at=None,
                last_contacted_at=None,
            )
            out.append(Seeded(row, paid_on))
            day += dt.timedelta(days=max(7, every + rng.randint(-5, 5)))
    return out


def cut(book: list[Seeded], t: dt.date) -> tuple[list[InvoiceRow], dict[str, dt.date]]:
    """The book as it stood on T: issued by then; paid before T is history, the rest open."""
    rows, paid_on = [], {}
    for s in book:
        if s.row.issue_date > t:
            continue
        if s.paid_on is not None and s.paid_on < t:
            rows.append(_with(s.row, status="paid", amount_paid=s.row.amount))
            paid_on[s.row.id] = s.paid_on
        else:
            rows.append(_with(s.row, status="overdue" if s.row.due_date < t else "sent"))
    return rows, paid_on


def _with(row: InvoiceRow, **changes: Any) -> InvoiceRow:
    fields = {k: getattr(row, k) for k in row.__slots__ if k != "balance"}  # type: ignore[attr-defined]
    fields.update(changes)
    return InvoiceRow(**fields)


Forecaster = Callable[[list[InvoiceRow], dict[str, dt.date], dt.date, int], list[dict[str, Decimal]]]


def lumo_forecast(rows: list[InvoiceRow], paid_on: dict[str, dt.date], t: dt.date, weeks: int) -> list[dict[str, Decimal]]:
    behaviour = Behaviour.learn(rows, paid_on, t)
    return expected_by_week([expect(r, t, behaviour) for r in rows if r.status != "paid"], t, weeks)


def naive_forecast(rows: list[InvoiceRow], paid_on: dict[str, dt.date], t: dt.date, weeks: int) -> list[dict[str, Decimal]]:
    """Paid on the due date; one already past due, this week."""
    out: list[dict[str, Decimal]] = [defaultdict(Decimal) for _ in range(weeks)]
    for r in rows:
        if r.status == "paid":
            continue
        week = max((r.due_date - t).days, 0) // 7
        if week < weeks:
            out[week][r.currency] += r.balance
    return out


def naive_dropping_late(rows: list[InvoiceRow], paid_on: dict[str, dt.date], t: dt.date, weeks: int) -> list[dict[str, Decimal]]:
    """Paid on the due date; one already past due is not expected at all (the other reading of the baseline)."""
    out: list[dict[str, Decimal]] = [defaultdict(Decimal) for _ in range(weeks)]
    for r in rows:
        if r.status == "paid" or r.due_date < t:
            continue
        week = (r.due_date - t).days // 7
        if week < weeks:
            out[week][r.currency] += r.balance
    return out


def actual(book: list[Seeded], t: dt.date, weeks: int) -> list[dict[str, Decimal]]:
    """What the invoices open on T really paid, week by week after T."""
    out: list[dict[str, Decimal]] = [defaultdict(Decimal) for _ in range(weeks)]
    for s in book:
        if s.row.issue_date > t or s.paid_on is None or s.paid_on < t:
            continue
        week = (s.paid_on - t).days // 7
        if week < weeks:
            out[week][s.row.currency] += s.row.amount
    return out


@dataclass
class Errors:
    abs_error: Decimal = Decimal("0")
    actual: Decimal = Decimal("0")
    ape: list[Decimal] | None = None

    def add(self, forecast: list[dict[str, Decimal]], real: list[dict[str, Decimal]]) -> None:
        self.ape = self.ape if self.ape is not None else []
        for f_week, a_week in zip(forecast, real, strict=True):
            for currency in sorted(set(f_week) | set(a_week)):
                f = FX.to_base(f_week.get(currency, Decimal("0")), currency)
                a = FX.to_base(a_week.get(currency, Decimal("0")), currency)
                self.abs_error += abs(f - a)
                self.actual += a
                if a > 0:
                    self.ape.append(abs(f - a) / a)

    def wape(self) -> float:
        return float(self.abs_error / self.actual) if self.actual else 0.0

    def mape(self) -> float:
        return float(sum(self.ape or [], Decimal("0")) / len(self.ape)) if self.ape else 0.0


FORECASTERS: dict[str, Forecaster] = {
    "lumo": lumo_forecast,
    "naive": naive_forecast,
    "naive_dropping_late": naive_dropping_late,
}


def _errors() -> dict[str, Errors]:
    return {name: Errors() for name in FORECASTERS}


def _figures(errors: dict[str, Errors]) -> dict[str, Any]:
    lumo = errors["lumo"]
    # The baseline is the better of its two readings: the comparison never flatters Lumo.
    naive = min(errors["naive"], errors["naive_dropping_late"], key=lambda e: e.wape())
    return {
        "naive_reading": "past due this week" if naive is errors["naive"] else "past due not expected",
        "wape_naive_past_due_this_week": round(errors["naive"].wape(), 4),
        "wape_naive_past_due_dropped": round(errors["naive_dropping_late"].wape(), 4),
        "wape_lumo": round(lumo.wape(), 4),
        "wape_naive": round(naive.wape(), 4),
        "wape_reduction": round(1 - lumo.wape() / naive.wape(), 4) if naive.wape() else 0.0,
        "mape_lumo": round(lumo.mape(), 4),
        "mape_naive": round(naive.mape(), 4),
        "mape_reduction": round(1 - lumo.mape() / naive.mape(), 4) if naive.mape() else 0.0,
    }


def run(accounts: int = 400, seeds: Sequence[int] = (7,), dates: int = 6) -> dict[str, Any]:
    """Errors pooled over every seed's book and every forecast date."""
    forecast_dates = [FIRST_T + dt.timedelta(days=STEP_DAYS * i) for i in range(dates)]
    end = forecast_dates[-1] + dt.timedelta(days=91)
    books = [seeded_book(accounts, seed, FIRST_T - dt.timedelta(days=540), end) for seed in seeds]
    result: dict[str, Any] = {
        "accounts": accounts,
        "seeds": list(seeds),
        "invoices": sum(len(b) for b in books),
        "dates": [d.isoformat() for d in forecast_dates],
    }
    for weeks in (4, 13):
        pooled = _errors()
        per_seed = {}
        for seed, book in zip(seeds, books, strict=True):
            mine = _errors()
            for t in forecast_dates:
                rows, paid_on = cut(book, t)
                real = actual(book, t, weeks)
                for name, forecaster in FORECASTERS.items():
                    f = forecaster(rows, paid_on, t, weeks)
                    pooled[name].add(f, real)
                    mine[name].add(f, real)
            per_seed[seed] = _figures(mine)
        result[f"{weeks}w"] = _figures(pooled)
        reductions = sorted(r["wape_reduction"] for r in per_seed.values())
        result[f"{weeks}w"]["per_seed"] = per_seed
        result[f"{weeks}w"]["wape_reduction_median"] = round(statistics.median(reductions), 4)
        result[f"{weeks}w"]["wape_reduction_worst"] = reductions[0]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.forecast.backtest", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="comma-separated; pooled and per seed")
    parser.add_argument("--dates", type=int, default=6, help="forecast dates, 4 weeks apart")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.accounts < 1 or args.dates < 1:
        parser.error("--accounts and --dates must be at least 1")
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: give integers, comma-separated")
    if not seeds:
        parser.error("--seeds: give at least one")
    result = run(args.accounts, seeds, args.dates)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    dates = ", ".join(result["dates"])
    print(f"{result['invoices']} invoices, {args.accounts} accounts a seed, seeds {args.seeds}, forecasts at {dates}")
    for weeks in ("4w", "13w"):
        r = result[weeks]
        print(
            f"{weeks:>4}: WAPE lumo {r['wape_lumo']:.1%} vs naive {r['wape_naive']:.1%} ({r['wape_reduction']:.0%} lower); "
            f"MAPE lumo {r['mape_lumo']:.1%} vs naive {r['mape_naive']:.1%} ({r['mape_reduction']:.0%} lower); "
            f"naive read as: {r['naive_reading']}"
        )
        seeds_line = ", ".join(f"{seed}: {x['wape_reduction']:.1%}" for seed, x in r["per_seed"].items())
        print(
            f"      WAPE lower by, per seed: {seeds_line}; "
            f"median {r['wape_reduction_median']:.1%}, worst {r['wape_reduction_worst']:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
