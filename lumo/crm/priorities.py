"""Today's priorities: a deterministic, explainable ranking of one person's work (ARCHITECTURE.md section 3).

The score adds points for each signal; every signal that adds points also adds a reason in words.
Ties break on (due date, invoice number, task id) so the order never depends on the database.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from lumo.crm import stale
from lumo.crm.contacts import primary_contacts
from lumo.crm.invoices import fetch_rows, rows_query
from lumo.crm.lifecycle import ACTIONABLE_STATUSES, AsOf, InvoiceRow, days_overdue, is_open, promise_broken, promise_pending
from lumo.crm.money import FxTable, amount_str, format_code, load_fx
from lumo.crm.scope import Scope
from lumo.crm.tone import tone_for
from lumo.db.models import Account, Invoice, Task


@dataclass(frozen=True)
class Weights:
    """Points per signal; named so a reader can see and tune the whole ranking here."""

    amount_per_decade: float = 10  # 10 points per 10x of base-currency amount
    per_day_overdue: float = 0.5
    max_days_counted: int = 120
    promise_broken: float = 25
    dispute_stalled: float = 10
    per_stale_finding: float = 8
    key_account: float = 10
    renewal_near: float = 6
    renewal_window_days: int = 60
    per_day_no_contact: float = 0.25
    no_contact_after_days: int = 14
    max_no_contact_days: int = 60
    promise_pending: float = -20
    cooldown: float = -15
    cooldown_days: int = 3
    due_soon_days: int = 3
    due_soon_factor: float = 0.5
    task_base: float = 20
    task_per_day_late: float = 1
    max_task_days: int = 10


@dataclass
class Item:
    kind: str
    score: float
    sort_key: tuple[Any, ...]
    invoice: InvoiceRow | None = None
    task_title: str | None = None
    task_id: str | None = None
    account_name: str | None = None
    days_overdue: int = 0
    stale_kinds: tuple[str, ...] = ()
    contacted_days: int | None = None  # days since the last email or call
    quiet_days: int = 0  # days since the last contact (or status change, without one)
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
    if promise_broken(inv, today):
        return "promise_broken"
    if late:
        return "overdue"
    if "dispute_stalled" in kinds:
        return "dispute_stalled"
    if kinds:
        return "stale_status"
    return "due_soon" if due_soon else None


def _score_invoice(inv: InvoiceRow, as_of: AsOf, fx: FxTable, w: Weights, rules: stale.StaleThresholds) -> Item | None:
    """Rank one invoice from its signals; words come later, and only for the items shown."""
    today = as_of.today
    late = days_overdue(inv, today)
    kinds = stale.stale_kinds(inv, as_of, rules)
    due_in = (inv.due_date - today).days
    due_soon = is_open(inv) and inv.status != "disputed" and 0 <= due_in <= w.due_soon_days
    kind = _kind(inv, today, late, kinds, due_soon)
    if kind is None:
        return None
    # A ranking score, not money: the amount only sets its order of magnitude.
    score = w.amount_per_decade * math.log10(int(fx.to_base(inv.balance, inv.currency)) + 1)
    if kind == "due_soon":
        score *= w.due_soon_factor
    score += w.per_day_overdue * min(late, w.max_days_counted)
    if kind == "promise_broken":
        score += w.promise_broken
    if "dispute_stalled" in kinds:
        score += w.dispute_stalled
    score += w.per_stale_finding * sum(k not in ("promise_broken", "dispute_stalled") for k in kinds)
    if inv.account_tier == "key":
        score += w.key_account
    if inv.renewal_date and 0 <= (inv.renewal_date - today).days <= w.renewal_window_days:
        score += w.renewal_near
    contacted = as_of.days_since(inv.last_contacted_at) if inv.last_contacted_at else None
    quiet = contacted if contacted is not None else as_of.days_since(inv.status_updated_at)
    if quiet >= w.no_contact_after_days and kind != "stale_status":
        score += w.per_day_no_contact * min(quiet, w.max_no_contact_days)
    if promise_pending(inv, today):
        score += w.promise_pending
    if contacted is not None and contacted < w.cooldown_days:
        score += w.cooldown
    return Item(
        kind=kind,
        score=round(score, 6),
        sort_key=(inv.due_date, inv.number, ""),
        invoice=inv,
        days_overdue=late,
        stale_kinds=tuple(kinds),
        contacted_days=contacted,
        quiet_days=quiet,
    )


def _explain(item: Item, as_of: AsOf, w: Weights) -> None:
    """The reasons in words and the next action, for an invoice item that is shown."""
    inv = item.invoice
    assert inv is not None
    today, kinds, late = as_of.today, set(item.stale_kinds), item.days_overdue
    money = format_code(inv.balance, inv.currency)
    reasons = item.reasons
    due_in = (inv.due_date - today).days
    if late:
        reasons.append(f"{money} overdue {late} days")
    elif inv.balance > 0 and inv.status != "disputed" and 0 <= due_in <= w.due_soon_days:
        reasons.append(f"{money} due {'today' if due_in == 0 else f'in {due_in} days'} ({inv.due_date.isoformat()})")
    elif inv.balance > 0:
        reasons.append(f"{money} open")
    if item.kind == "promise_broken":
        reasons.append(f"promise to pay by {inv.promise_to_pay_date} broken")
    if "dispute_stalled" in kinds:
        reasons.append(f"dispute stalled: {inv.dispute_reason or 'no reason recorded'}")
    for kind in item.stale_kinds:
        if kind == "overdue_not_marked":
            reasons.append(f"status still '{inv.status}'")
        elif kind == "paid_not_marked":
            reasons.append(f"paid in full ({format_code(inv.amount_paid, inv.currency)}) but status '{inv.status}'")
        elif kind == "draft_not_sent":
            reasons.append(f"draft not sent since {inv.issue_date.isoformat()}")
        elif kind == "no_recent_activity" and item.kind == "stale_status":  # else "no contact in" says it
            reasons.append(f"no activity in {as_of.days_since(inv.last_touch)} days")
    if inv.account_tier == "key":
        reasons.append("key account")
    if inv.renewal_date and 0 <= (inv.renewal_date - today).days <= w.renewal_window_days:
        reasons.append(f"renewal on {inv.renewal_date.isoformat()}")
    if item.quiet_days >= w.no_contact_after_days and item.kind != "stale_status":
        reasons.append(f"no contact in {item.quiet_days} days")
    if promise_pending(inv, today):
        reasons.append(f"promised to pay by {inv.promise_to_pay_date}")
    contacted = item.contacted_days
    if contacted is not None and contacted < w.cooldown_days:
        reasons.append(f"contacted {contacted} day{'s' if contacted != 1 else ''} ago")
    item.action = _invoice_action(item, kinds, contacted, as_of, w)


def _invoice_action(item: Item, kinds: set[str], contacted: int | None, as_of: AsOf, w: Weights) -> str:
    inv = item.invoice
    assert inv is not None
    today = as_of.today
    if item.kind == "promise_broken":
        return f"Call about the broken promise to pay {inv.number} and agree a new date"
    if promise_pending(inv, today):
        return f"Wait for the promised payment of {inv.number} by {inv.promise_to_pay_date}; check it arrived then"
    if contacted is not None and contacted < w.cooldown_days:
        return f"Wait: {inv.number} was chased {contacted} day{'s' if contacted != 1 else ''} ago"
    if item.kind == "dispute_stalled":
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


def _task_items(session: Session, scope: Scope, as_of: AsOf, w: Weights) -> list[Item]:
    query = (
        select(Task.id, Task.title, Task.due_date, Account.name, Invoice.number)
        .outerjoin(Account, Account.id == Task.account_id)
        .outerjoin(Invoice, Invoice.id == Task.invoice_id)
        .where(Task.done.is_(False), Task.due_date <= as_of.today, Task.owner_id.in_(_task_owners(session, scope)))
    )
    items = []
    for task_id, title, due, account, number in session.connection().execute(query).all():
        if due is None:
            continue  # never: "due_date <= today" leaves out tasks without a date
        late = (as_of.today - due).days
        score = w.task_base + w.task_per_day_late * min(late, w.max_task_days)
        reasons = [f"task due {'today' if late == 0 else f'{late} days ago'} ({due.isoformat()})"]
        if number:
            reasons.append(f"for invoice {number}")
        items.append(
            Item(
                kind="task_due",
                score=score,
                sort_key=(due, number or "", task_id),
                task_id=task_id,
                task_title=title,
                account_name=account,
                reasons=reasons,
                action=f"Do the task: {title}",
            )
        )
    return items


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
    items = [
        item
        for inv in (_candidates(session, scope, as_of, weights, rules) if rows is None else rows)
        if (item := _score_invoice(inv, as_of, fx, weights, rules)) is not None
    ]
    items.extend(_task_items(session, scope, as_of, weights))
    items.sort(key=lambda i: (-i.score, *i.sort_key))
    top = items if limit is None else items[:limit]
    for item in top:
        if item.invoice is not None:
            _explain(item, as_of, weights)
    _name_contacts(session, top)
    for rank, item in enumerate(top, start=1):
        item.rank = rank
    return top


def _candidates(session: Session, scope: Scope, as_of: AsOf, w: Weights, rules: stale.StaleThresholds) -> list[InvoiceRow]:
    """The actionable invoices that could become an item today, narrowed in SQL (the hot path of a busy book).

    The SQL is a superset of the rules: `_score_invoice` still decides each row. A row is left out only when
    it is not past or near its due date, not paid in full, has no passed promise, is no old draft and was
    touched recently (with 14 hours' margin, the widest time-zone offset, around the day boundary).
    """
    today = as_of.today
    quiet_days = min(rules.activity_days, rules.dispute_days)
    touched_before = dt.datetime.combine(today - dt.timedelta(days=quiet_days), dt.time(14), dt.UTC)
    could = or_(
        Invoice.due_date <= today + dt.timedelta(days=w.due_soon_days),
        Invoice.amount_paid >= Invoice.amount,
        Invoice.promise_to_pay_date < today,
        and_(Invoice.status == "draft", Invoice.issue_date < today - dt.timedelta(days=rules.draft_days)),
        and_(
            Invoice.status_updated_at < touched_before,
            or_(Invoice.last_activity_at.is_(None), Invoice.last_activity_at < touched_before),
        ),
    )
    query = rows_query(scope).where(Invoice.status.in_(sorted(ACTIONABLE_STATUSES)), could)
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
