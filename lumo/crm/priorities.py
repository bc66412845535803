"""Today's priorities: a deterministic, explainable ranking of one person's work (ARCHITECTURE.md section 3).

Each item is worth its expected loss plus the cost of delay, in base currency (`lumo.crm.signals`): the same
table of signals scores an item and says its reasons. A task due today or late weighs up the invoice it is
for (and is said among its reasons); a task on no listed invoice is an item of its own, worth the day's median.
Ties break on (due date, invoice number, task id) so the order never depends on the database.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from lumo.crm import book_cache, stale
from lumo.crm.contacts import primary_contacts
from lumo.crm.invoices import actionable_clause, fetch_rows, rows_query
from lumo.crm.lifecycle import AsOf, InvoiceRow, days, days_overdue, is_open, promise_broken, promise_pending
from lumo.crm.money import FxTable, amount_str, load_fx
from lumo.crm.scope import Scope
from lumo.crm.signals import ONE, Facts, Signal, Weights, signals, signals_for, task_weight, value
from lumo.crm.tasks import task_rows
from lumo.crm.tone import tone_for
from lumo.db.models import Invoice, Task

__all__ = ["Item", "Weights", "compute_priorities", "priorities_json"]

SCORE_STEP = Decimal("0.000001")  # scores are rounded to 6 places
_TaskRow = tuple[str, str, dt.date | None, str | None, str | None, str | None]


@dataclass(slots=True)
class Item:
    kind: str
    score: Decimal
    sort_key: tuple[Any, ...]
    invoice: InvoiceRow | None = None
    facts: Facts | None = None
    fired: tuple[Signal, ...] = ()  # the signals that scored it, and will word it
    task_title: str | None = None
    task_id: str | None = None
    task_due: dt.date | None = None
    account_name: str | None = None
    days_overdue: int = 0
    reasons: list[str] = field(default_factory=list)
    action: str = ""
    rank: int = 0

    def as_json(self) -> dict[str, Any]:
        inv = self.invoice
        return {
            "rank": self.rank,
            "kind": self.kind,
            "invoice_number": inv.number if inv else None,
            "account": inv.account_name if inv else self.account_name,
            "amount": amount_str(inv.balance) if inv else None,
            "currency": inv.currency if inv else None,
            "days_overdue": self.days_overdue,
            "reasons": self.reasons,
            "action": self.action,
            "score": f"{self.score:.2f}",
            "task_id": self.task_id,
        }


def _kind(inv: InvoiceRow, today: dt.date, late: int, kinds: list[str], due_soon: bool) -> str | None:
    if inv.customer_replied_at is not None and is_open(inv):
        return "customer_replied"  # an answer waits for the rep: before any chasing
    if promise_broken(inv, today):
        return "promise_broken"
    if late:
        return "overdue"
    if "dispute_stalled" in kinds:
        return "dispute_stalled"
    if kinds:
        return "stale_status"
    if inv.status == "disputed" and is_open(inv):
        return "dispute_open"  # not stalled yet, but someone has to settle it
    return "due_soon" if due_soon else None


def _facts(inv: InvoiceRow, as_of: AsOf, w: Weights, rules: stale.StaleThresholds) -> Facts | None:
    """The facts of one invoice that could be an item today (None: it is not one)."""
    today = as_of.today
    late = days_overdue(inv, today)
    kinds = stale.stale_kinds(inv, as_of, rules)
    due_in = (inv.due_date - today).days
    due_soon = is_open(inv) and inv.status != "disputed" and 0 <= due_in <= w.due_soon_days
    kind = _kind(inv, today, late, kinds, due_soon)
    if kind is None:
        return None
    contacted = as_of.days_since(inv.last_contacted_at) if inv.last_contacted_at else None
    status_since = as_of.local_date(inv.status_updated_at)  # once: time-zone conversions add up over a big book
    return Facts(
        inv=inv,
        today=today,
        kind=kind,
        days_overdue=late,
        due_in=due_in,
        due_soon=due_soon,
        stale_kinds=tuple(kinds),
        contacted_days=contacted,
        quiet_days=contacted if contacted is not None else (today - status_since).days,
        activity_days=as_of.days_since(inv.last_touch) if "no_recent_activity" in kinds else 0,
        status_since=status_since,
        replied_on=as_of.local_date(inv.customer_replied_at) if inv.customer_replied_at else None,
        others_overdue=0,
        others_broken=0,
    )


class _Scorer:
    """Scores the invoices of one book for one day: the book-wide counts and rates are computed once."""

    def __init__(self, rows: list[InvoiceRow], as_of: AsOf, fx: FxTable, w: Weights, rules: stale.StaleThresholds):
        today = as_of.today
        self.as_of, self.fx, self.w, self.rules = as_of, fx, w, rules
        # Counted over the rows: every overdue invoice and every broken promise is an item, whatever its kind.
        self.overdue = Counter(inv.account_id for inv in rows if days_overdue(inv, today))
        self.broken = Counter(inv.account_id for inv in rows if promise_broken(inv, today))
        self.tables = signals_for(w)
        self.most_stake = math.prod(max(s.stake, ONE) for s in signals(w))
        self.most_cost = sum(s.cost for s in signals(w))

    def item(self, inv: InvoiceRow) -> Item | None:
        """The invoice's item today, scored (None: it is not one)."""
        f = _facts(inv, self.as_of, self.w, self.rules)
        if f is None:
            return None
        f.others_overdue = self.overdue[inv.account_id] - (1 if f.days_overdue else 0)
        f.others_broken = self.broken[inv.account_id] - (1 if promise_broken(inv, self.as_of.today) else 0)
        fired = tuple([s for s in self.tables[f.kind, inv.balance > 0] if s.applies(f)])
        balance, amount = self.fx.to_base(inv.balance, inv.currency), self.fx.to_base(inv.amount, inv.currency)
        return Item(
            kind=f.kind,
            score=round(value(f, fired, balance, amount, self.w), 6),
            sort_key=(inv.due_date, inv.number, ""),
            invoice=inv,
            facts=f,
            fired=fired,
            days_overdue=f.days_overdue,
        )

    def most(self, inv: InvoiceRow) -> Decimal:
        """The most `item(inv)` can score, whatever its signals: every stake, every cost, the highest chance
        (plus what rounding a score to 6 places can add)."""
        w = self.w
        balance, amount = self.fx.to_base(inv.balance, inv.currency), self.fx.to_base(inv.amount, inv.currency)
        carrying = balance * w.capital_rate * w.delay_days / 365
        return self.most_stake * (balance * w.max_chance + self.most_cost * amount) + carrying + SCORE_STEP


