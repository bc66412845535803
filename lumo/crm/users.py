"""Finding a user by email: one rule for the CLI's --rep, the digest and API tokens."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lumo.crm.errors import UnknownUser
from lumo.db.models import User


def find_user(session: Session, email: str) -> User | None:
    """The user with this email, ignoring case and surrounding spaces; an exact match wins.

    Emails are unique whatever their case (import checks it), but stored as they came.
    """
    given = email.strip()
    return session.scalar(
        select(User).where(func.lower(User.email) == given.lower()).order_by(User.email != given, User.id).limit(1)
    )


def user_by_email(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise UnknownUser(f"unknown user: {email}")
    return user
