"""What an invoice's work is worth today, as an expected loss, from one table of signals (ARCHITECTURE.md section 3).

score = expected loss + cost of delay, in the workspace's base currency:
- expected loss = stake x chance of loss. The stake is the open balance in base currency, weighed up for a key
  account or a renewal near (the relationship is at stake too). The chance of loss comes from the age past due
  (a provision matrix, `Weights.loss_curve`), times the risk of its signals: a broken promise, a stalled
  dispute, a status that still says 'sent', weeks without contact, other overdue invoices on the account.
- cost of delay = the extra expected loss if the item waits `delay_days` more, plus the cost of the money owed
  for that time.
- a record that is wrong (paid but not marked, a draft never sent) costs a small share of its amount.

Each signal in `signals()` both scores and explains: when it applies it multiplies the risk or the stake (or
adds a cost) and says so in words. Nothing else adds to the score, so every reason shown is a reason it ranks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property, lru_cache

from lumo.crm.lifecycle import ZERO, InvoiceRow, days
from lumo.crm.money import format_code

ONE = Decimal(1)


@dataclass(frozen=True)
class Weights:
    """Every number of the ranking, named so a reader can see and tune it here."""

    # Chance of never collecting by days past due: (days, chance) points, linear between, flat after the last.
    loss_curve: tuple[tuple[int, Decimal], ...] = tuple(
        (d, Decimal(p)) for d, p in ((0, "0.01"), (30, "0.05"), (60, "0.12"), (90, "0.20"), (180, "0.35"), (365, "0.50"))
    )
    max_chance: Decimal = Decimal("0.95")
    delay_days: int = 7  # the cost of delay counts one more week of waiting
    capital_rate: Decimal = Decimal("0.08")  # yearly cost of the money owed
    # Risk multipliers
    promise_broken: Decimal = Decimal("2.0")  # a broken promise doubles the chance of loss
    dispute_stalled: Decimal = Decimal("1.5")
    status_not_marked: Decimal = Decimal("1.15")  # the customer may not know it is overdue
    not_viewed: Decimal = Decimal("1.15")  # the customer may never have seen the invoice
    per_quiet_day: Decimal = Decimal("0.01")  # per day without contact (or activity), from quiet_after_days
    quiet_after_days: int = 14
    max_quiet_days: int = 60
    per_other_overdue: Decimal = Decimal("0.08")  # per other overdue invoice of the account, up to max_others
    per_other_broken: Decimal = Decimal("0.15")  # per other broken promise of the account, up to max_others
    max_others: int = 5
    promise_pending: Decimal = Decimal("0.25")  # a promised payment is on its way: wait for it
    # The customer answered: they are listening now, and an unanswered reply costs goodwill.
    customer_replied: Decimal = Decimal("1.5")
    cooldown: Decimal = Decimal("0.4")  # chased in the last cooldown_days: the next touch can wait
    cooldown_days: int = 3
    # Stake multipliers
    key_account: Decimal = Decimal("1.5")
    renewal_near: Decimal = Decimal("1.25")
    renewal_window_days: int = 60
    # Costs of a wrong record, as a share of the invoice's amount
    record_wrong: Decimal = Decimal("0.02")
    # Items
    due_soon_days: int = 3
    task_due: Decimal = Decimal("1.25")  # a task due today weighs its item up by this, and more per day late
    task_per_day_late: Decimal = Decimal("0.05")
    max_task_days: int = 10
    # A task on no listed invoice protects no balance that can be priced: it is worth the median item of the day
    # (so it ranks mid-list, higher the later it is), or this much in an empty book.
    task_empty_book: Decimal = Decimal("1.0")

    @cached_property
    def chances(self) -> tuple[Decimal, ...]:
        """`loss_curve` day by day, computed once per Weights (an lru_cache would hash all the fields per call)."""
        return _chances(self.loss_curve)


@dataclass(slots=True)
class Facts:
    """One invoice as the signals read it: computed once, used for both the score and the words."""

    inv: InvoiceRow
    today: dt.date
    kind: str
    days_overdue: int
    due_in: int
    due_soon: bool
    stale_kinds: tuple[str, ...]
    contacted_days: int | None  # days since the last email or call
    quiet_days: int  # days since the last contact (or status change, without one)
    activity_days: int  # days since the last event, note or status change
    others_overdue: int  # other overdue invoices of the same account in the book
    others_broken: int  # other broken promises of the same account in the book
    status_since: dt.date  # the local day of the last status change
    replied_on: dt.date | None = None  # the local day of a customer's reply the rep has not acted on


@dataclass(frozen=True)
class Signal:
    name: str
    applies: Callable[[Facts], bool]
    words: Callable[[Facts], str]
    risk: Decimal | Callable[[Facts], Decimal] | None = None  # multiplies the chance of loss
    stake: Decimal = Decimal("1.0")  # multiplies what is at stake
    cost: Decimal = Decimal("0.0")  # adds this share of the invoice's amount (in base currency)
    kinds: tuple[str, ...] = ()  # the only kinds of item it can apply to (none: any), to skip the rest quickly


def _money(f: Facts) -> str:
    return format_code(f.inv.balance, f.inv.currency)


def _headline(f: Facts) -> str:
    if f.days_overdue:
        return f"{_money(f)} overdue {days(f.days_overdue)}"
    past_due = (f.today - f.inv.due_date).days
    if f.inv.status == "disputed" and past_due > 0:
        return f"{_money(f)} disputed, due {f.inv.due_date.isoformat()} ({past_due} days ago)"
    if f.due_soon:
        when = "today" if f.due_in == 0 else f"in {days(f.due_in)}"
        return f"{_money(f)} due {when} ({f.inv.due_date.isoformat()})"
    if f.inv.status == "draft":
        return f"{_money(f)} draft, due {f.inv.due_date.isoformat()}"
    return f"{_money(f)} open"


def _quiet(days: int, w: Weights) -> Decimal:
    return 1 + w.per_quiet_day * min(days, w.max_quiet_days)


def _others_words(f: Facts) -> str:
    parts = []
    if f.others_overdue:
        parts.append(f"{f.others_overdue} other overdue invoice{'s' if f.others_overdue != 1 else ''}")
    if f.others_broken:
        parts.append(f"{f.others_broken} other broken promise{'s' if f.others_broken != 1 else ''}")
    return f"{f.inv.account_name} has {' and '.join(parts)}"


def _ago(count: int | None) -> str:
    return f"{days(count or 0)} ago"


@lru_cache(maxsize=8)
def signals(w: Weights) -> tuple[Signal, ...]:
    """The table: in the order the reasons are said."""
    return (
        Signal("headline", lambda f: f.inv.balance > 0, _headline),
        Signal(
            "customer_replied",
            lambda f: f.kind == "customer_replied",
            lambda f: (
                f"customer replied by email on {f.replied_on.isoformat() if f.replied_on else 'a recent day'}: chasing waits"
            ),
            risk=w.customer_replied,
            kinds=("customer_replied",),
        ),
        Signal(
            "promise_broken",
            lambda f: f.kind == "promise_broken",
            lambda f: f"promise to pay by {f.inv.promise_to_pay_date} broken",
            risk=w.promise_broken,
            kinds=("promise_broken",),
        ),
        Signal(
            "dispute_stalled",
            lambda f: "dispute_stalled" in f.stale_kinds,
            lambda f: f"dispute stalled: {f.inv.dispute_reason or 'no reason recorded'}",
            risk=w.dispute_stalled,
            kinds=("dispute_stalled", "promise_broken"),
        ),
        Signal(
            "dispute_open",  # not stalled yet: said, so the rep knows someone has to settle it
            lambda f: f.kind == "dispute_open",
            lambda f: f"dispute open since {f.status_since.isoformat()}: {f.inv.dispute_reason or 'no reason recorded'}",
            kinds=("dispute_open",),
        ),
        Signal(
            "overdue_not_marked",
            lambda f: "overdue_not_marked" in f.stale_kinds,
            lambda f: f"status still '{f.inv.status}'",
            risk=w.status_not_marked,
            kinds=("overdue", "promise_broken"),
        ),
        Signal(
            "paid_not_marked",
            lambda f: "paid_not_marked" in f.stale_kinds,
            lambda f: f"paid in full ({format_code(f.inv.amount_paid, f.inv.currency)}) but status '{f.inv.status}'",
            cost=w.record_wrong,
            kinds=("stale_status",),  # nothing left to pay: neither overdue nor a broken promise
        ),
        Signal(
            "draft_not_sent",
            lambda f: "draft_not_sent" in f.stale_kinds,
            lambda f: f"draft not sent since {f.inv.issue_date.isoformat()}",
            cost=w.record_wrong,
            kinds=("stale_status",),  # a draft is not open: neither overdue nor a broken promise
        ),
        Signal(
            "partial_not_marked",
            lambda f: "partial_not_marked" in f.stale_kinds,
            lambda f: f"partly paid ({format_code(f.inv.amount_paid, f.inv.currency)}) but status '{f.inv.status}'",
            cost=w.record_wrong,
            kinds=("overdue", "promise_broken", "stale_status"),
        ),
        Signal(
            "sent_not_viewed",
            lambda f: "sent_not_viewed" in f.stale_kinds,
            lambda f: f"sent {_ago((f.today - f.status_since).days)} and never viewed",
            risk=w.not_viewed,
        ),
        Signal(
            "no_recent_activity",  # on a stale-status item; otherwise "no contact in" says it
            lambda f: "no_recent_activity" in f.stale_kinds and f.kind == "stale_status",
            lambda f: f"no activity in {days(f.activity_days)}",
            risk=lambda f: _quiet(f.activity_days, w),
            kinds=("stale_status",),
        ),
        Signal("key_account", lambda f: f.inv.account_tier == "key", lambda f: "key account", stake=w.key_account),
        Signal(
            "renewal_near",
            lambda f: f.inv.renewal_date is not None and 0 <= (f.inv.renewal_date - f.today).days <= w.renewal_window_days,
            lambda f: f"renewal on {f.inv.renewal_date.isoformat() if f.inv.renewal_date else ''}",
            stake=w.renewal_near,
        ),
        Signal(
            "no_contact",
            lambda f: f.quiet_days >= w.quiet_after_days and f.kind != "stale_status",
            lambda f: f"no contact in {days(f.quiet_days)}",
            risk=lambda f: _quiet(f.quiet_days, w),
            kinds=("overdue", "promise_broken", "dispute_stalled", "dispute_open", "due_soon"),
        ),
        Signal(
            "account_history",
            lambda f: bool(f.others_overdue or f.others_broken),
            _others_words,
            risk=lambda f: (
                1
                + w.per_other_overdue * min(f.others_overdue, w.max_others)
                + w.per_other_broken * min(f.others_broken, w.max_others)
            ),
        ),
        Signal(
            "promise_pending",
            lambda f: f.inv.promise_to_pay_date is not None and f.inv.promise_to_pay_date >= f.today,  # promise_pending
            lambda f: f"promised to pay by {f.inv.promise_to_pay_date}",
            risk=w.promise_pending,
        ),
        Signal(
            "cooldown",
            lambda f: f.contacted_days is not None and f.contacted_days < w.cooldown_days and f.kind != "customer_replied",
            lambda f: f"contacted {_ago(f.contacted_days)}",
            risk=w.cooldown,
        ),
    )


KINDS = ("customer_replied", "promise_broken", "overdue", "dispute_stalled", "stale_status", "dispute_open", "due_soon")


@lru_cache(maxsize=8)
def signals_for(w: Weights) -> dict[tuple[str, bool], tuple[Signal, ...]]:
    """The signals that can apply to a kind of item, with a balance left (True) or not: with nothing left to
    pay a risk changes nothing, so only the signals that still score are said."""
    return {
        (kind, owed): tuple(s for s in signals(w) if (not s.kinds or kind in s.kinds) and (owed or s.risk is None))
        for kind in KINDS
        for owed in (True, False)
    }


def chance_of_loss(days_past_due: int, w: Weights) -> Decimal:
    """The provision matrix: linear between the points of `loss_curve`, flat after the last."""
    table = w.chances
    return table[min(max(days_past_due, 0), len(table) - 1)]


def _chances(points: tuple[tuple[int, Decimal], ...]) -> tuple[Decimal, ...]:
    """The chance for each day from 0 to the curve's last point."""
    out = []
    for day in range(points[-1][0] + 1):
        chance = points[0][1]
        for (d0, p0), (d1, p1) in zip(points, points[1:], strict=False):
            if d0 <= day <= d1:
                chance = p0 + (p1 - p0) * (day - d0) / (d1 - d0)
                break
        out.append(chance)
    return tuple(out)


def value(f: Facts, fired: tuple[Signal, ...], balance_base: Decimal, amount_base: Decimal, w: Weights) -> Decimal:
    """Expected loss plus cost of delay (and the cost of a wrong record), in base currency."""
    risk, weight, cost = ONE, ONE, ZERO
    for s in fired:
        r = s.risk
        if r is not None:
            risk *= r if isinstance(r, Decimal) else r(f)
        weight *= s.stake
        cost += s.cost * amount_base
    age = max(-f.due_in, 0)
    # The expected loss now plus its growth over the delay is the expected loss at the end of the delay.
    later = min(chance_of_loss(age + w.delay_days, w) * risk, w.max_chance)
    carrying = balance_base * w.capital_rate * w.delay_days / 365
    return weight * (balance_base * later + cost) + carrying


def task_weight(days_late: int, w: Weights) -> Decimal:
    """How much a task due (today or late) weighs its item up: the rep's own commitment, more the later it is."""
    return w.task_due + w.task_per_day_late * min(days_late, w.max_task_days)
