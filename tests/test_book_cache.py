"""Results kept per book version (lumo.crm.book_cache): every write to a book gives it a new version, on both
dialects, and a kept result is never served for another state of the book."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Executable, delete, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm import book_cache
from lumo.crm.lifecycle import AsOf
from lumo.crm.priorities import compute_priorities, priorities_json
from lumo.crm.scope import Scope, scope_for_email
from lumo.db.models import Account, Contact, FxRate, Invoice, InvoiceContact, Task, User
from tests import factories as f
from tests.agent_support import ask, build_book, open_lumo, scope_of

AS_OF = AsOf(f.TODAY, ZoneInfo("UTC"))


def _book(factory: sessionmaker[Session]) -> None:
    with factory() as s:
        f.basic_book(s)
        f.invoice(s, "a1", contacts=("c1",), days_overdue=20, amount=Decimal("900.00"))
        f.invoice(s, "a1", contacts=("c1",), days_overdue=5, amount=Decimal("400.00"))
        f.invoice(s, "a2", contacts=("c2",), days_overdue=9)
        s.commit()


def _versions(factory: sessionmaker[Session], who: str) -> tuple[int, ...] | None:
    with factory() as s:
        return book_cache.book_version(s, scope_for_email(s, who))


def _write(factory: sessionmaker[Session], statement: Executable) -> None:
    with factory() as s:
        s.execute(statement)
        s.commit()


def _add_task(s: Session) -> None:
    f.task(s, "t1", "u1", f.TODAY)


def test_every_write_to_a_book_changes_its_version_and_no_other(session_factory: sessionmaker[Session]) -> None:
    _book(session_factory)
    u2_before = _versions(session_factory, "u2@acme.test")
    writes: list[tuple[str, Callable[[Session], object]]] = [
        ("invoice update", lambda s: s.execute(update(Invoice).where(Invoice.account_id == "a1").values(amount_paid=1))),
        ("invoice insert", lambda s: f.invoice(s, "a1", days_overdue=3)),
        ("task insert", _add_task),
        ("task update", lambda s: s.execute(update(Task).where(Task.id == "t1").values(done=True))),
        ("contact update", lambda s: s.execute(update(Contact).where(Contact.id == "c1").values(name="Hank S."))),
        ("invoice contact delete", lambda s: s.execute(delete(InvoiceContact).where(InvoiceContact.contact_id == "c1"))),
        ("task delete", lambda s: s.execute(delete(Task).where(Task.owner_id == "u1"))),
        ("account insert", lambda s: f.account(s, "a9", "u1")),
    ]
    for what, write in writes:
        before = _versions(session_factory, "u1@acme.test")
        with session_factory() as s:
            write(s)
            s.commit()
        assert _versions(session_factory, "u1@acme.test") != before, what
    assert _versions(session_factory, "u2@acme.test") == u2_before  # u2's book was not written


def test_a_change_that_reaches_every_book_changes_every_version(session_factory: sessionmaker[Session]) -> None:
    _book(session_factory)
    for statement in (
        update(Account).where(Account.id == "a1").values(owner_id="u2"),
        update(FxRate).where(FxRate.currency == "EUR").values(rate=Decimal("1.10")),
        update(User).where(User.id == "u1").values(name="Renamed"),
    ):
        before = [_versions(session_factory, who) for who in ("u1@acme.test", "u2@acme.test", "m1@acme.test")]
        _write(session_factory, statement)
        after = [_versions(session_factory, who) for who in ("u1@acme.test", "u2@acme.test", "m1@acme.test")]
        assert all(a != b for a, b in zip(after, before, strict=True)), statement
    assert _versions(session_factory, "admin@acme.test") is None  # the whole workspace is never cached


def test_kept_priorities_follow_every_committed_write(session_factory: sessionmaker[Session]) -> None:
    _book(session_factory)

    def shown(who: str = "u1@acme.test") -> list[dict[str, object]]:
        with session_factory() as s:
            return priorities_json(s, scope_for_email(s, who), AS_OF, limit=None)

    def fresh(who: str = "u1@acme.test") -> list[dict[str, object]]:
        with session_factory() as s:
            return [i.as_json() for i in compute_priorities(s, scope_for_email(s, who), AS_OF, limit=None)]

    first = shown()
    assert first == fresh() and shown() == first and len(first) == 2
    with session_factory() as s:  # a part payment changes the first item's balance
        inv = s.get(Invoice, _id_of(first[0]["invoice_number"], s))
        assert inv is not None
        f.pay(s, inv, "100.00")
        s.commit()
    paid = shown()
    assert paid == fresh() and paid[0]["amount"] == "800.00" and paid != first
    with session_factory() as s:  # a task due today on no invoice is an item of its own
        f.task(s, "t9", "u1", f.TODAY, title="Call Hank about the balance")
        s.commit()
    tasked = shown()
    assert tasked == fresh() and len(tasked) == 3 and any(i["task_id"] == "t9" for i in tasked)
    assert shown("m1@acme.test") == fresh("m1@acme.test")


def test_a_rolled_back_write_leaves_nothing_behind(session_factory: sessionmaker[Session]) -> None:
    _book(session_factory)
    with session_factory() as s:
        scope = scope_for_email(s, "u1@acme.test")
        committed = priorities_json(s, scope, AS_OF, limit=None)
    with session_factory() as s:  # read inside a write that is then rolled back: kept under a version never committed
        s.execute(update(Invoice).where(Invoice.account_id == "a1").values(status="paid", amount_paid=Invoice.amount))
        assert priorities_json(s, scope, AS_OF, limit=None) == []
        s.rollback()
    with session_factory() as s:
        assert priorities_json(s, scope, AS_OF, limit=None) == committed


def test_a_result_is_kept_per_key(session_factory: sessionmaker[Session]) -> None:
    _book(session_factory)
    with session_factory() as s:
        scope: Scope = scope_for_email(s, "u1@acme.test")
        calls: list[int] = []
        first = book_cache.cached(s, scope, ("probe",), lambda: calls.append(1) or len(calls))
        again = book_cache.cached(s, scope, ("probe",), lambda: calls.append(1) or len(calls))
        other_day = book_cache.cached(s, scope, ("probe", dt.date(2026, 1, 1)), lambda: calls.append(1) or len(calls))
    assert (first, again, other_day) == (1, 1, 2)


def test_the_cache_keeps_at_most_max_entries_the_least_recently_used_leaving_first(
    session_factory: sessionmaker[Session], monkeypatch: Any
) -> None:
    _book(session_factory)
    monkeypatch.setattr(book_cache, "MAX_ENTRIES", 2)
    engine = session_factory.kw["bind"]
    monkeypatch.delitem(book_cache._caches, engine, raising=False)  # a new cache, of the patched size
    computed: list[str] = []

    def get(s: Session, scope: Scope, key: str) -> str:
        return book_cache.cached(s, scope, (key,), lambda: computed.append(key) or key)

    with session_factory() as s:
        scope: Scope = scope_for_email(s, "u1@acme.test")
        get(s, scope, "a"), get(s, scope, "b"), get(s, scope, "a")  # "a" used last: "b" is the oldest
        get(s, scope, "c")  # evicts "b"
        get(s, scope, "a"), get(s, scope, "c"), get(s, scope, "b")
    assert computed == ["a", "b", "c", "b"]


def _id_of(number: object, s: Session) -> str:
    found = s.scalar(select(Invoice.id).where(Invoice.number == number))
    assert found is not None
    return found


def test_versions_are_read_once_until_forgotten(session_factory: sessionmaker[Session]) -> None:
    _book(session_factory)
    versions = book_cache.Versions()
    with session_factory() as s:
        scope = scope_for_email(s, "u1@acme.test")
        first = versions.of(s, scope)
    with session_factory() as s:
        f.task(s, "t5", "u1", f.TODAY)
        s.commit()
    with session_factory() as s:
        assert versions.of(s, scope) == first  # the turn sees the books as it found them
        versions.forget()  # after its own write
        assert versions.of(s, scope) != first


async def test_a_chat_turn_reads_the_book_versions_once(
    db_url: str, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as s:
        build_book(s)
    scope = scope_of(session_factory, "u1@acme.test")
    reads: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "book_versions" in statement:
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    async with open_lumo(db_url, session_factory, None) as lumo:
        first = await ask(lumo, scope, "what should I do today?")
        assert len(reads) == 1  # the names of the book and the priorities tool share one read
        again = await ask(lumo, scope, "what should I do today?")
    assert len(reads) == 2
    assert "INV-1042" in first["reply"] and again["reply"] == first["reply"]
