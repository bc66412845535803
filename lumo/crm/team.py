"""A manager's view: each rep's book in figures (overdue, open, stale), in the base currency."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm import invoices, stale
from lumo.crm.errors import NotFound
from lumo.crm.lifecycle import AsOf, days_overdue, is_open, is_overdue
from lumo.crm.money import amount_str, load_fx
from lumo.crm.scope import Scope
from lumo.db.models import User

ZERO = Decimal("0")


@dataclass
class RepBook:
    rep_id: str
    rep: str
    accounts: int = 0
    open_count: int = 0
    open_base: Decimal = ZERO
    overdue_count: int = 0
    overdue_base: Decimal = ZERO
    most_days_overdue: int = 0
    stale_count: int = 0

    def as_json(self, base_currency: str) -> dict[str, Any]:
        return {
            "rep_id": self.rep_id,
            "rep": self.rep,
            "accounts": self.accounts,
            "open_count": self.open_count,
            "open_base": amount_str(self.open_base),
            "overdue_count": self.overdue_count,
            "overdue_base": amount_str(self.overdue_base),
            "most_days_overdue": self.most_days_overdue,
            "stale_count": self.stale_count,
            "currency": base_currency,
        }


def rep_books(session: Session, scope: Scope, as_of: AsOf, rep: str | None = None) -> tuple[list[RepBook], str]:
    """Each rep in scope with their figures, most overdue (in the base currency) first; or one rep by id or name.

    A rep outside the scope is reported as not found, exactly like one that does not exist.
    """
    query = select(User.id, User.name).where(User.role.in_(("rep", "manager")))
    if scope.owner_ids is not None:
        query = query.where(User.id.in_(sorted(scope.owner_ids)))
    people = dict(session.execute(query).all())
    if rep is not None:
        needle = rep.strip().lower()
        chosen = {i: n for i, n in people.items() if i == rep.strip() or n.lower() == needle}
        chosen = chosen or {i: n for i, n in people.items() if needle in n.lower()}
        if len(chosen) != 1:
            raise NotFound(f"rep {rep.strip()} not found")
        people = chosen
    fx = load_fx(session)
    books = {i: RepBook(i, n) for i, n in people.items()}
    accounts: dict[str, set[str]] = {i: set() for i in people}
    rows = invoices.actionable_rows(session, scope)
    for row in rows:
        book = books.get(row.owner_id)
        if book is None:
            continue
        accounts[row.owner_id].add(row.account_id)
        if is_open(row):
            book.open_count += 1
            book.open_base += fx.to_base(row.balance, row.currency)
        if is_overdue(row, as_of.today):
            book.overdue_count += 1
            book.overdue_base += fx.to_base(row.balance, row.currency)
            book.most_days_overdue = max(book.most_days_overdue, days_overdue(row, as_of.today))
        if stale.stale_kinds(row, as_of):
            book.stale_count += 1
    for rep_id, book in books.items():
        book.accounts = len(accounts[rep_id])
    ordered = sorted(books.values(), key=lambda b: (-b.overdue_base, b.rep, b.rep_id))
    if rep is None:
        ordered = [b for b in ordered if b.open_count or b.accounts or b.rep_id != scope.user_id]
    return ordered, fx.base
