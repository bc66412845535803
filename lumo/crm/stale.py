"""Stale statuses: where the recorded status no longer tells the truth (ARCHITECTURE.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from lumo.crm.lifecycle import CLOSED_STATUSES, AsOf, InvoiceRow, days_overdue, is_open
from lumo.crm.money import format_code

StaleKind = Literal[
    "overdue_not_marked",
    "paid_not_marked",
    "no_recent_activity",
    "draft_not_sent",
    "promise_broken",
    "dispute_stalled",
]
KINDS: tuple[StaleKind, ...] = get_args(StaleKind)


@dataclass(frozen=True)
class StaleThresholds:
    activity_days: int = 14
    dispute_days: int = 14
    draft_days: int = 7


@dataclass(frozen=True)
class Finding:
    invoice_number: str
    kind: str
    evidence: str
    fix: str

    def as_json(self) -> dict[str, Any]:
        return {"invoice_number": self.invoice_number, "kind": self.kind, "evidence": self.evidence, "fix": self.fix}


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
    return kinds


def findings_for(inv: InvoiceRow, as_of: AsOf, rules: StaleThresholds = StaleThresholds()) -> list[Finding]:
    """Every stale finding of one invoice with its evidence and fix, in the order of KINDS."""
    return [Finding(inv.number, kind, *_explain(kind, inv, as_of)) for kind in stale_kinds(inv, as_of, rules)]


def _explain(kind: str, inv: InvoiceRow, as_of: AsOf) -> tuple[str, str]:
    today = as_of.today
    quiet = as_of.days_since(inv.last_touch)
    balance = format_code(inv.balance, inv.currency)
    if kind == "overdue_not_marked":
        return (
            f"due {inv.due_date.isoformat()}, {days_overdue(inv, today)} days ago, balance {balance}; "
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
            f"no event, note or status change since {as_of.local_date(inv.last_touch).isoformat()} ({quiet} days)",
            "Check in with the customer and log what you learn",
        )
    if kind == "draft_not_sent":
        return (
            f"still a draft {(today - inv.issue_date).days} days after its issue date {inv.issue_date.isoformat()}",
            "Send the invoice, or void it if it is not needed",
        )
    if kind == "promise_broken":
        return (
            f"promised to pay by {inv.promise_to_pay_date}; {balance} still open",
            "Call the customer about the broken promise and set a new date",
        )
    return (
        f"disputed ({inv.dispute_reason or 'no reason recorded'}); no activity for {quiet} days",
        "Follow up on the dispute and record the next step",
    )


def stale_findings(rows: list[InvoiceRow], as_of: AsOf, rules: StaleThresholds = StaleThresholds()) -> list[Finding]:
    """Findings over many invoices, ordered by invoice number then kind."""
    out: list[Finding] = []
    for row in sorted(rows, key=lambda r: r.number):
        out.extend(findings_for(row, as_of, rules))
    return out
