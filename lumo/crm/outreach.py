"""The rules every outgoing email must meet, whoever wrote it (ARCHITECTURE.md section 3): who may receive it,
which invoices may be chased today, and no demand for payment on a disputed invoice."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lumo.crm.contacts import invoice_contacts
from lumo.crm.drafts import skip_reason
from lumo.crm.errors import InvalidInput
from lumo.crm.invoices import get_row
from lumo.crm.lifecycle import AsOf
from lumo.crm.outbox import queued_invoice_numbers
from lumo.crm.scope import Scope
from lumo.db.models import User

DEMAND = re.compile(
    r"\b(over ?due|past due|late payment|final notice|collections?|pay (now|immediately|today)|"
    r"payment (is )?(due|required|needed|overdue))\b",
    re.IGNORECASE,
)


def check_email(
    session: Session, scope: Scope, *, numbers: Sequence[str], to: Sequence[str], cc: Sequence[str], text: str, as_of: AsOf
) -> None:
    """Raise InvalidInput naming the first rule an email about these invoices would break."""
    rows = [get_row(session, scope, n) for n in numbers]
    if len({r.account_id for r in rows}) > 1:
        raise InvalidInput("one email covers invoices of one account only")
    queued = queued_invoice_numbers(session, numbers)
    for row in rows:
        reason = skip_reason(row, as_of) or ("cooldown" if row.number in queued else None)
        if reason is not None:
            raise InvalidInput(f"no email should go out about {row.number} today: {reason}")
        if row.status == "disputed" and (len(rows) > 1 or DEMAND.search(text)):
            raise InvalidInput(f"{row.number} is disputed: write a follow-up on the dispute, not a demand for payment")
    contacts = [c for cs in invoice_contacts(session, [r.id for r in rows]).values() for c in cs]
    reachable = {c.email.lower() for c in contacts if not c.do_not_contact}
    blocked = {c.email.lower() for c in contacts if c.do_not_contact}
    for address in to:
        if address.lower() in blocked:
            raise InvalidInput(f"{address} is marked do-not-contact")
        if address.lower() not in reachable:
            raise InvalidInput(f"{address} is not a contact of {', '.join(numbers)}")
    outside = [a for a in cc if a.lower() not in reachable]
    colleagues = (
        {e.lower() for e in session.scalars(select(User.email).where(func.lower(User.email).in_([a.lower() for a in outside])))}
        if outside
        else set()
    )
    for address in cc:
        if address.lower() in blocked:
            raise InvalidInput(f"{address} is marked do-not-contact")
        if address.lower() not in reachable | colleagues:
            raise InvalidInput(f"{address} may not be copied: only the invoices' contacts and colleagues")
