"""The morning digest of one rep (or one manager's team) for one day: facts from lumo.crm, words from prompts/digest.

Nothing here reads the clock: the same data and day give the same digest, byte for byte.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.orm import Session

from lumo.crm import stale
from lumo.crm.drafts import draft_for_invoice
from lumo.crm.invoices import actionable_rows
from lumo.crm.lifecycle import BUCKETS, AsOf, InvoiceRow, aging_bucket, days_overdue, is_overdue, promise_broken
from lumo.crm.money import amount_str, load_fx, totals_by_currency
from lumo.crm.priorities import Item, compute_priorities
from lumo.crm.scope import Scope, scope_for_user
from lumo.crm.tasks import task_rows
from lumo.db.models import Task, User
from lumo.templates import PROMPTS_DIR, environment, long_date, render

LIST_LIMIT = 10  # rows shown per list (broken promises, tasks); the rest is counted
STALE_LABELS = {
    "overdue_not_marked": "overdue but still marked sent or viewed",
    "paid_not_marked": "paid in full but not marked paid",
    "no_recent_activity": "open with no recent activity",
    "draft_not_sent": "drafts never sent",
    "promise_broken": "broken payment promises",
    "dispute_stalled": "stalled disputes",
    "paid_with_balance": "marked paid with a balance open",
    "partial_not_marked": "partly paid but not marked",
    "sent_not_viewed": "sent but never viewed",
}


@dataclass(frozen=True)
class Digest:
    user_id: str
    email: str
    name: str
    day: dt.date
    subject: str
    html: str
    text: str
    counts: dict[str, int]
    sections: dict[str, Any]  # the JSON-ready facts both templates render

    def as_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "email": self.email,
            "name": self.name,
            "day": self.day.isoformat(),
            "subject": self.subject,
            "counts": self.counts,
            **self.sections,
            "text": self.text,
            "html": self.html,
        }


def build_digest(session: Session, user: User, day: dt.date, *, top: int = 5) -> Digest:
    """Build `user`'s digest for `day` (their local calendar day) over their scope."""
    scope = scope_for_user(session, user)
    as_of = AsOf(day, scope.tz)
    rows = actionable_rows(session, scope)
    items = compute_priorities(session, scope, as_of, limit=top, fx=load_fx(session), rows=rows)
    sections: dict[str, Any] = {
        "team": scope.role == "manager",
        "priorities": [_priority(item) for item in items],
        "overdue": _overdue(rows, day),
        "stale": _stale(rows, as_of),
        "promises_broken": _promises_broken(rows, day),
        "tasks_due": _tasks_due(session, scope, day),
        "drafts": _ready_drafts(session, scope, items, as_of),
    }
    counts = {
        "priorities": len(items),
        "overdue": sections["overdue"]["count"],
        "stale": sections["stale"]["count"],
        "promises_broken": sections["promises_broken"]["count"],
        "tasks_due": sections["tasks_due"]["count"],
        "drafts": len(sections["drafts"]),
    }
    subject = _subject(day, counts)
    context = {
        **sections,
        "counts": counts,
        "subject": subject,
        "day": day,
        "user": {"name": user.name, "first_name": (user.name.split() or ["there"])[0], "email": user.email},
    }
    return Digest(
        user_id=user.id,
        email=user.email,
        name=user.name,
        day=day,
        subject=subject,
        html=html_environment().get_template("digest/digest.html.j2").render(**context).strip(),
        text=render("digest/digest.txt.j2", **context),
        counts=counts,
        sections=sections,
    )


def _subject(day: dt.date, counts: dict[str, int]) -> str:
    return (
        f"Lumo digest for {long_date(day)}: {_plural(counts['overdue'], 'overdue invoice')}, "
        f"{_plural(counts['tasks_due'], 'task')} due"
    )


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _priority(item: Item) -> dict[str, Any]:
    inv = item.invoice
    title = f"{inv.number} · {inv.account_name}" if inv else (item.task_title or "Task")
    return {**item.as_json(), "title": title}


def _overdue(rows: list[InvoiceRow], day: dt.date) -> dict[str, Any]:
    late = [r for r in rows if is_overdue(r, day)]
    per_currency = Counter(r.currency for r in late)
    buckets = Counter(aging_bucket(days_overdue(r, day)) for r in late)
    return {
        "count": len(late),
        "by_currency": [
            {"currency": c, "count": per_currency[c], "amount": amount_str(total)}
            for c, total in totals_by_currency((r.balance, r.currency) for r in late).items()
        ],
        "by_bucket": [{"bucket": b, "count": buckets[b]} for b in BUCKETS if buckets[b]],
    }


def _stale(rows: list[InvoiceRow], as_of: AsOf) -> dict[str, Any]:
    kinds = Counter(kind for r in rows for kind in stale.stale_kinds(r, as_of))
    return {
        "count": sum(kinds.values()),
        "by_kind": [{"kind": k, "label": STALE_LABELS[k], "count": kinds[k]} for k in stale.KINDS if kinds[k]],
    }


def _promises_broken(rows: list[InvoiceRow], day: dt.date) -> dict[str, Any]:
    broken = sorted((r for r in rows if promise_broken(r, day)), key=lambda r: (r.promise_to_pay_date, r.number))
    return {
        "count": len(broken),
        "items": [
            {
                "invoice_number": r.number,
                "account": r.account_name,
                "amount": amount_str(r.balance),
                "currency": r.currency,
                "promised": r.promise_to_pay_date.isoformat() if r.promise_to_pay_date else None,
            }
            for r in broken[:LIST_LIMIT]
        ],
        "more": max(len(broken) - LIST_LIMIT, 0),
    }


def _tasks_due(session: Session, scope: Scope, day: dt.date) -> dict[str, Any]:
    query = task_rows(scope).where(Task.done.is_(False), Task.due_date <= day).order_by(Task.due_date, Task.id)
    if scope.owner_ids is not None:
        query = query.where(Task.owner_id.in_(sorted(scope.owner_ids)))
    tasks = session.execute(query).all()
    return {
        "count": len(tasks),
        "items": [
            {
                "task_id": tid,
                "title": title,
                "due_date": due.isoformat(),
                "days_late": (day - due).days,
                "account": account,
                "invoice_number": number,
            }
            for tid, title, due, account, number in tasks[:LIST_LIMIT]
            if due is not None  # never: "due_date <= day" leaves out tasks without a date
        ],
        "more": max(len(tasks) - LIST_LIMIT, 0),
    }


def _ready_drafts(session: Session, scope: Scope, items: list[Item], as_of: AsOf) -> list[dict[str, Any]]:
    """Drafts for the overdue items among the top priorities, each invoice covered once."""
    covered: set[str] = set()
    drafts = []
    for item in items:
        inv = item.invoice
        if inv is None or item.days_overdue <= 0 or inv.number in covered:
            continue
        draft = draft_for_invoice(session, scope, inv.number, as_of)
        covered.update(draft.invoice_numbers)
        if draft.skipped_reason is None:
            drafts.append(
                {
                    "to": draft.to,
                    "cc": draft.cc,
                    "subject": draft.subject,
                    "tone": draft.tone,
                    "invoice_numbers": draft.invoice_numbers,
                }
            )
    return drafts


@cache
def html_environment() -> Environment:
    """The prompts environment with autoescaping on: CRM text (account names, notes) lands in HTML."""
    base = environment()
    env = Environment(
        loader=FileSystemLoader(PROMPTS_DIR),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=True,
    )
    env.filters.update({name: base.filters[name] for name in ("money", "money_code", "long_date")})
    return env
