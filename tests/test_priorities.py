from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from lumo.crm.lifecycle import AsOf
from lumo.crm.priorities import compute_priorities
from lumo.crm.scope import scope_for_email
from tests import factories as f

AS_OF = AsOf(f.TODAY, ZoneInfo("UTC"))


def ranked(session: Session, who: str = "u1@acme.test") -> list[dict]:
    return [i.as_json() for i in compute_priorities(session, scope_for_email(session, who), AS_OF, limit=None)]


def test_items_carry_reasons_in_words_and_a_next_action(session: Session) -> None:
    f.basic_book(session)
    inv = f.invoice(
        session,
        "a1",
        contacts=("c1",),
        days_overdue=38,
        amount=Decimal("12400.00"),
        currency="EUR",
        status_updated_at=dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC),
    )
    [item] = ranked(session)
    assert item["rank"] == 1 and item["kind"] == "overdue" and item["invoice_number"] == inv.number
    assert item["amount"] == "12400.00" and item["currency"] == "EUR" and item["days_overdue"] == 38
    assert item["reasons"][:3] == ["EUR 12,400.00 overdue 38 days", "status still 'sent'", "no contact in 55 days"]
    assert item["action"].startswith(f"Mark it overdue and send the escalation reminder for {inv.number}")
    assert "Hank Scorpio" in item["action"]


def test_multi_currency_amounts_rank_through_fx(session: Session) -> None:
    f.basic_book(session)
    # GBP 1000 = USD 1270 outranks USD 1200; EUR 1000 = USD 1080 ranks below it.
    usd = f.invoice(session, "a1", contacts=("c1",), days_overdue=10, amount=Decimal("1200.00"))
    gbp = f.invoice(session, "a1", contacts=("c1",), days_overdue=10, amount=Decimal("1000.00"), currency="GBP")
    eur = f.invoice(session, "a1", contacts=("c1",), days_overdue=10, amount=Decimal("1000.00"), currency="EUR")
    assert [i["invoice_number"] for i in ranked(session)] == [gbp.number, usd.number, eur.number]


def test_ties_rank_stably_by_due_date_then_number(session: Session) -> None:
    f.basic_book(session)
    made = [f.invoice(session, "a1", contacts=("c1",), days_overdue=10) for _ in range(4)]
    first = [i["invoice_number"] for i in ranked(session)]
    assert first == sorted(i.number for i in made)
    assert [i["invoice_number"] for i in ranked(session)] == first


def test_more_overdue_ranks_higher_at_equal_amount(session: Session) -> None:
    f.basic_book(session)
    a = f.invoice(session, "a1", contacts=("c1",), days_overdue=5)
    b = f.invoice(session, "a1", contacts=("c1",), days_overdue=50)
    assert [i["invoice_number"] for i in ranked(session)] == [b.number, a.number]


def test_broken_promise_ranks_high_and_pending_promise_waits(session: Session) -> None:
    f.basic_book(session)
    plain = f.invoice(session, "a1", contacts=("c1",), days_overdue=20)
    broken = f.invoice(session, "a1", contacts=("c1",), days_overdue=20, promise_to_pay_date=f.TODAY - dt.timedelta(days=2))
    pending = f.invoice(session, "a1", contacts=("c1",), days_overdue=20, promise_to_pay_date=f.TODAY + dt.timedelta(days=2))
    items = {i["invoice_number"]: i for i in ranked(session)}
    assert items[broken.number]["kind"] == "promise_broken"
    assert items[broken.number]["rank"] < items[plain.number]["rank"] < items[pending.number]["rank"]
    assert items[pending.number]["action"].startswith("Wait for the promised payment")


def test_due_soon_paid_not_marked_and_tasks_are_items(session: Session) -> None:
    f.basic_book(session)
    soon = f.invoice(session, "a1", contacts=("c1",), days_overdue=-2)
    later = f.invoice(session, "a1", contacts=("c1",), days_overdue=-10)
    paid = f.invoice(session, "a1", contacts=("c1",), days_overdue=-20, status="partially_paid")
    f.pay(session, paid, "1000.00")
    f.task(session, "t1", "u1", f.TODAY, title="Call Hank")
    f.task(session, "t2", "u1", f.TODAY + dt.timedelta(days=1), title="Tomorrow")
    f.task(session, "t3", "u1", f.TODAY, title="Done already", done=True)
    by_kind = {(i["kind"], i["invoice_number"] or i["task_id"]) for i in ranked(session)}
    assert ("due_soon", soon.number) in by_kind and ("stale_status", paid.number) in by_kind
    assert ("task_due", "t1") in by_kind
    assert not {later.number, "t2", "t3"} & {key for _, key in by_kind}


def test_a_rep_sees_only_their_book_and_a_manager_the_team(session: Session) -> None:
    f.basic_book(session)
    mine = f.invoice(session, "a1", contacts=("c1",), days_overdue=10)
    theirs = f.invoice(session, "a2", contacts=("c2",), days_overdue=10)
    f.task(session, "t9", "u2", f.TODAY)
    assert {i["invoice_number"] for i in ranked(session, "u1@acme.test")} == {mine.number}
    assert {i["invoice_number"] for i in ranked(session, "m1@acme.test")} == {mine.number, theirs.number, None}
    assert {i["invoice_number"] for i in ranked(session, "admin@acme.test")} == {mine.number, theirs.number, None}


def test_narrowing_in_sql_leaves_out_no_item(engine, session: Session) -> None:  # type: ignore[no-untyped-def]
    from lumo.crm.invoices import actionable_rows
    from lumo.demo.seed import seed_demo

    seed_demo(engine, invoices=400, reps=3, seed=11, today=f.TODAY)
    for email in ("demo@lumenbase.test", "admin@lumenbase.test"):
        scope = scope_for_email(session, email)
        for day in (f.TODAY, f.TODAY + dt.timedelta(days=9), f.TODAY - dt.timedelta(days=20)):
            as_of = AsOf(day, scope.tz)
            narrowed = [i.as_json() for i in compute_priorities(session, scope, as_of, limit=None)]
            every = [
                i.as_json() for i in compute_priorities(session, scope, as_of, limit=None, rows=actionable_rows(session, scope))
            ]
            assert narrowed == every and narrowed


def test_one_day_overdue_is_said_in_the_singular(session: Session) -> None:
    f.basic_book(session)
    f.invoice(session, "a1", contacts=("c1",), days_overdue=1, status="overdue")
    [item] = compute_priorities(session, scope_for_email(session, "u1@acme.test"), AS_OF)
    assert "USD 1,000.00 overdue 1 day" in item.reasons
