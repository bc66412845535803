"""Read-only tools over the rest of a book: the team's figures per rep, tasks, contacts, recent changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field
from sqlalchemy.orm import Session

from lumo.crm import changes, contacts, tasks, team
from tools.base import Args, ToolContext, tool


class TeamArgs(Args):
    rep: str | None = Field(default=None, description="One rep's name or id; omit for every rep in your team.")
    limit: int = Field(default=10, ge=1, le=50)


@tool(TeamArgs)
def team_overview(ctx: ToolContext, args: TeamArgs, session: Session) -> dict[str, Any]:
    """Each rep's book (overdue, open, stale) in the base currency, most overdue first; or one rep's book."""
    books, base = team.rep_books(session, ctx.scope, ctx.as_of, rep=args.rep)
    return {"total": len(books), "reps": [b.as_json(base) for b in books[: args.limit]]}


class TasksArgs(Args):
    due_by: dt.date | None = Field(default=None, description="Only tasks due on or before this day (YYYY-MM-DD).")
    limit: int = Field(default=10, ge=1, le=50)


@tool(TasksArgs)
def open_tasks(ctx: ToolContext, args: TasksArgs, session: Session) -> dict[str, Any]:
    """The rep's open follow-up tasks by due date (late ones first), optionally only those due by a day."""
    found = tasks.open_tasks(session, ctx.scope, ctx.as_of.today, args.due_by)
    return {"total": len(found), "due_by": args.due_by.isoformat() if args.due_by else None, "tasks": found[: args.limit]}


class ContactsArgs(Args):
    account: str = Field(min_length=1, max_length=200, description="Account name (or part of it) or id.")


@tool(ContactsArgs)
def account_contacts(ctx: ToolContext, args: ContactsArgs, session: Session) -> dict[str, Any]:
    """An account's contacts: name, email, role and whether they may be contacted."""
    name, found = contacts.account_contacts(session, ctx.scope, args.account)
    return {"account": name, "contacts": found}


class ChangesArgs(Args):
    since: dt.date = Field(description="First day to include (YYYY-MM-DD).")
    limit: int = Field(default=20, ge=1, le=50)


@tool(ChangesArgs)
def recent_changes(ctx: ToolContext, args: ChangesArgs, session: Session) -> dict[str, Any]:
    """What changed in the rep's book since a day: status changes, emails, calls, notes and payments, newest first."""
    if args.since > ctx.as_of.today:
        raise ValueError(f"{args.since} is after today ({ctx.as_of.today})")
    found = changes.changes_since(session, ctx.scope, args.since, ctx.as_of)
    return {"since": args.since.isoformat(), "total": len(found), "changes": found[: args.limit]}
