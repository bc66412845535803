"""Account health and revenue at risk (ARCHITECTURE.md section 3)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lumo.crm import stale
from lumo.crm.dso import billed_in_window, dso_days
from lumo.crm.errors import NotFound
from lumo.crm.invoices import fetch_rows, rows_query
from lumo.crm.lifecycle import OVERDUE_BUCKETS, AsOf, InvoiceRow, aging_bucket, days_overdue, is_open
from lumo.crm.money import FxTable, amount_str, format_code, load_fx
from lumo.crm.scope import Scope
from lumo.db.models import Account, Invoice, Payment

GOOD, FAIR = 75, 50
ZERO = Decimal("0")


@dataclass
class AccountHealth:
    account_id: str
    name: str
    tier: str
    base_currency: str
    open_balance: dict[str, Decimal] = field(default_factory=dict)
    overdue_by_bucket: dict[str, Decimal] = field(default_factory=dict)  # base currency
    open_base: Decimal = ZERO
    overdue_base: Decimal = ZERO
    dso_days: int | None = None
    avg_days_late: Decimal | None = None
    disputes: int = 0
    stale: int = 0
    broken_promises: int = 0
    score: int = 100
    grade: str = "good"
    reasons: list[str] = field(default_factory=list)

    @property
    def at_risk(self) -> Decimal:
        """Overdue balance, plus the whole open balance when the account is in poor health."""
        return self.open_base if self.grade == "poor" else self.overdue_base

    def as_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "account": self.name,
            "tier": self.tier,
            "score": self.score,
            "grade": self.grade,
            "reasons": self.reasons,
            "open_balance": [{"currency": c, "amount": amount_str(a)} for c, a in self.open_balance.items()],
            "overdue_by_bucket": {b: amount_str(a) for b, a in self.overdue_by_bucket.items()},
            "base_currency": self.base_currency,
            "open_base": amount_str(self.open_base),
            "overdue_base": amount_str(self.overdue_base),
            "revenue_at_risk": amount_str(self.at_risk),
            "dso_days": self.dso_days,
            "avg_days_late": str(self.avg_days_late.quantize(Decimal("0.1"))) if self.avg_days_late is not None else None,
            "disputes": self.disputes,
            "stale_statuses": self.stale,
            "broken_promises": self.broken_promises,
        }


def _last_payment_dates(session: Session, invoice_ids: list[str], as_of: AsOf) -> dict[str, dt.date]:
    out: dict[str, dt.date] = {}
    for start in range(0, len(invoice_ids), 1000):
        chunk = invoice_ids[start : start + 1000]
        for invoice_id, paid_at in session.execute(
            select(Payment.invoice_id, func.max(Payment.paid_at))
            .where(Payment.invoice_id.in_(chunk))
            .group_by(Payment.invoice_id)
        ).all():
            if isinstance(paid_at, str):
                paid_at = dt.datetime.fromisoformat(paid_at)
            if paid_at.tzinfo is None:
                paid_at = paid_at.replace(tzinfo=dt.UTC)
            out[invoice_id] = as_of.local_date(paid_at)
    return out


def _score(h: AccountHealth) -> None:
    penalty = ZERO
    if h.open_base > 0 and h.overdue_base > 0:
        share = h.overdue_base / h.open_base
        penalty += 40 * share
        h.reasons.append(f"{int(share * 100)}% of the open balance is overdue ({format_code(h.overdue_base, h.base_currency)})")
    over_90 = h.overdue_by_bucket.get("90+", ZERO)
    if over_90 > 0:
        penalty += 10
        h.reasons.append(f"{format_code(over_90, h.base_currency)} more than 90 days overdue")
    if h.avg_days_late is not None and h.avg_days_late > 0:
        penalty += 20 * min(h.avg_days_late, Decimal(60)) / 60
        h.reasons.append(f"pays {h.avg_days_late.quantize(Decimal('1'))} days late on average")
    if h.disputes:
        penalty += min(10 * h.disputes, 20)
        h.reasons.append(f"{h.disputes} open dispute{'s' if h.disputes > 1 else ''}")
    if h.broken_promises:
        penalty += min(10 * h.broken_promises, 20)
        h.reasons.append(f"{h.broken_promises} broken promise{'s' if h.broken_promises > 1 else ''} to pay")
    if h.stale:
        penalty += min(5 * h.stale, 15)
        h.reasons.append(f"{h.stale} stale status{'es' if h.stale > 1 else ''}")
    h.score = max(0, int(100 - penalty))
    h.grade = "good" if h.score >= GOOD else "fair" if h.score >= FAIR else "poor"
    if not h.reasons:
        h.reasons.append("nothing overdue, disputed or stale")


def account_health(
    session: Session, scope: Scope, as_of: AsOf, *, account: str | None = None, fx: FxTable | None = None
) -> list[AccountHealth]:
    """Health of every account in scope (or one, by id or exact name), worst first."""
    fx = fx or load_fx(session)
    query = rows_query(scope)
    if account is not None:
        query = query.where((Account.id == account) | (func.lower(Account.name) == account.strip().lower()))
    rows = fetch_rows(session, query.order_by(Invoice.account_id))
    if account is not None and not rows:
        names = session.execute(
            select(Account.id, Account.name, Account.tier)
            .where(scope.account_filter())
            .where((Account.id == account) | (func.lower(Account.name) == account.strip().lower()))
        ).all()
        if not names:
            raise NotFound(f"account {account} not found")
        return [AccountHealth(i, n, t, fx.base) for i, n, t in names]
    by_account: dict[str, list[InvoiceRow]] = defaultdict(list)
    for row in rows:
        by_account[row.account_id].append(row)
    paid_dates = _last_payment_dates(session, [r.id for r in rows if r.status == "paid"], as_of)
    out = [_account(invs, as_of, fx, paid_dates) for invs in by_account.values()]
    out.sort(key=lambda h: (h.score, -h.open_base, h.name, h.account_id))
    return out


def _account(invs: list[InvoiceRow], as_of: AsOf, fx: FxTable, paid_dates: dict[str, dt.date]) -> AccountHealth:
    first = invs[0]
    h = AccountHealth(first.account_id, first.account_name, first.account_tier, fx.base)
    open_pairs: dict[str, Decimal] = {}
    billed_recent, lateness = ZERO, []
    for inv in invs:
        if is_open(inv):
            open_pairs[inv.currency] = open_pairs.get(inv.currency, ZERO) + inv.balance
            h.open_base += fx.to_base(inv.balance, inv.currency)
            late = days_overdue(inv, as_of.today)
            if late:
                bucket = aging_bucket(late)
                base = fx.to_base(inv.balance, inv.currency)
                h.overdue_by_bucket[bucket] = h.overdue_by_bucket.get(bucket, ZERO) + base
                h.overdue_base += base
        if inv.status == "disputed" and inv.balance > 0:
            h.disputes += 1
        kinds = stale.stale_kinds(inv, as_of)  # counts only: no evidence in words
        h.broken_promises += kinds.count("promise_broken")
        h.stale += sum(k not in ("promise_broken", "dispute_stalled") for k in kinds)
        if billed_in_window(inv, as_of):
            billed_recent += fx.to_base(inv.amount, inv.currency)
        if inv.id in paid_dates:
            lateness.append(max((paid_dates[inv.id] - inv.due_date).days, 0))
    h.open_balance = dict(sorted(open_pairs.items()))
    h.overdue_by_bucket = {b: h.overdue_by_bucket[b] for b in OVERDUE_BUCKETS if b in h.overdue_by_bucket}
    h.dso_days = dso_days(h.open_base, billed_recent)
    if lateness:
        h.avg_days_late = Decimal(sum(lateness)) / len(lateness)
    _score(h)
    return h


def revenue_at_risk(healths: list[AccountHealth]) -> dict[str, Any]:
    """Overdue balance everywhere plus the open balance of accounts in poor health, in base currency."""
    risky = [h for h in healths if h.at_risk > 0]
    risky.sort(key=lambda h: (-h.at_risk, h.name))
    base = healths[0].base_currency if healths else None
    return {
        "base_currency": base,
        "total": amount_str(sum((h.at_risk for h in risky), ZERO)),
        "accounts": [{"account": h.name, "grade": h.grade, "amount": amount_str(h.at_risk), "reasons": h.reasons} for h in risky],
    }
