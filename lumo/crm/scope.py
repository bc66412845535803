"""Who sees what: a rep their own accounts, a manager their team's, an admin all."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from lumo.crm.users import user_by_email
from lumo.db.models import Account, User


@dataclass(frozen=True)
class Scope:
    user_id: str
    email: str
    name: str
    role: str
    timezone: str
    owner_ids: frozenset[str] | None  # None: the whole workspace

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def account_filter(self) -> ColumnElement[bool]:
        """A WHERE clause on accounts limiting rows to this scope."""
        if self.owner_ids is None:
            return true()
        return Account.owner_id.in_(sorted(self.owner_ids))


def scope_for_user(session: Session, user: User) -> Scope:
    if user.role == "admin":
        owners: frozenset[str] | None = None
    elif user.role == "manager":
        team = session.scalars(select(User.id).where(User.manager_id == user.id)).all()
        owners = frozenset([user.id, *team])
    else:
        owners = frozenset([user.id])
    return Scope(user.id, user.email, user.name, user.role, user.timezone or "UTC", owners)


def scope_for_email(session: Session, email: str) -> Scope:
    return scope_for_user(session, user_by_email(session, email))
