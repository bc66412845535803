"""The names in a person's book (accounts, contacts, reps), for reading what they type against them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm.scope import Scope
from lumo.db.models import Account, Contact, User, Workspace

# Past this many accounts, names are matched in SQL only: reading them all on every turn costs more than it helps.
MAX_NAMED_ACCOUNTS = 5000


@dataclass(frozen=True)
class BookNames:
    accounts: tuple[str, ...] = ()
    contacts: tuple[tuple[str, str], ...] = ()  # (contact name, account name)
    reps: tuple[tuple[str, str], ...] = ()  # (user id, name) of the people whose books this scope sees, the asker aside
    base_currency: str = "USD"
    complete: bool = True  # False when the accounts were too many to list


def book_names(session: Session, scope: Scope) -> BookNames:
    accounts = session.execute(
        select(Account.name).where(scope.account_filter()).order_by(Account.name).limit(MAX_NAMED_ACCOUNTS + 1)
    ).scalars()
    names = tuple(accounts)
    complete = len(names) <= MAX_NAMED_ACCOUNTS
    contacts: tuple[tuple[str, str], ...] = ()
    if complete:
        rows = session.execute(
            select(Contact.name, Account.name).join(Account, Account.id == Contact.account_id).where(scope.account_filter())
        ).all()
        contacts = tuple((c, a) for c, a in rows)
    reps: tuple[tuple[str, str], ...] = ()
    if scope.owner_ids is None or len(scope.owner_ids) > 1:
        query = select(User.id, User.name).where(User.id != scope.user_id, User.role == "rep")
        if scope.owner_ids is not None:
            query = query.where(User.id.in_(sorted(scope.owner_ids)))
        reps = tuple((i, n) for i, n in session.execute(query.order_by(User.name)).all())
    workspace = session.get(Workspace, 1)
    base = workspace.base_currency if workspace else "USD"
    return BookNames(names if complete else (), contacts, reps, base, complete)
