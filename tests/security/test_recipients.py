"""Recipients are single addresses, parsed: a list or a display name hidden in one string never reaches SMTP.

`ap,attacker@evil.test` or `billing<attacker@evil.test>` used to import as a contact's email and
then went to the outside address. cc is limited to the account's contacts and the owner's manager.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from lumo.agent import toolrun
from lumo.auth import add_user
from lumo.crm.drafts import draft_for_invoice
from lumo.crm.errors import InvalidInput
from lumo.crm.lifecycle import AsOf
from lumo.crm.outreach import check_email
from lumo.crm.scope import scope_for_email
from lumo.digest import Mailer, MailError
from tests import factories as f
from tests.reliability.smtp_faults import FaultySmtp
from tests.test_exchange import contact, make_snapshot, rejected_lines

AS_OF = AsOf(f.TODAY, ZoneInfo("UTC"))
SMUGGLED = [
    "ap,attacker@evil.test",
    "billing<attacker@evil.test>",
    "Pat <c1@customer.test>",
    "c1@customer.test\nBcc: x@evil.test",
]


@pytest.mark.parametrize("address", SMUGGLED)
def test_import_refuses_a_contact_email_that_is_not_one_address(session: Session, address: str) -> None:
    data = make_snapshot(contacts=[contact("c1"), contact("c2", email=address)])

    [line] = rejected_lines(session, data)

    assert line.startswith("contacts[1] (id=c2): email: ") and "email address" in line


def test_import_keeps_a_plain_address_as_written(session: Session) -> None:
    from lumo.crm.exchange import export_snapshot, import_snapshot

    import_snapshot(session, make_snapshot(contacts=[contact("c1", email="Hank.Scorpio@Globex.test"), contact("c2")]))

    assert export_snapshot(session)["contacts"][0]["email"] == "Hank.Scorpio@Globex.test"


def test_a_user_is_added_only_with_one_address(session: Session) -> None:
    f.workspace(session)
    with pytest.raises(InvalidInput, match="bad email"):
        add_user(session, email="dana@acme.test,attacker@evil.test", name="Dana")


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    """u1's Globex invoice billed to c1; c5 another Globex contact; u2 (Initech) a colleague of u1 under m1."""
    people = f.basic_book(session)
    f.contact(session, "c5", "a1", name="Accounts Payable")
    f.user(session, "m2", role="manager")
    return people | {"inv": f.invoice(session, "a1", contacts=("c1",), days_overdue=40)}


def check(session: Session, number: str, to: list[str], cc: list[str] = ()) -> None:  # type: ignore[assignment]
    scope = scope_for_email(session, "u1@acme.test")
    check_email(session, scope, numbers=[number], to=to, cc=list(cc), text="Hello", as_of=AS_OF)


def test_approval_compares_parsed_addresses(session: Session, book: dict[str, Any]) -> None:
    check(session, book["inv"].number, ["C1@Customer.TEST"])  # the same address, written differently
    for address in SMUGGLED:
        with pytest.raises(InvalidInput, match="not one email address|not a contact"):
            check(session, book["inv"].number, [address])


def test_cc_may_be_the_accounts_contacts_and_the_owners_manager(session: Session, book: dict[str, Any]) -> None:
    check(session, book["inv"].number, ["c1@customer.test"], ["c5@customer.test", "m1@acme.test"])


@pytest.mark.parametrize("outsider", ["u2@acme.test", "m2@acme.test", "admin@acme.test", "c2@customer.test"])
def test_cc_refuses_other_workspace_users_and_other_accounts_contacts(
    session: Session, book: dict[str, Any], outsider: str
) -> None:
    with pytest.raises(InvalidInput, match="may not be copied"):
        check(session, book["inv"].number, ["c1@customer.test"], [outsider])


def test_a_contact_stored_with_a_smuggled_address_gets_no_draft_and_no_email(session: Session, book: dict[str, Any]) -> None:
    f.contact(session, "c6", "a1").email = "ap,attacker@evil.test"  # imported before addresses were parsed
    inv = f.invoice(session, "a1", contacts=("c6",), days_overdue=40)
    session.flush()

    draft = draft_for_invoice(session, scope_for_email(session, "u1@acme.test"), inv.number, AS_OF)

    assert (draft.skipped_reason, draft.to) == ("invalid_address", [])
    with pytest.raises(InvalidInput, match="not one email address"):
        check(session, inv.number, ["ap,attacker@evil.test"])


@pytest.mark.parametrize("address", SMUGGLED)
def test_the_email_tool_refuses_a_recipient_that_is_not_one_address(address: str) -> None:
    args = {"to": ["c1@customer.test"], "cc": [address], "subject": "Hi", "body": "Hello", "invoice_numbers": ["INV-1"]}
    with pytest.raises(toolrun.ToolCallError, match="cc.0"):
        toolrun.validate(toolrun.REGISTRY["send_email"], args)


def test_the_sender_itself_refuses_a_recipient_that_is_not_one_address() -> None:
    server = FaultySmtp().start()
    try:
        mailer = Mailer(server.url, "lumo@lumenbase.test", timeout=5, sleep=lambda _: None)
        with pytest.raises(MailError, match="not one email address") as caught:
            mailer.send(["ap,attacker@evil.test"], "Hi", "Hello")
    finally:
        server.stop()
    assert not caught.value.transient and server.kept == [] and server.data_commands == 0
