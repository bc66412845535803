"""Routes the web app needs beyond the CLI's reads: sign-in by link, who am I (and my team), my threads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from lumo.api.deps import CurrentScope, Now, SessionDep, bearer
from lumo.api.openapi import ERRORS
from lumo.db.models import User
from lumo.web.signin import exchange_link, sign_out
from lumo.web.threads import recent_threads

router = APIRouter(prefix="/v1", tags=["web"], responses=ERRORS)


class LinkExchange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    link: str = Field(min_length=1, max_length=200, description="The token of a `lumo web-link` URL.")


class Person(BaseModel):
    email: str
    name: str
    role: str


class SignedIn(Person):
    token: str  # the session's API token: kept by the page in the browser tab


class Me(Person):
    timezone: str
    team: list[Person]  # the reps whose books the caller sees (a manager's team; empty for a rep)


class SignedOut(BaseModel):
    revoked: bool  # False: the token was not a sign-in session's (a pasted API token keeps working for scripts)


class ThreadEntry(BaseModel):
    thread_id: str
    title: str
    created_at: str
    updated_at: str


class ThreadList(BaseModel):
    threads: list[ThreadEntry]


def _person(user: User) -> dict[str, str]:
    return {"email": user.email, "name": user.name, "role": user.role}


@router.post("/web-links/exchange", response_model=SignedIn, summary="Trade a one-time sign-in link for a session token")
def exchange(body: LinkExchange, session: SessionDep, now: Now) -> dict[str, Any]:
    user, token = exchange_link(session, body.link, now)
    session.commit()
    return {"token": token, **_person(user)}


@router.post("/sign-out", response_model=SignedOut, summary="End this web session: its token stops working")
def end_session(
    scope: CurrentScope,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    session: SessionDep,
) -> dict[str, Any]:
    assert credentials is not None  # CurrentScope has checked it
    revoked = sign_out(session, credentials.credentials)
    session.commit()
    return {"revoked": revoked}


@router.get("/me", response_model=Me, summary="The caller, and the reps whose books they see")
def me(session: SessionDep, scope: CurrentScope) -> dict[str, Any]:
    query = select(User).order_by(User.name, User.email)
    if scope.owner_ids is not None:
        query = query.where(User.id.in_(sorted(scope.owner_ids)))
    team = [_person(u) for u in session.scalars(query).all() if u.id != scope.user_id]
    return {"email": scope.email, "name": scope.name, "role": scope.role, "timezone": scope.timezone, "team": team}


@router.get("/threads", response_model=ThreadList, summary="The caller's recent chat threads, newest first")
def threads(session: SessionDep, scope: CurrentScope, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    return {"threads": recent_threads(session, scope.user_id, limit)}
