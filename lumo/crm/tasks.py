"""Follow-up tasks as a person sees them: open ones in their scope, by due date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm.scope import Scope
from lumo.db.models import Account, Invoice, Task


def open_tasks(session: Session, scope: Scope, today: dt.date, due_by: dt.date | None = None) -> list[dict[str, Any]]:
    """Open tasks in scope due on or before `due_by` (all open ones if None), the latest first among equals."""
    query = (
        select(Task.id, Task.title, Task.due_date, Account.name, Invoice.number)
        .outerjoin(Account, Account.id == Task.account_id)
        .outerjoin(Invoice, Invoice.id == Task.invoice_id)
        .where(Task.done.is_(False))
        .order_by(Task.due_date, Task.id)
    )
    if due_by is not None:
        query = query.where(Task.due_date <= due_by)
    if scope.owner_ids is not None:
        query = query.where(Task.owner_id.in_(sorted(scope.owner_ids)))
    return [
        {
            "task_id": tid,
            "title": title,
            "due_date": due.isoformat() if due else None,
            "days_late": max((today - due).days, 0) if due else 0,
            "account": account,
            "invoice_number": number,
        }
        for tid, title, due, account, number in session.execute(query).all()
    ]
