"""Finding the account a person means by a name they typed, within their scope."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lumo.crm.errors import InvalidInput, NotFound
from lumo.crm.scope import Scope
from lumo.db.models import Account


def resolve_account(session: Session, scope: Scope, text: str) -> tuple[str, str]:
    """(id, name) of the one account `text` names: its id, its exact name, or else a unique part of a name."""
    needle = text.strip()
    base = select(Account.id, Account.name).where(scope.account_filter())
    exact = session.execute(base.where((Account.id == needle) | (func.lower(Account.name) == needle.lower()))).all()
    if len(exact) == 1:
        return exact[0][0], exact[0][1]
    found = (
        exact
        or session.execute(base.where(func.lower(Account.name).contains(needle.lower())).order_by(Account.name).limit(6)).all()
    )
    if not found:
        raise NotFound(f"account {needle} not found")
    if len(found) > 1:
        names = ", ".join(name for _, name in found[:5])
        raise InvalidInput(f"several accounts match {needle!r} ({names}): which one do you mean?")
    return found[0][0], found[0][1]


def ensure_account(session: Session, scope: Scope, text: str) -> None:
    """Raise NotFound unless some account in scope has `text` as its id or in its name (a filter that matches
    no account is an unknown name, told as such, not an empty list)."""
    needle = text.strip()
    query = select(Account.id).where(scope.account_filter())
    query = query.where((Account.id == needle) | func.lower(Account.name).contains(needle.lower())).limit(1)
    if session.execute(query).first() is None:
        raise NotFound(f"account {needle} not found")
