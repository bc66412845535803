"""Users and API tokens. A token is shown once; only its SHA-256 is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm.errors import InvalidInput, UnknownUser
from lumo.crm.users import find_user, user_by_email
from lumo.db.models import ROLES, ApiToken, User

TOKEN_PREFIX = "lumo_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(
    session: Session,
    *,
    email: str,
    name: str,
    role: str = "rep",
    timezone: str = "UTC",
    manager_email: str | None = None,
    slack_user_id: str | None = None,
) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidInput(f"bad email {email!r}")
    if role not in ROLES:
        raise InvalidInput(f"bad role {role!r}: use one of {', '.join(ROLES)}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {timezone!r}") from None
    if find_user(session, email) is not None:
        raise InvalidInput(f"a user with email {email} already exists")
    manager_id = None
    if manager_email:
        manager = find_user(session, manager_email)
        if manager is None:
            raise UnknownUser(f"unknown manager: {manager_email}")
        manager_id = manager.id
    user = User(
        id=f"u-{uuid.uuid4().hex[:12]}",
        email=email,
        name=name,
        role=role,
        timezone=timezone,
        manager_id=manager_id,
        slack_user_id=slack_user_id,
    )
    session.add(user)
    session.flush()
    return user


def create_token(session: Session, email: str, now: dt.datetime, name: str = "") -> str:
    user = user_by_email(session, email)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), created_at=now))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.execute(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked.is_(False))
    ).scalar_one_or_none()
    return row
