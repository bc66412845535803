"""Dependencies declared once: the database session, the current user's scope, the day, Lumo itself."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from lumo.agent.service import Lumo
from lumo.api.openapi import DATE_HELP, DateText
from lumo.auth import user_for_token
from lumo.crm.errors import InvalidInput, LumoError
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import Scope, scope_for_user

bearer = HTTPBearer(auto_error=False, description="A token from `lumo tokens create`.")


class Unauthorized(LumoError):
    http_status = 401
    headers = {"WWW-Authenticate": "Bearer"}  # RFC 6750: say which scheme the client should retry with


# The dependencies that only compute are `async def`: FastAPI runs a plain `def` one on its thread pool, a hand-off
# that costs more than the work. Those that query the database stay plain, off the event loop.


async def no_nul_characters(request: Request) -> None:
    """PostgreSQL can neither store nor compare a NUL character: refuse one in the path or query up front."""
    values = [str(v) for v in request.path_params.values()] + [x for kv in request.query_params.multi_items() for x in kv]
    if any("\x00" in v for v in values):
        raise InvalidInput("the request contains a NUL character")


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


Now = Annotated[dt.datetime, Depends(now_utc)]


def current_scope(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)], now: Now
) -> Scope:
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing bearer token")
    # A session of its own, closed at once: a request-long session would hold a pooled connection through a whole
    # chat turn, whose tools need connections of their own (concurrent chats then exhausted the pool and hung).
    with request.app.state.session_factory() as session:
        user = user_for_token(session, credentials.credentials, now)
        if user is None:
            raise Unauthorized("invalid, revoked or expired token")
        return scope_for_user(session, user)


CurrentScope = Annotated[Scope, Depends(current_scope)]


async def as_of(
    scope: CurrentScope,
    now: Now,
    date: Annotated[DateText | None, Query(description=f"The day it is, {DATE_HELP} (default: today for the user).")] = None,
) -> AsOf:
    return AsOf.given(date, now, scope.tz)


AsOfDep = Annotated[AsOf, Depends(as_of)]

# A row id in a path: the database's 64-bit integers (a larger one is a 422, not a driver overflow).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


async def get_lumo(request: Request) -> Lumo:
    lumo: Lumo = request.app.state.lumo
    return lumo


LumoDep = Annotated[Lumo, Depends(get_lumo)]