def _invoice_items(rows: list[InvoiceRow], tasks: list[_TaskRow], scorer: _Scorer, limit: int | None) -> tuple[list[Item], bool]:
    """The scored items that can rank in the top `limit` (all of them when `limit` is None), and whether that
    is every item of the day.

    The top `limit` alone needs only the invoices that could still beat the `limit`-th score found so far, in
    order of the most each could score: a 1M-invoice book ranks its top 20 without scoring every invoice. The
    day's median (what a task on no listed invoice is worth) needs every score: then all are scored.
    """
    weights = _task_weights(tasks, scorer.as_of, scorer.w)
    on_invoice = {inv.id: inv for inv in rows if inv.id in weights}
    tasks_on_items = all(invoice_id in on_invoice and scorer.item(on_invoice[invoice_id]) is not None for *_, invoice_id in tasks)
    if limit is None or not tasks_on_items or len(rows) <= limit:
        return [item for inv in rows if (item := scorer.item(inv)) is not None], True
    best: list[Decimal] = []  # a min-heap of the `limit` best scores so far
    items = []
    for most, inv in sorted(((scorer.most(inv) * weights.get(inv.id, ONE), inv) for inv in rows), key=_first, reverse=True):
        if len(best) == limit and most < best[0]:
            break  # neither this invoice nor any after it can reach the top `limit`
        item = scorer.item(inv)
        if item is None:
            continue
        items.append(item)
        score = round(item.score * weights[inv.id], 6) if inv.id in weights else item.score  # as _add_tasks will
        if len(best) < limit:
            heapq.heappush(best, score)
        elif score > best[0]:
            heapq.heapreplace(best, score)
    return items, False


def _first(pair: tuple[Decimal, InvoiceRow]) -> Decimal:
    return pair[0]


def _explain(item: Item, as_of: AsOf, w: Weights) -> None:
    """The reasons in words (one per signal that scored it) and the next action, for an item that is shown."""
    f = item.facts
    assert f is not None
    item.reasons[:0] = [s.words(f) for s in item.fired]
    if item.task_title is not None and item.task_due is not None:
        item.reasons.append(f"{_task_words(item.task_due, as_of.today)}: {item.task_title}")
    item.action = _invoice_action(item, set(f.stale_kinds), f.contacted_days, as_of, w)


