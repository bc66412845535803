"""Users and API tokens. A token is shown once; only its SHA-256 is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, bindparam, or_, select, update
from sqlalchemy.orm import Session

from lumo.crm.addresses import parse_address
from lumo.crm.errors import InvalidInput, NotFound, UnknownUser
from lumo.crm.lifecycle import parse_day
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
    try:
        email = parse_address(email).lower()
    except InvalidInput as exc:
        raise InvalidInput(f"bad email: {exc}") from None
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


def token_expiry(value: str, now: dt.datetime) -> dt.datetime:
    """`--expires`: a number of days (`90d`) from now, or a day (YYYY-MM-DD) from whose start, UTC, it is refused."""
    days = re.fullmatch(r"(\d{1,5})d", value.strip())
    if days:
        if int(days.group(1)) == 0:
            raise InvalidInput("--expires needs at least 1 day")
        return now + dt.timedelta(days=int(days.group(1)))
    day = parse_day(value.strip(), "--expires")
    expires = dt.datetime.combine(day, dt.time(), dt.UTC)
    if expires <= now:
        raise InvalidInput(f"--expires {value} is not in the future")
    return expires


def create_token(session: Session, email: str, now: dt.datetime, name: str = "", expires_at: dt.datetime | None = None) -> str:
    user = user_by_email(session, email)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), created_at=now, expires_at=expires_at))
    session.flush()
    return token


def revoke_tokens(session: Session, *, token: str | None = None, email: str | None = None, name: str | None = None) -> int:
    """Revoke one token (by its value) or a user's tokens (all, or those with `name`); how many were revoked."""
    if not token and not email:
        raise InvalidInput("name the token to revoke, or --user EMAIL")
    where: list[ColumnElement[bool]] = [ApiToken.revoked.is_(False)]
    if token:
        where.append(ApiToken.token_hash == hash_token(token.strip()))
    if email:
        where.append(ApiToken.user_id == user_by_email(session, email).id)
    if name is not None:
        where.append(ApiToken.name == name)
    ids = list(session.scalars(select(ApiToken.id).where(*where)))
    if not ids:
        raise NotFound("no such active token")
    session.execute(update(ApiToken).where(ApiToken.id.in_(ids)).values(revoked=True))
    return len(ids)


# Built once: every request runs it, and building and coercing it each time cost more than the query (~0.15 ms).
_TOKEN_USER = (
    select(User)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked.is_(False),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > bindparam("now")),
    )
)


def user_for_token(session: Session, token: str, now: dt.datetime) -> User | None:
    """The token's user, unless it is unknown, revoked or expired at `now`."""
    return session.execute(_TOKEN_USER, {"token_hash": hash_token(token), "now": now}).scalar_one_or_none()
