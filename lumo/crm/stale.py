"""Stale statuses: where the recorded status no longer tells the truth (ARCHITECTURE.md section 3).

Each finding carries its fix twice: in words, and as the action that applies it (a tool call the rep
approves: a status change or a follow-up task), so "fix all my stale statuses" is one approval.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from lumo.crm.lifecycle import CLOSED_STATUSES, AsOf, InvoiceRow, days, days_overdue, is_open
from lumo.crm.money import format_code

StaleKind = Literal[
    "overdue_not_marked",
    "paid_not_marked",
    "no_recent_activity",
    "draft_not_sent",
    "promise_broken",
    "dispute_stalled",
    "paid_with_balance",
    "partial_not_marked",
    "sent_not_viewed",
]
KINDS: tuple[StaleKind, ...] = get_args(StaleKind)


@dataclass(frozen=True)
class StaleThresholds:
    activity_days: int = 14
    dispute_days: int = 14
    draft_days: int = 7
    not_viewed_days: int = 10  # `sent` this long and never `viewed`: did it reach the customer?


@dataclass(frozen=True)
class Finding:
    invoice_number: str
    kind: str
    evidence: str
    fix: str
    action: dict[str, Any] = field(default_factory=dict)  # {tool, args}: the fix as an approvable action

    def as_json(self) -> dict[str, Any]:
        return {
            "invoice_number": self.invoice_number,
            "kind": self.kind,
            "evidence": self.evidence,
            "fix": self.fix,
            "action": self.action,
        }


def stale_kinds(inv: InvoiceRow, as_of: AsOf, rules: StaleThresholds = StaleThresholds()) -> list[str]:
    """The kinds of stale finding of one invoice, in the order of KINDS (cheap: no words)."""
    today = as_of.today
    status = inv.status
    open_ = is_open(inv)
    kinds: list[str] = []
    if open_ and status in ("sent", "viewed") and inv.due_date < today:
        kinds.append("overdue_not_marked")
    if inv.amount_paid >= inv.amount and status not in CLOSED_STATUSES:
        kinds.append("paid_not_marked")
    quiet = as_of.days_since(inv.last_touch) if open_ else 0
    if open_ and status != "disputed" and quiet > rules.activity_days:
        kinds.append("no_recent_activity")
    if status == "draft" and (today - inv.issue_date).days > rules.draft_days:
        kinds.append("draft_not_sent")
    if open_ and inv.promise_to_pay_date is not None and inv.promise_to_pay_date < today:
        kinds.append("promise_broken")
    if open_ and status == "disputed" and quiet > rules.dispute_days:
        kinds.append("dispute_stalled")
    if status == "paid" and inv.amount_paid < inv.amount:
        kinds.append("paid_with_balance")
    if status in ("sent", "viewed") and 0 < inv.amount_paid < inv.amount and inv.due_date >= today:
        kinds.append("partial_not_marked")  # past due, overdue_not_marked says it
    if status == "sent" and inv.due_date >= today and as_of.days_since(inv.status_updated_at) > rules.not_viewed_days:
        kinds.append("sent_not_viewed")
    return kinds


def findings_for(inv: InvoiceRow, as_of: AsOf, rules: StaleThresholds = StaleThresholds()) -> list[Finding]:
    """Every stale finding of one invoice with its evidence, fix and fix action, in the order of KINDS."""
    return [
        Finding(inv.number, kind, *_explain(kind, inv, as_of), action=fix_action(kind, inv, as_of))
        for kind in stale_kinds(inv, as_of, rules)
    ]


def _explain(kind: str, inv: InvoiceRow, as_of: AsOf) -> tuple[str, str]:
    today = as_of.today
    quiet = as_of.days_since(inv.last_touch)
    balance = format_code(inv.balance, inv.currency)
    if kind == "overdue_not_marked":
        return (
            f"due {inv.due_date.isoformat()}, {days(days_overdue(inv, today))} ago, balance {balance}; "
            f"status still '{inv.status}'",
            "Mark it overdue and start the reminder sequence",
        )
    if kind == "paid_not_marked":
        return (
            f"payments of {format_code(inv.amount_paid, inv.currency)} cover the amount "
            f"{format_code(inv.amount, inv.currency)}; status '{inv.status}'",
            "Mark it paid",
        )
    if kind == "no_recent_activity":
        return (
            f"no event, note or status change since {as_of.local_date(inv.last_touch).isoformat()} ({days(quiet)})",
            "Check in with the customer and log what you learn",
        )
    if kind == "draft_not_sent":
        return (
            f"still a draft {days((today - inv.issue_date).days)} after its issue date {inv.issue_date.isoformat()}",
            "Send the invoice, or void it if it is not needed",
        )
    if kind == "promise_broken":
        return (
            f"promised to pay by {inv.promise_to_pay_date}; {balance} still open",
            "Call the customer about the broken promise and set a new date",
        )
    if kind == "paid_with_balance":
        return (
            f"marked 'paid' but only {format_code(inv.amount_paid, inv.currency)} of "
            f"{format_code(inv.amount, inv.currency)} is recorded as paid; {balance} open",
            f"Mark it {_truth(inv, today)}, or record the missing payment",
        )
    if kind == "partial_not_marked":
        return (
            f"{format_code(inv.amount_paid, inv.currency)} of {format_code(inv.amount, inv.currency)} paid; "
            f"status still '{inv.status}'",
            "Mark it partially paid",
        )
    if kind == "sent_not_viewed":
        return (
            f"sent {days(as_of.days_since(inv.status_updated_at))} ago "
            f"({as_of.local_date(inv.status_updated_at).isoformat()}) and never viewed",
            "Check that the customer received it",
        )
    return (
        f"disputed ({inv.dispute_reason or 'no reason recorded'}); no activity for {days(quiet)}",
        "Follow up on the dispute and record the next step",
    )


def _truth(inv: InvoiceRow, today: dt.date) -> str:
    """The status an open invoice's payments and due date call for."""
    if inv.due_date < today:
        return "overdue"
    return "partially_paid" if inv.amount_paid > 0 else "sent"


