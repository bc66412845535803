"""Import refuses crafted files with one clear line and exit code 2, never a traceback:
duplicate keys, deep nesting, NUL characters, huge numbers, manager cycles and cross-owner links."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lumo.cli import main
from lumo.crm.errors import ImportRejected
from lumo.crm.exchange import import_snapshot, load_file
from lumo.db.models import Task, User
from tests.test_exchange import account, contact, invoice, make_snapshot, rejected_lines, user


def task(id: str, owner_id: str, **links: Any) -> dict[str, Any]:
    fields = {"id": id, "owner_id": owner_id, "account_id": None, "invoice_id": None, "title": "Call"}
    return fields | {"due_date": "2026-11-25", "done": False} | links


@pytest.fixture
def lumo_import(db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)

    def run(path: Path) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["lumo", "import", str(path)])
        with pytest.raises(SystemExit) as caught:
            main()
        return int(caught.value.code or 0), capsys.readouterr().err

    return run


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "snapshot.json"
    path.write_text(text)
    return path


# ---- the file itself ----


def test_a_duplicate_key_is_refused_because_which_value_counts_is_not_obvious(tmp_path: Path) -> None:
    text = json.dumps(make_snapshot()).replace('"email": "dana@acme.test"', '"email": "dana@acme.test", "email": "x@evil.test"')

    with pytest.raises(ImportRejected) as caught:
        load_file(write(tmp_path, text))

    assert caught.value.problems == [
        f'{tmp_path / "snapshot.json"}: duplicate key "email" in one object (id=u1): each key may appear once'
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"workspace": {}, "users": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"workspace": {}, "users": [' + '{"a": ' * 40 + "1" + "}" * 40 + "]}", "nested deeper than a snapshot can be"),
        ('{"workspace": {}, "deals": [{"amount": 1' + "0" * 5000 + "}]}", "invalid JSON"),
        ('{"workspace": {"name": "Acme\\u0000"}}', "workspace: name: contains a NUL character"),
    ],
    ids=["deep-unparseable", "deep-parseable", "huge-integer", "nul"],
)
def test_a_crafted_file_gives_exit_2_and_one_line(lumo_import: Any, tmp_path: Path, text: str, words: str) -> None:
    code, err = lumo_import(write(tmp_path, text))

    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err
    assert len(lines) == 2 and words in lines[0] and lines[1] == "error: 1 problem(s); nothing was imported"


def test_nul_characters_are_named_by_record_and_field_and_nothing_is_written(session: Session) -> None:
    data = make_snapshot(contacts=[contact("c1", name="Hank\x00"), contact("c2")])

    assert rejected_lines(session, data) == ["contacts[0] (id=c1): name: contains a NUL character, which cannot be stored"]
    assert session.scalar(select(func.count()).select_from(User)) == 0


# ---- managers ----


def test_a_manager_cycle_in_the_file_is_refused(session: Session) -> None:
    users = [user("u1", "dana@acme.test", manager_id="u9"), user("u9", "mia@acme.test", role="manager", manager_id="u1")]

    assert rejected_lines(session, make_snapshot(users=users)) == [
        "users[0] (id=u1): manager_id: managers form a cycle: u1 -> u9 -> u1"
    ]


def test_a_user_cannot_manage_themselves(session: Session) -> None:
    users = [user("u1", "dana@acme.test", manager_id="u1"), user("u9", "mia@acme.test", role="manager")]

    assert rejected_lines(session, make_snapshot(users=users)) == [
        "users[0] (id=u1): manager_id: managers form a cycle: u1 -> u1"
    ]


def test_a_manager_cycle_closed_through_the_database_is_refused(session: Session) -> None:
    import_snapshot(session, make_snapshot())  # u1 reports to u9
    session.commit()

    later = make_snapshot(users=[user("u9", "mia@acme.test", role="manager", manager_id="u1")])

    assert rejected_lines(session, later) == ["users[0] (id=u9): manager_id: managers form a cycle: u9 -> u1 -> u9"]


# ---- links across owners ----


def two_reps(**lists: list[dict[str, Any]]) -> dict[str, Any]:
    """u1 and u2, reps of manager u9; a1 is u1's, a2 is u2's (with contact c3 and invoice i3)."""
    base: dict[str, Any] = dict(
        users=[
            user("u1", "dana@acme.test", manager_id="u9"),
            user("u2", "lee@acme.test", manager_id="u9"),
            user("u9", "mia@acme.test", role="manager"),
        ],
        accounts=[account("a1"), account("a2", owner_id="u2")],
        contacts=[contact("c1"), contact("c2"), contact("c3", account_id="a2")],
        invoices=[invoice("i1", "INV-1042"), invoice("i3", "INV-3001", account_id="a2", contact_ids=["c3"])],
        payments=[],
        activities=[],
        deals=[],
        tasks=[],
    )
    return make_snapshot(**(base | lists))


def test_a_task_on_another_owners_account_or_invoice_is_refused(session: Session) -> None:
    data = two_reps(tasks=[task("t1", "u1", account_id="a2"), task("t2", "u1", invoice_id="i3")])

    assert rejected_lines(session, data) == [
        'tasks[0] (id=t1): account_id: account "a2" is in the book of user "u2", outside what the task owner "u1" sees',
        'tasks[1] (id=t2): invoice_id: invoice "i3" is in the book of user "u2", outside what the task owner "u1" sees',
    ]


def test_a_task_whose_invoice_is_of_another_account_is_refused(session: Session) -> None:
    data = two_reps(tasks=[task("t1", "u9", account_id="a1", invoice_id="i3")])

    assert rejected_lines(session, data) == ['tasks[0] (id=t1): invoice_id: invoice "i3" belongs to account "a2", not "a1"']


def test_a_manager_may_hold_tasks_on_the_teams_accounts(session: Session) -> None:
    data = two_reps(tasks=[task("t1", "u9", account_id="a2", invoice_id="i3"), task("t2", "u1", account_id="a1")])

    import_snapshot(session, data)

    assert session.scalar(select(func.count()).select_from(Task)) == 2


def test_an_invoice_contact_of_another_owners_account_is_refused(session: Session) -> None:
    data = two_reps(invoices=[invoice("i1", "INV-1042", contact_ids=["c1", "c3"])])

    assert rejected_lines(session, data) == [
        'invoices[0] (id=i1): contact_ids[1]: contact "c3" is on account "a2" of another owner ("u2"), not of "u1"'
    ]


def test_links_to_records_already_in_the_database_are_checked_too(session: Session) -> None:
    import_snapshot(session, two_reps())
    session.commit()

    later = make_snapshot(users=[], accounts=[], contacts=[], deals=[], invoices=[], payments=[], activities=[])
    later["tasks"] = [task("t9", "u1", invoice_id="i3")]

    assert rejected_lines(session, later) == [
        'tasks[0] (id=t9): invoice_id: invoice "i3" is in the book of user "u2", outside what the task owner "u1" sees'
    ]