def _task_words(due: dt.date, today: dt.date) -> str:
    late = (today - due).days
    when = "today" if late == 0 else f"{days(late)} ago"
    return f"task due {when} ({due.isoformat()})"


def _invoice_action(item: Item, kinds: set[str], contacted: int | None, as_of: AsOf, w: Weights) -> str:
    inv = item.invoice
    assert inv is not None
    today = as_of.today
    if item.kind == "customer_replied":
        return f"Read the customer's reply about {inv.number} (`lumo mail replies`) and approve or change what it suggests"
    if item.kind == "promise_broken":
        return f"Call about the broken promise to pay {inv.number} and agree a new date"
    if promise_pending(inv, today):
        return f"Wait for the promised payment of {inv.number} by {inv.promise_to_pay_date}; check it arrived then"
    if contacted is not None and contacted < w.cooldown_days:
        return f"Wait: {inv.number} was chased {days(contacted)} ago"
    if item.kind in ("dispute_stalled", "dispute_open"):
        return f"Follow up on the dispute of {inv.number} and record the next step"
    if "paid_not_marked" in kinds:
        return f"Mark {inv.number} as paid"
    if "draft_not_sent" in kinds:
        return f"Send invoice {inv.number} to the customer"
    if item.kind in ("overdue", "due_soon"):
        tone = tone_for(inv.due_date, today) or "courtesy"
        prefix = "Mark it overdue and send" if "overdue_not_marked" in kinds else "Send"
        return f"{prefix} the {tone.replace('_', ' ')} reminder for {inv.number}"
    return f"Check in on {inv.number} and log the latest contact"


def _due_tasks(session: Session, scope: Scope, as_of: AsOf) -> list[_TaskRow]:
    """Tasks due today or late, the latest first (the first of an invoice is the one that weighs)."""
    query = (
        task_rows(scope)
        .add_columns(Task.invoice_id)
        .where(Task.done.is_(False), Task.due_date <= as_of.today, Task.owner_id.in_(_task_owners(session, scope)))
        .order_by(Task.due_date, Task.id)
    )
    return cast(list[_TaskRow], session.connection().execute(query).all())  # add_columns loses the row type


def _task_weights(tasks: list[_TaskRow], as_of: AsOf, w: Weights) -> dict[str, Decimal]:
    """invoice id -> how much its first task weighs its item up."""
    weights: dict[str, Decimal] = {}
    for _, _, due, _, _, invoice_id in tasks:
        if invoice_id and due is not None and invoice_id not in weights:
            weights[invoice_id] = task_weight((as_of.today - due).days, w)
    return weights


