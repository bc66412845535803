"""Tasks: creating one, and reading them under a scope (a task is seen by whoever sees its owner, its links only
by whoever sees them).

A task's account or invoice may sit in another owner's book (a rep moved teams, an old import):
its owner's manager then sees the task, but not that account's name or that invoice's number.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, case, select, true
from sqlalchemy.orm import Session, aliased

from lumo.crm.scope import Scope
from lumo.db.models import Account, Invoice, Task

_InvoiceAccount = aliased(Account)


def _seen(scope: Scope, owner: Any) -> ColumnElement[bool]:
    return true() if scope.owner_ids is None else owner.in_(sorted(scope.owner_ids))


def task_rows(scope: Scope) -> Select[str, str, dt.date | None, str | None, str | None]:
    """SELECT task id, title, due date, account name and invoice number (NULL where `scope` does not see them).

    Callers add which tasks (owner, done, due date).
    """
    account_name = case((_seen(scope, Account.owner_id), Account.name), else_=None)
    invoice_number = case((_seen(scope, _InvoiceAccount.owner_id), Invoice.number), else_=None)
    return (
        select(Task.id, Task.title, Task.due_date, account_name, invoice_number)
        .outerjoin(Account, Account.id == Task.account_id)
        .outerjoin(Invoice, Invoice.id == Task.invoice_id)
        .outerjoin(_InvoiceAccount, _InvoiceAccount.id == Invoice.account_id)
    )


def open_tasks(session: Session, scope: Scope, today: dt.date, due_by: dt.date | None = None) -> list[dict[str, Any]]:
    """Open tasks in scope due on or before `due_by` (all open ones if None), the latest first among equals."""
    query = task_rows(scope).where(Task.done.is_(False)).order_by(Task.due_date, Task.id)
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


def create_task(
    session: Session,
    *,
    owner_id: str,
    title: str,
    due_date: dt.date,
    invoice: Invoice | None = None,
    account_id: str | None = None,
) -> dict[str, Any]:
    """Add an open task to the session's transaction; a task about an invoice is on that invoice's account."""
    task = Task(
        id=f"t-{uuid.uuid4().hex[:12]}",
        owner_id=owner_id,
        account_id=invoice.account_id if invoice else account_id,
        invoice_id=invoice.id if invoice else None,
        title=title,
        due_date=due_date,
        done=False,
    )
    session.add(task)
    return {"task_id": task.id, "title": task.title, "due_date": due_date.isoformat()}
