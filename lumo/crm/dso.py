"""Days sales outstanding per rep and for the team (the caller's scope), beside the per-account figure."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm.invoices import fetch_rows, rows_query
from lumo.crm.lifecycle import AsOf, InvoiceRow, is_open
from lumo.crm.money import FxTable, amount_str, load_fx
from lumo.crm.scope import Scope
from lumo.db.models import User

WINDOW_DAYS = 90
ZERO = Decimal("0")


def definition(base: str) -> str:
    return (
        f"DSO = open balance / amount billed in the last {WINDOW_DAYS} days x {WINDOW_DAYS}, in {base} "
        "(billed: invoices issued in the window, drafts and voids left out; open: balance of open invoices)"
    )


def dso_days(open_base: Decimal, billed_base: Decimal) -> int | None:
    """None when nothing was billed in the window: the ratio would mean nothing."""
    return int(open_base / billed_base * WINDOW_DAYS) if billed_base > 0 else None


def billed_in_window(inv: InvoiceRow, as_of: AsOf) -> bool:
    return inv.status not in ("draft", "void") and 0 <= (as_of.today - inv.issue_date).days <= WINDOW_DAYS


@dataclass
class Dso:
    open_base: Decimal = ZERO
    billed_base: Decimal = ZERO

    def add(self, inv: InvoiceRow, as_of: AsOf, fx: FxTable) -> None:
        if is_open(inv):
            self.open_base += fx.to_base(inv.balance, inv.currency)
        if billed_in_window(inv, as_of):
            self.billed_base += fx.to_base(inv.amount, inv.currency)

    def as_json(self) -> dict[str, Any]:
        return {
            "dso_days": dso_days(self.open_base, self.billed_base),
            "open_base": amount_str(self.open_base),
            "billed_base": amount_str(self.billed_base),
        }


def dso_report(session: Session, scope: Scope, as_of: AsOf, fx: FxTable | None = None) -> dict[str, Any]:
    """DSO of each rep whose accounts are in scope, and of the whole scope (the team), with its definition."""
    fx = fx or load_fx(session)
    reps: dict[str, Dso] = defaultdict(Dso)
    team = Dso()
    for inv in fetch_rows(session, rows_query(scope)):
        reps[inv.owner_id].add(inv, as_of, fx)
        team.add(inv, as_of, fx)
    names = dict(session.execute(select(User.id, User.name).where(User.id.in_(sorted(reps)))).all())
    return {
        "definition": definition(fx.base),
        "base_currency": fx.base,
        "window_days": WINDOW_DAYS,
        "reps": [
            {"rep_id": rid, "rep": names.get(rid, rid), **reps[rid].as_json()}
            for rid in sorted(reps, key=lambda r: (names.get(r, r), r))
        ],
        "team": team.as_json(),
    }
