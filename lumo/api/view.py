"""Whose book a read shows: the caller's scope, or one rep of it chosen with `?rep=EMAIL` (a manager's switch)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy import select

from lumo.api.deps import CurrentScope
from lumo.crm.errors import NotFound
from lumo.crm.scope import Scope
from lumo.db.models import User


def view_scope(
    request: Request,
    scope: CurrentScope,
    rep: Annotated[str | None, Query(max_length=320, description="Only this rep's book (a manager's team member).")] = None,
) -> Scope:
    if not rep or not rep.strip():
        return scope
    with request.app.state.session_factory() as session:
        user_id = session.scalar(select(User.id).where(User.email == rep.strip().lower()))
    if user_id is None or (scope.owner_ids is not None and user_id not in scope.owner_ids):  # outside looks unknown
        raise NotFound(f"rep {rep.strip()} not found")
    return dataclasses.replace(scope, owner_ids=frozenset([user_id]))


ViewScope = Annotated[Scope, Depends(view_scope)]
