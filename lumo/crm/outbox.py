"""Emails approved but not yet sent count as contact: they start the cooldown like a sent one."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import literal, or_, select
from sqlalchemy.orm import Session

from lumo.db.models import OutboxEmail

# Waiting, being sent, or perhaps delivered (uncertain): each counts as contact for the cooldown.
WAITING = ("queued", "sending", "uncertain")


def queued_invoice_numbers(session: Session, numbers: Iterable[str]) -> set[str]:
    """Which of these invoices an email waiting in the outbox is already about."""
    wanted = sorted(set(numbers))
    if not wanted:
        return set()
    # invoice_numbers is comma-separated: match whole numbers between commas.
    padded = literal(",").concat(OutboxEmail.invoice_numbers).concat(literal(","))
    rows = session.scalars(
        select(OutboxEmail.invoice_numbers).where(
            OutboxEmail.status.in_(WAITING), or_(*(padded.contains(f",{n},") for n in wanted))
        )
    ).all()
    found = {n for row in rows for n in row.split(",")}
    return found & set(wanted)
