"""The data exchange contract (ARCHITECTURE.md section 5): import checks everything first, upserts by id,
never writes half a file; export gives back the same snapshot."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lumo.crm.errors import ImportRejected
from lumo.crm.exchange import export_snapshot, import_snapshot, load_file
from lumo.crm.lifecycle import STATUSES
from lumo.crm.snapshot import LISTS, Snapshot
from lumo.db.models import (
    ACTIVITY_KINDS,
    Activity,
    Base,
    Invoice,
    User,
)

# ---- a small valid snapshot, built from one function per record ----


def user(id: str, email: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "email": email,
        "name": f"User {id}",
        "role": "rep",
        "manager_id": None,
        "timezone": "America/New_York",
        "slack_user_id": None,
    } | fields


def account(id: str, owner_id: str = "u1", **fields: Any) -> dict[str, Any]:
    return {"id": id, "name": f"Account {id}", "owner_id": owner_id, "tier": "standard"} | fields


def contact(id: str, account_id: str = "a1", **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "account_id": account_id,
        "name": f"Contact {id}",
        "email": f"{id}@globex.test",
        "role": "billing",
        "do_not_contact": False,
    } | fields


def invoice(id: str, number: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "number": number,
        "account_id": "a1",
        "deal_id": None,
        "contact_ids": ["c1"],
        "issue_date": "2026-10-01",
        "due_date": "2026-10-31",
        "amount": "1000.00",
        "currency": "USD",
        "status": "sent",
        "status_updated_at": "2026-10-01T09:00:00+00:00",
    } | fields


def payment(invoice_id: str, amount: str, paid_at: str) -> dict[str, Any]:
    return {"invoice_id": invoice_id, "amount": amount, "paid_at": paid_at}


def activity(invoice_id: str, kind: str, at: str, by: str | None = "u1", text: str = "") -> dict[str, Any]:
    return {"invoice_id": invoice_id, "kind": kind, "at": at, "by": by, "text": text}


def make_snapshot(**lists: list[dict[str, Any]]) -> dict[str, Any]:
    """Two users (the rep's manager listed after the rep), one account with two contacts, a deal,
    two invoices (one in EUR), payments, activities and a task. Keyword arguments replace lists."""
    data: dict[str, Any] = {
        "workspace": {"name": "Acme Corp", "base_currency": "USD", "fx_rates": {"EUR": "1.08"}},
        "users": [
            user("u1", "dana@acme.test", manager_id="u9", slack_user_id="U123"),
            user("u9", "mia@acme.test", role="manager", timezone="Europe/Berlin"),
        ],
        "accounts": [account("a1", tier="key", renewal_date="2027-01-15")],
        "contacts": [contact("c1"), contact("c2", do_not_contact=True)],
        "deals": [
            {
                "id": "d1",
                "account_id": "a1",
                "name": "Globex expansion",
                "stage": "closed_won",
                "amount": "48000.00",
                "currency": "USD",
            }
        ],
        "invoices": [
            invoice(
                "i1",
                "INV-1042",
                deal_id="d1",
                contact_ids=["c2", "c1"],
                amount="12400.00",
                currency="EUR",
                promise_to_pay_date="2026-11-20",
                payment_url="https://pay.example/INV-1042",
            ),
            invoice("i2", "INV-1043", status="disputed", dispute_reason="wrong quantity"),
        ],
        "payments": [
            payment("i1", "400.00", "2026-11-02T10:00:00+00:00"),
            payment("i1", "100.50", "2026-11-03T06:00:00-04:00"),
        ],
        "activities": [
            activity("i1", "email", "2026-10-20T11:00:00-04:00", text="Reminder sent"),
            activity("i1", "note", "2026-10-25T09:00:00+00:00", by=None, text="Customer on holiday"),
            activity("i2", "status_change", "2026-10-05T09:00:00+00:00", text="Disputed by phone"),
        ],
        "tasks": [
            {
                "id": "t1",
                "owner_id": "u1",
                "account_id": "a1",
                "invoice_id": "i1",
                "title": "Call Hank",
                "due_date": "2026-11-25",
                "done": False,
            }
        ],
    }
    data.update(copy.deepcopy(lists))
    return data


def row_counts(session: Session) -> dict[str, int]:
    return {t.name: session.execute(select(func.count()).select_from(t)).scalar_one() for t in Base.metadata.sorted_tables}


def rejected_lines(session: Session, data: dict[str, Any]) -> list[str]:
    with pytest.raises(ImportRejected) as caught:
        import_snapshot(session, data)
    session.rollback()
    return caught.value.problems


# ---- a valid file ----


def test_a_valid_snapshot_imports_every_record(session: Session) -> None:
    summary = import_snapshot(session, make_snapshot())
    session.commit()

    assert {name: (c.created, c.updated) for name, c in summary.counts.items()} == {
        "workspace": (1, 0),
        "fx_rates": (1, 0),
        "users": (2, 0),
        "accounts": (1, 0),
        "contacts": (2, 0),
        "deals": (1, 0),
        "invoices": (2, 0),
        "payments": (2, 0),
        "activities": (3, 0),
        "tasks": (1, 0),
    }
    counts = row_counts(session)
    assert counts["invoices"] == 2 and counts["payments"] == 2 and counts["activities"] == 3
    assert counts["invoice_contacts"] == 3
    assert session.get(User, "u1").manager_id == "u9"  # a manager listed after the rep
    i1 = session.get(Invoice, "i1")
    assert (i1.amount, i1.currency) == (Decimal("12400.00"), "EUR")
    assert [c.id for c in i1.contacts] == ["c2", "c1"]  # the file's order


def test_amount_paid_and_last_activity_are_derived_from_the_file(session: Session) -> None:
    import_snapshot(session, make_snapshot())
    session.commit()

    i1, i2 = session.get(Invoice, "i1"), session.get(Invoice, "i2")
    assert i1.amount_paid == Decimal("500.50")
    assert i1.last_activity_at == dt.datetime(2026, 10, 25, 9, tzinfo=dt.UTC)  # the note
    assert i1.last_contacted_at == dt.datetime(2026, 10, 20, 15, tzinfo=dt.UTC)  # the email, in UTC
    assert i2.amount_paid == Decimal("0.00")
    assert i2.last_activity_at == dt.datetime(2026, 10, 5, 9, tzinfo=dt.UTC)
    assert i2.last_contacted_at is None  # a status change is not a contact


# ---- re-import ----


def test_reimport_updates_in_place_and_adds_no_history_twice(session: Session) -> None:
    import_snapshot(session, make_snapshot())
    session.commit()
    changed = make_snapshot()
    changed["invoices"][1]["amount"] = "1500.00"
    changed["invoices"][0]["contact_ids"] = ["c1"]
    changed["payments"].append(payment("i2", "200.00", "2026-11-10T12:00:00+00:00"))

    summary = import_snapshot(session, changed)
    session.commit()

    assert (summary["invoices"].created, summary["invoices"].updated) == (0, 2)
    assert (summary["payments"].created, summary["payments"].skipped) == (1, 2)
    assert (summary["activities"].created, summary["activities"].skipped) == (0, 3)
    counts = row_counts(session)
    assert (counts["invoices"], counts["payments"], counts["activities"]) == (2, 3, 3)
    i2 = session.scalars(select(Invoice).where(Invoice.number == "INV-1043")).one()
    assert (i2.amount, i2.amount_paid) == (Decimal("1500.00"), Decimal("200.00"))
    assert [c.id for c in session.get(Invoice, "i1").contacts] == ["c1"]  # the list is replaced


def test_reimport_with_a_moment_in_another_offset_is_the_same_payment(session: Session) -> None:
    import_snapshot(session, make_snapshot())
    session.commit()
    again = make_snapshot()
    again["payments"][0]["paid_at"] = "2026-11-02T12:00:00+02:00"
    again["payments"][0]["amount"] = "400"

    summary = import_snapshot(session, again)

    assert summary["payments"].created == 0
    assert row_counts(session)["payments"] == 2


def test_an_import_never_deletes(session: Session) -> None:
    import_snapshot(session, make_snapshot())
    session.commit()

    import_snapshot(session, make_snapshot(invoices=[], payments=[], activities=[], tasks=[]))
    session.commit()

    counts = row_counts(session)
    assert (counts["invoices"], counts["payments"], counts["activities"], counts["tasks"]) == (2, 2, 3, 1)


def test_a_file_may_refer_to_records_already_in_the_database(session: Session) -> None:
    import_snapshot(session, make_snapshot())
    session.commit()
    later = {
        "workspace": make_snapshot()["workspace"],
        "invoices": [invoice("i3", "INV-2000", account_id="a1", contact_ids=["c2"])],
        "activities": [activity("i1", "call", "2026-11-05T09:00:00+00:00", by="u9")],
    }

    summary = import_snapshot(session, later)
    session.commit()

    assert summary["invoices"].created == 1 and summary["activities"].created == 1
    assert session.get(Invoice, "i1").last_contacted_at == dt.datetime(2026, 11, 5, 9, tzinfo=dt.UTC)
    i3 = session.get(Invoice, "i3")  # no history yet
    assert (i3.amount_paid, i3.last_activity_at, i3.last_contacted_at) == (Decimal("0.00"), None, None)


def test_invoices_may_swap_numbers_and_users_emails(session: Session) -> None:
    import_snapshot(session, make_snapshot())
    session.commit()
    swapped = make_snapshot()
    swapped["invoices"][0]["number"], swapped["invoices"][1]["number"] = "INV-1043", "INV-1042"
    swapped["users"][0]["email"], swapped["users"][1]["email"] = "mia@acme.test", "dana@acme.test"

    import_snapshot(session, swapped)
    session.commit()

    assert session.get(Invoice, "i1").number == "INV-1043"
    assert session.get(User, "u9").email == "dana@acme.test"
    assert session.get(User, "u1").slack_user_id == "U123"


# ---- a bad file ----


def bad_snapshot() -> dict[str, Any]:
    data = make_snapshot()
    data["invoices"][0]["amount"] = 12400.0  # a JSON number, not a string
    data["invoices"][1]["colour"] = "red"
    data["invoices"].append(invoice("i3", "INV-1044", account_id="a404", currency="XYZ"))
    data["invoices"].append(invoice("i1", "INV-1045"))
    data["payments"][0]["paid_at"] = "2026-11-02T10:00:00"
    return data


EXPECTED_PROBLEMS = [
    'invoices[0] (id=i1): amount: must be a decimal string like "1250.00"',
    "invoices[1] (id=i2): colour: unknown key",
    'invoices[2] (id=i3): currency: "XYZ" is not an ISO-4217 currency code',
    'invoices[2] (id=i3): account_id: unknown account "a404" (neither in the file nor in the database)',
    "invoices[3] (id=i1): id: duplicate id: also at invoices[0]",
    "payments[0] (invoice_id=i1): paid_at: has no UTC offset, so the moment is ambiguous: "
    'write it like "2026-10-01T09:00:00+00:00"',
]


def test_a_bad_file_is_rejected_with_one_line_per_problem_and_nothing_written(session: Session) -> None:
    assert rejected_lines(session, bad_snapshot()) == EXPECTED_PROBLEMS
    assert set(row_counts(session).values()) == {0}


def test_a_bad_file_leaves_prior_data_unchanged(session: Session) -> None:
    import_snapshot(session, make_snapshot())
    session.commit()
    before = export_snapshot(session)

    assert rejected_lines(session, bad_snapshot()) == EXPECTED_PROBLEMS
    assert export_snapshot(session) == before


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["invoices"][0].update(amount="-5.00"), "invoices[0] (id=i1): amount: must not be negative"),
        (lambda d: d["invoices"][0].update(amount="5.001"), "invoices[0] (id=i1): amount: must have at most 2 decimals"),
        (
            lambda d: d["invoices"][0].update(currency="eur"),
            'invoices[0] (id=i1): currency: must be a 3-letter upper-case ISO-4217 code like "EUR"',
        ),
        (
            lambda d: d["invoices"][0].update(due_date="2026-09-01"),
            "invoices[0] (id=i1): due_date: must not be before issue_date (2026-10-01)",
        ),
        (
            lambda d: d["invoices"][0].update(issue_date="2026-02-30"),
            'invoices[0] (id=i1): issue_date: "2026-02-30" is not a calendar date',
        ),
        (
            lambda d: d["invoices"][0].update(status="late"),
            "invoices[0] (id=i1): status: must be one of 'draft', 'sent', 'viewed', 'partially_paid', 'paid', "
            "'overdue', 'disputed', 'void' or 'written_off'",
        ),
        (
            lambda d: d["invoices"][0].update(contact_ids=["c1", "c9"]),
            'invoices[0] (id=i1): contact_ids[1]: unknown contact "c9" (neither in the file nor in the database)',
        ),
        (lambda d: d["invoices"][0].pop("status_updated_at"), "invoices[0] (id=i1): status_updated_at: required key is missing"),
        (
            lambda d: d["invoices"][1].update(number="INV-1042"),
            'invoices[1] (id=i2): number: "INV-1042" is also used by invoices[0] (id=i1)',
        ),
        (
            lambda d: d["users"][1].update(email="Dana@acme.test"),
            'users[1] (id=u9): email: "Dana@acme.test" is also used by users[0] (id=u1)',
        ),
        (lambda d: d["users"][0].update(role="boss"), "users[0] (id=u1): role: must be one of 'rep', 'manager' or 'admin'"),
        (
            lambda d: d["users"][0].update(timezone="Mars/Olympus"),
            'users[0] (id=u1): timezone: must be an IANA time zone like "America/New_York"',
        ),
        (
            lambda d: d["users"][0].update(manager_id="u404"),
            'users[0] (id=u1): manager_id: unknown user "u404" (neither in the file nor in the database)',
        ),
        (lambda d: d["contacts"][0].update(do_not_contact="no"), "contacts[0] (id=c1): do_not_contact: must be true or false"),
        (
            lambda d: d["activities"][0].update(kind="sms"),
            "activities[0] (invoice_id=i1): kind: must be one of 'email', 'call', 'note' or 'status_change'",
        ),
        (
            lambda d: d["activities"][0].update(by="u404"),
            'activities[0] (invoice_id=i1): by: unknown user "u404" (neither in the file nor in the database)',
        ),
        (
            lambda d: d["tasks"][0].update(invoice_id="i404"),
            'tasks[0] (id=t1): invoice_id: unknown invoice "i404" (neither in the file nor in the database)',
        ),
        (
            lambda d: d["workspace"]["fx_rates"].pop("EUR"),
            "workspace: fx_rates: no rate for EUR to USD, used by invoices[0] (id=i1)",
        ),
        (lambda d: d["workspace"]["fx_rates"].update(EUR="0"), "workspace: fx_rates.EUR: must be greater than 0"),
        (lambda d: d.pop("workspace"), "snapshot: workspace: required key is missing"),
        (lambda d: d.update(invoice=[]), "snapshot: invoice: unknown key"),
        (lambda d: d.update(tasks={}), "snapshot: tasks: must be a list"),
        (lambda d: d["deals"].append("d2"), "deals[1] (id=?): record: must be a JSON object"),
    ],
)
def test_each_kind_of_problem_names_record_field_and_reason(session: Session, change: Any, problem: str) -> None:
    data = make_snapshot()
    change(data)
    assert rejected_lines(session, data) == [problem]


def test_values_taken_in_the_database_are_problems_too(session: Session) -> None:
    import_snapshot(session, make_snapshot())
    session.commit()
    data = make_snapshot(
        users=[user("u2", "DANA@acme.test")],
        invoices=[invoice("i5", "INV-1042")],
        payments=[],
        activities=[],
        tasks=[],
    )
    data["workspace"] = {"name": "Acme Corp", "base_currency": "GBP", "fx_rates": {}}

    assert rejected_lines(session, data) == [
        "workspace: fx_rates: no rate for USD to GBP, used by deals[0] (id=d1) and 1 more",
        'users[0] (id=u2): email: "DANA@acme.test" is already used by user "u1" in the database',
        'invoices[0] (id=i5): number: "INV-1042" is already used by invoice "i1" in the database',
    ]


# ---- export ----


def test_export_import_export_gives_the_same_snapshot(session_factory: Any, tmp_path: Path) -> None:
    with session_factory() as session:
        import_snapshot(session, make_snapshot())
        session.commit()
        first = export_snapshot(session)
    with session_factory() as session:  # empty the database, then load the export
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
        session.commit()
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(first))
    with session_factory() as session:
        import_snapshot(session, load_file(path))
        session.commit()
        second = export_snapshot(session)

    assert second == first
    assert json.dumps(second) == json.dumps(first)  # key order too


def test_export_follows_the_contract_shape(session: Session) -> None:
    import_snapshot(session, make_snapshot())
    session.commit()
    exported = export_snapshot(session)

    Snapshot.model_validate(exported)  # importable as it stands
    assert list(exported) == ["workspace", *LISTS]
    for list_name, model in LISTS.items():
        assert list(exported[list_name][0]) == list(model.model_fields), list_name
    assert exported["workspace"] == {"name": "Acme Corp", "base_currency": "USD", "fx_rates": {"EUR": "1.08"}}
    assert exported["invoices"][0]["amount"] == "12400.00"
    assert exported["payments"][1] == payment("i1", "100.50", "2026-11-03T10:00:00+00:00")
    assert [a["at"] for a in exported["activities"]] == [
        "2026-10-20T15:00:00+00:00",
        "2026-10-25T09:00:00+00:00",
        "2026-10-05T09:00:00+00:00",
    ]


def test_the_contract_lists_the_statuses_and_kinds_of_the_models() -> None:
    status = LISTS["invoices"].model_fields["status"].annotation
    kind = LISTS["activities"].model_fields["kind"].annotation
    assert status.__args__ == STATUSES and kind.__args__ == ACTIVITY_KINDS


# ---- files ----


def test_a_file_that_is_not_json_is_rejected_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"workspace": {"name": "Acme",}}')

    with pytest.raises(ImportRejected) as caught:
        load_file(path)

    assert caught.value.problems == [
        f"{path}: invalid JSON at line 1 column 31: Expecting property name enclosed in double quotes"
    ]


def test_a_large_file_is_written_in_bulk(session: Session) -> None:
    invoices = [invoice(f"i{n:05}", f"INV-{n:05}") for n in range(2000)]
    payments = [payment(i["id"], "10.00", "2026-11-01T00:00:00+00:00") for i in invoices]
    data = make_snapshot(invoices=invoices, payments=payments, activities=[], tasks=[])

    summary = import_snapshot(session, data)
    session.commit()

    assert (summary["invoices"].created, summary["payments"].created) == (2000, 2000)
    paid = session.execute(select(func.sum(Invoice.amount_paid))).scalar_one()
    assert Decimal(str(paid)) == Decimal("20000.00")
    counts = row_counts(session)
    assert (counts["invoices"], counts["payments"], counts["invoice_contacts"]) == (2000, 2000, 2000)


# ---- history through import and export ----


def _status_events(session: Session) -> list[tuple[str, str | None, str | None, str | None]]:
    rows = session.execute(
        select(Activity.invoice_id, Activity.from_status, Activity.to_status, Activity.by_id)
        .where(Activity.kind == "status_change")
        .order_by(Activity.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_importing_a_changed_status_writes_a_status_event(session: Session) -> None:
    import_snapshot(session, make_snapshot(activities=[]))
    session.commit()
    changed = make_snapshot(activities=[])
    changed["invoices"][0].update(status="paid", status_updated_at="2026-11-20T08:00:00+00:00")
    import_snapshot(session, changed)
    session.commit()
    [event] = _status_events(session)
    assert event == ("i1", "sent", "paid", None)
    text, at = session.execute(select(Activity.text, Activity.at).where(Activity.kind == "status_change")).one()
    assert text == "Status changed by import: sent -> paid" and at == dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC)
    import_snapshot(session, changed)  # the same file again: nothing changes, nothing is added
    session.commit()
    assert len(_status_events(session)) == 1


def test_a_file_that_brings_its_own_status_event_gets_no_second_one(session: Session) -> None:
    import_snapshot(session, make_snapshot(activities=[]))
    session.commit()
    own = {**activity("i1", "status_change", "2026-11-20T08:00:00+00:00", text="Paid by wire")}
    own |= {"from_status": "sent", "to_status": "paid"}
    changed = make_snapshot(activities=[own])
    changed["invoices"][0].update(status="paid")
    import_snapshot(session, changed)
    session.commit()
    assert _status_events(session) == [("i1", "sent", "paid", "u1")]


def test_a_round_trip_keeps_every_status_events_from_and_to(session_factory: Any, tmp_path: Path) -> None:
    from lumo.demo.seed import seed_demo

    seed_demo(session_factory.kw["bind"], invoices=300, reps=2, seed=5, today=dt.date(2026, 11, 25))
    with session_factory() as session:
        before = _status_events(session)
        first = export_snapshot(session)
    exported = [a for a in first["activities"] if a["kind"] == "status_change"]
    assert exported and all(a["from_status"] and a["to_status"] for a in exported)
    with session_factory() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
        session.commit()
        import_snapshot(session, json.loads(json.dumps(first)))
        session.commit()
        after = _status_events(session)
    assert sorted(after, key=str) == sorted(before, key=str) and len(after) == len(exported)
