"""Stale statuses: where the recorded status no longer tells the truth (DESIGN section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lumo.crm.lifecycle import AsOf, InvoiceRow, days_overdue, is_open, promise_broken
from lumo.crm.money import format_code

KINDS = (
    "overdue_not_marked", "paid_not_marked", "no_recent_activity",
    "draft_not_sent", "promise_broken", "dispute_stalled",
)


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


def findings_for(inv: InvoiceRow, as_of: AsOf, rules: StaleThresholds = StaleThresholds()) -> list[Finding]:
    """Every stale finding of one invoice, in the order of KINDS."""
    today = as_of.today
    found: list[Finding] = []

    def add(kind: str, evidence: str, fix: str) -> None:
        found.append(Finding(inv.number, kind, evidence, fix))

    late = days_overdue(inv, today)
    if late and inv.status in ("sent", "viewed"):
        add(
            "overdue_not_marked",
            f"due {inv.due_date.isoformat()}, {late} days ago, balance "
            f"{format_code(inv.balance, inv.currency)}; status still '{inv.status}'",
            "Mark it overdue and start the reminder sequence",
        )
    if inv.amount_paid >= inv.amount and inv.status not in ("paid", "void", "written_off"):
        add(
            "paid_not_marked",
            f"payments of {format_code(inv.amount_paid, inv.currency)} cover the amount "
            f"{format_code(inv.amount, inv.currency)}; status '{inv.status}'",
            "Mark it paid",
        )
    quiet = as_of.days_since(inv.last_touch)
    if is_open(inv) and inv.status != "disputed" and quiet > rules.activity_days:
        add(
            "no_recent_activity",
            f"no event, note or status change since {as_of.local_date(inv.last_touch).isoformat()} ({quiet} days)",
            "Check in with the customer and log what you learn",
        )
    if inv.status == "draft" and (today - inv.issue_date).days > rules.draft_days:
        add(
            "draft_not_sent",
            f"still a draft {(today - inv.issue_date).days} days after its issue date {inv.issue_date.isoformat()}",
            "Send the invoice, or void it if it is not needed",
        )
    if promise_broken(inv, today) and inv.promise_to_pay_date is not None:
        add(
            "promise_broken",
            f"promised to pay by {inv.promise_to_pay_date.isoformat()}; "
            f"{format_code(inv.balance, inv.currency)} still open",
            "Call the customer about the broken promise and set a new date",
        )
    if inv.status == "disputed" and inv.balance > 0 and quiet > rules.dispute_days:
        add(
            "dispute_stalled",
            f"disputed ({inv.dispute_reason or 'no reason recorded'}); no activity for {quiet} days",
            "Follow up on the dispute and record the next step",
        )
    return found


def stale_findings(rows: list[InvoiceRow], as_of: AsOf, rules: StaleThresholds = StaleThresholds()) -> list[Finding]:
    """Findings over many invoices, ordered by invoice number then kind."""
    out: list[Finding] = []
    for row in sorted(rows, key=lambda r: r.number):
        out.extend(findings_for(row, as_of, rules))
    return out
