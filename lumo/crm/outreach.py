"""The rules every outgoing email must meet, whoever wrote it (ARCHITECTURE.md section 3): who may receive it,
which invoices may be chased today, and no demand for payment on a disputed invoice."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm.addresses import address_key
from lumo.crm.contacts import invoice_contacts
from lumo.crm.drafts import skip_reason
from lumo.crm.errors import InvalidInput
from lumo.crm.invoices import get_row
from lumo.crm.lifecycle import AsOf
from lumo.crm.outbox import queued_invoice_numbers
from lumo.crm.scope import Scope
from lumo.db.models import Contact, User

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
    queued = queued_invoice_numbers(session, [r.number for r in rows])  # as stored, whatever case was typed
    for row in rows:
        reason = skip_reason(row, as_of) or ("cooldown" if row.number in queued else None)
        if reason is not None:
            raise InvalidInput(f"no email should go out about {row.number} today: {reason}")
        if row.status == "disputed" and (len(rows) > 1 or DEMAND.search(text)):
            raise InvalidInput(f"{row.number} is disputed: write a follow-up on the dispute, not a demand for payment")
    _check_recipients(session, rows[0].account_id, rows[0].owner_id, [r.id for r in rows], to, cc, numbers)


def _check_recipients(
    session: Session,
    account_id: str,
    owner_id: str,
    invoice_ids: list[str],
    to: Sequence[str],
    cc: Sequence[str],
    numbers: Sequence[str],
) -> None:
    """`to`: the invoices' contacts; `cc`: also the account's other contacts and the owner's manager.

    Addresses are compared parsed (one addr-spec each), so a list or a display name smuggled into
    one string never matches a contact.
    """
    invoice_people = [c for cs in invoice_contacts(session, invoice_ids).values() for c in cs]
    account_people = session.execute(select(Contact.email, Contact.do_not_contact).where(Contact.account_id == account_id))
    reachable = {k for c in invoice_people if not c.do_not_contact and (k := address_key(c.email))}
    blocked = {k for c in invoice_people if c.do_not_contact and (k := address_key(c.email))}
    copyable = set(reachable)
    for email, do_not_contact in account_people:
        if (key := address_key(email)) is not None:
            (blocked if do_not_contact else copyable).add(key)
    manager = session.scalar(
        select(User.email).where(User.id == select(User.manager_id).where(User.id == owner_id).scalar_subquery())
    )
    if manager and (key := address_key(manager)) is not None:
        copyable.add(key)
    for field, addresses, allowed in (("to", to, reachable), ("cc", cc, copyable - blocked)):
        for address in addresses:
            key = address_key(address)
            if key is None:
                raise InvalidInput(f"{address!r} is not one email address")
            if key in blocked:
                raise InvalidInput(f"{address} is marked do-not-contact")
            if key not in allowed and field == "to":
                raise InvalidInput(f"{address} is not a contact of {', '.join(numbers)}")
            if key not in allowed:
                raise InvalidInput(f"{address} may not be copied: only the account's contacts and the owner's manager")
