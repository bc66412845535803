"""The outbox from the domain's side: queueing an approved email, and which invoices an email waiting there is about.

Emails approved but not yet sent count as contact: they start the cooldown like a sent one. Sending them is the
digest's mail sender (`lumo.digest.run.send_outbox`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

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


def queue_email(
    session: Session,
    *,
    action_id: str,
    user_id: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    subject: str,
    body: str,
    invoice_numbers: Sequence[str],
    now: dt.datetime,
) -> int:
    """Queue an approved email for the sender in the session's transaction; returns its outbox id.

    `action_id` is unique in the outbox: one approved action never queues two emails.
    """
    email = OutboxEmail(
        action_id=action_id,
        user_id=user_id,
        to=",".join(to),
        cc=",".join(cc),
        subject=subject,
        body=body,
        invoice_numbers=",".join(invoice_numbers),
        status="queued",
        attempts=0,
        created_at=now,
    )
    session.add(email)
    session.flush()
    return email.id