def _add_tasks(tasks: list[_TaskRow], as_of: AsOf, w: Weights, items: list[Item], every_item: bool) -> None:
    """Each task weighs up the invoice item it is for, or becomes an item of its own, worth the day's median.

    With `every_item` False, `items` holds only the invoices that can rank: a task of any other invoice is left
    out with it (the caller has made sure no task is an item of its own then).
    """
    by_invoice = {i.invoice.id: i for i in items if i.invoice is not None}
    scores = sorted(i.score for i in items)
    median = scores[len(scores) // 2] if scores else w.task_empty_book
    for task_id, title, due, account, number, invoice_id in tasks:
        if due is None:  # the query keeps only tasks due on or before today; this tells the type checker
            continue
        weight = task_weight((as_of.today - due).days, w)
        item = by_invoice.get(invoice_id) if invoice_id else None
        if item is not None:
            if item.task_id is None:
                item.score = round(item.score * weight, 6)
                item.task_id, item.task_title, item.task_due = task_id, title, due
            continue
        if not every_item:
            continue
        reasons = [_task_words(due, as_of.today)]
        if number:
            reasons.append(f"for invoice {number}")
        items.append(
            Item(
                kind="task_due",
                score=round(median * weight, 6),
                sort_key=(due, number or "", task_id),
                task_id=task_id,
                task_title=title,
                task_due=due,
                account_name=account,
                reasons=reasons,
                action=f"Do the task: {title}",
            )
        )


def _task_owners(session: Session, scope: Scope) -> Any:
    if scope.owner_ids is None:
        return select(Task.owner_id).distinct().scalar_subquery()
    return sorted(scope.owner_ids)


def compute_priorities(
    session: Session,
    scope: Scope,
    as_of: AsOf,
    *,
    limit: int | None = 20,
    weights: Weights = Weights(),
    rules: stale.StaleThresholds = stale.StaleThresholds(),
    fx: FxTable | None = None,
    rows: list[InvoiceRow] | None = None,
) -> list[Item]:
    """The ranked work of `scope` for the day `as_of`; top `limit` items (None: all).

    `rows` lets a caller that already holds the scope's actionable invoices skip fetching them again.
    """
    fx = fx or load_fx(session)
    candidates = _candidates(session, scope, as_of, weights, rules) if rows is None else rows
    tasks = _due_tasks(session, scope, as_of)
    items, every_item = _invoice_items(candidates, tasks, _Scorer(candidates, as_of, fx, weights, rules), limit)
    _add_tasks(tasks, as_of, weights, items, every_item)
    items.sort(key=lambda i: (-i.score, *i.sort_key))
    top = items if limit is None else items[:limit]
    for item in top:
        if item.invoice is not None:
            _explain(item, as_of, weights)
    _name_contacts(session, top)
    for rank, item in enumerate(top, start=1):
        item.rank = rank
    return top


def priorities_json(
    session: Session, scope: Scope, as_of: AsOf, *, limit: int | None = 20, versions: book_cache.Versions | None = None
) -> list[dict[str, Any]]:
    """`compute_priorities` as JSON, kept while the books in scope are unchanged (`lumo.crm.book_cache`)."""

    def compute() -> str:
        return json.dumps([i.as_json() for i in compute_priorities(session, scope, as_of, limit=limit)])

    key = ("priorities", as_of.today, as_of.tz.key, limit)
    return cast(list[dict[str, Any]], json.loads(book_cache.cached(session, scope, key, compute, versions)))


def _candidates(session: Session, scope: Scope, as_of: AsOf, w: Weights, rules: stale.StaleThresholds) -> list[InvoiceRow]:
    """The actionable invoices that could become an item today, narrowed in SQL (the hot path of a busy book).

    The SQL is a superset of the rules: `_facts` still decides each row. A row is left out only when
    it is not past or near its due date, not paid in full, has no passed promise, is no old draft and was
    touched recently (with 14 hours' margin, the widest time-zone offset, around the day boundary).
    """
    today = as_of.today
    quiet_days = min(rules.activity_days, rules.dispute_days)
    touched_before = dt.datetime.combine(today - dt.timedelta(days=quiet_days), dt.time(14), dt.UTC)
    sent_before = dt.datetime.combine(today - dt.timedelta(days=rules.not_viewed_days), dt.time(14), dt.UTC)
    could = or_(
        Invoice.due_date <= today + dt.timedelta(days=w.due_soon_days),
        Invoice.amount_paid >= Invoice.amount,
        Invoice.promise_to_pay_date < today,
        Invoice.status == "disputed",
        Invoice.customer_replied_at.is_not(None),
        and_(Invoice.status == "draft", Invoice.issue_date < today - dt.timedelta(days=rules.draft_days)),
        and_(Invoice.status == "sent", Invoice.status_updated_at < sent_before),
        and_(Invoice.status.in_(("sent", "viewed")), Invoice.amount_paid > 0),
        and_(
            Invoice.status_updated_at < touched_before,
            or_(Invoice.last_activity_at.is_(None), Invoice.last_activity_at < touched_before),
        ),
    )
    query = rows_query(scope).where(actionable_clause(), could)
    return fetch_rows(session, query)


def _name_contacts(session: Session, items: list[Item]) -> None:
    """Put the contact's name into the actions of the items shown (only those: it costs a query)."""
    invoices = [i.invoice for i in items if i.invoice is not None]
    contacts = primary_contacts(session, [inv.id for inv in invoices])
    for item in items:
        if item.invoice is None:
            continue
        contact = contacts.get(item.invoice.id)
        if contact is None:
            item.reasons.append("no billing contact on file")
        elif contact.do_not_contact:
            item.reasons.append(f"{contact.name} is do-not-contact")
            if item.action.startswith(("Send the", "Mark it overdue and send", "Call")):
                item.action = f"Do not email {contact.name} (do-not-contact): agree next steps with the account owner"
        else:
            item.action = f"{item.action} ({contact.name}, {contact.email})"
