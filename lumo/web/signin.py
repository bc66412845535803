"""One-time sign-in links for the web app: `lumo web-link` makes one, the page exchanges it for a session token.

A link is short-lived and works once; only its SHA-256 is stored, like an API token's.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from lumo.auth import create_token, hash_token, revoke_tokens
from lumo.crm.errors import InvalidInput, LumoError, NotFound, UnknownUser
from lumo.db.models import User, WebLink

LINK_PREFIX = "lumolink_"
DEFAULT_LINK_MINUTES = 15
MAX_LINK_MINUTES = 24 * 60
# The session a link opens lasts a working day; then the page asks to sign in again.
SESSION_HOURS = 12
SESSION_TOKEN_NAME = "web sign-in"  # the name of the tokens sign-in links make (sign-out revokes only those)


class LinkRefused(LumoError):
    """A sign-in link that is unknown, expired or already used."""

    exit_code = 2
    http_status = 401


def create_link(session: Session, email: str, now: dt.datetime, minutes: int = DEFAULT_LINK_MINUTES) -> str:
    """A new one-time link token for the user with this email (shown once)."""
    if not 1 <= minutes <= MAX_LINK_MINUTES:
        raise InvalidInput(f"a link lives between 1 and {MAX_LINK_MINUTES} minutes, not {minutes}")
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise UnknownUser(f"unknown user: {email}")
    token = LINK_PREFIX + secrets.token_urlsafe(24)
    session.add(
        WebLink(user_id=user.id, token_hash=hash_token(token), created_at=now, expires_at=now + dt.timedelta(minutes=minutes))
    )
    session.flush()
    return token


def exchange_link(session: Session, token: str, now: dt.datetime) -> tuple[User, str]:
    """Spend a link: the user and a new API token for their browser session. A link works once."""
    link = session.scalar(select(WebLink).where(WebLink.token_hash == hash_token(token.strip())))
    if link is None:
        raise LinkRefused("this sign-in link is not valid: ask for a new one (lumo web-link --user EMAIL)")
    if link.used_at is not None:
        raise LinkRefused("this sign-in link was already used: ask for a new one (lumo web-link --user EMAIL)")
    if link.expires_at <= now:
        raise LinkRefused("this sign-in link has expired: ask for a new one (lumo web-link --user EMAIL)")
    # Conditional update: of two exchanges racing for one link, only one changes the row.
    spent = cast(  # an UPDATE's result is a cursor result, which counts the rows it changed
        CursorResult[Any],
        session.execute(update(WebLink).where(WebLink.id == link.id, WebLink.used_at.is_(None)).values(used_at=now)),
    ).rowcount
    if spent != 1:
        raise LinkRefused("this sign-in link was already used: ask for a new one (lumo web-link --user EMAIL)")
    user = session.get(User, link.user_id)
    assert user is not None  # a foreign key
    expires_at = now + dt.timedelta(hours=SESSION_HOURS)
    return user, create_token(session, user.email, now, name=SESSION_TOKEN_NAME, expires_at=expires_at)


def sign_out(session: Session, token: str) -> bool:
    """End a web session: a token made by a sign-in link is revoked. A pasted API token is only forgotten by the
    page (scripts may use it too): False."""
    try:
        return revoke_tokens(session, token=token, name=SESSION_TOKEN_NAME) == 1
    except NotFound:
        return False


def link_url(base_url: str, token: str) -> str:
    """The page's address with the link in the fragment, which browsers never send to a server or its logs."""
    return f"{base_url.rstrip('/')}/#signin={token}"