def _status(inv: InvoiceRow, status: str, reason: str) -> dict[str, Any]:
    return {"tool": "update_invoice_status", "args": {"invoice_number": inv.number, "status": status, "reason": reason}}


def _task(inv: InvoiceRow, title: str, today: dt.date) -> dict[str, Any]:
    args = {"title": title, "due_date": today.isoformat(), "invoice_number": inv.number}
    return {"tool": "create_follow_up_task", "args": args}


def fix_action(kind: str, inv: InvoiceRow, as_of: AsOf) -> dict[str, Any]:
    """The approvable action that applies a finding's fix: the status the facts call for, or a task for the rep."""
    today = as_of.today
    if kind == "overdue_not_marked":
        return _status(inv, "overdue", f"Past due since {inv.due_date.isoformat()}; status was '{inv.status}'")
    if kind == "paid_not_marked":
        return _status(inv, "paid", f"Payments of {format_code(inv.amount_paid, inv.currency)} cover the amount")
    if kind == "paid_with_balance":
        return _status(inv, _truth(inv, today), f"Marked paid with {format_code(inv.balance, inv.currency)} still open")
    if kind == "partial_not_marked":
        return _status(inv, "partially_paid", f"{format_code(inv.amount_paid, inv.currency)} paid so far")
    if kind == "draft_not_sent":
        return _task(inv, f"Send invoice {inv.number} to {inv.account_name}, or void it", today)
    if kind == "promise_broken":
        return _task(inv, f"Call {inv.account_name} about the broken promise to pay {inv.number} and set a new date", today)
    if kind == "dispute_stalled":
        reason = inv.dispute_reason or "no reason recorded"
        return _task(inv, f"Chase the dispute on {inv.number} ({reason}) and record the next step", today)
    if kind == "sent_not_viewed":
        return _task(inv, f"Check that {inv.account_name} received {inv.number}", today)
    return _task(inv, f"Check in with {inv.account_name} about {inv.number} and log what you learn", today)


def stale_findings(rows: list[InvoiceRow], as_of: AsOf, rules: StaleThresholds = StaleThresholds()) -> list[Finding]:
    """Findings over many invoices, ordered by invoice number then kind."""
    out: list[Finding] = []
    for row in sorted(rows, key=lambda r: r.number):
        out.extend(findings_for(row, as_of, rules))
    return out


def fix_calls(findings: list[dict[str, Any]], limit: int = 50) -> list[tuple[str, dict[str, Any]]]:
    """The fix actions of findings (their `as_json` form), as tool calls to propose together.

    One status change and one task per invoice: a second finding on the same invoice is fixed by the first
    action of its kind (a task to call about a broken promise also checks in on a quiet invoice).
    """
    calls: list[tuple[str, dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    first = {f.get("invoice_number"): i for i, f in reversed(list(enumerate(findings)))}
    # Per invoice, the most specific finding's task wins ("call about the broken promise" over "check in").
    ordered = sorted(findings, key=lambda f: (first[f.get("invoice_number")], f.get("kind") == "no_recent_activity"))
    for finding in ordered:
        action = finding.get("action") or {}
        tool, args = action.get("tool"), action.get("args")
        if not isinstance(tool, str) or not isinstance(args, dict):
            continue
        key = (tool, str(args.get("invoice_number")))
        if key in seen:
            continue
        seen.add(key)
        calls.append((tool, dict(args)))
        if len(calls) >= limit:
            break
    return calls
