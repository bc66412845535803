"""The ranking test book: orderings a collections lead expects of the priorities (expected loss, ARCHITECTURE.md section 3).

Each invoice sits on its own account unless a test says otherwise, so that only the signals named are in play.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from lumo.crm.lifecycle import AsOf
from lumo.crm.priorities import compute_priorities
from lumo.crm.scope import scope_for_email
from lumo.crm.signals import Weights, signals
from lumo.db.models import Invoice
from tests import factories as f

AS_OF = AsOf(f.TODAY, ZoneInfo("UTC"))
_accounts = itertools.count(1)


def ranked(session: Session, limit: int | None = None) -> list[dict[str, Any]]:
    return [i.as_json() for i in compute_priorities(session, scope_for_email(session, "u1@acme.test"), AS_OF, limit=limit)]


def rank_of(items: list[dict[str, Any]], number: str) -> int:
    return int(next(i["rank"] for i in items if i["invoice_number"] == number))


def on_own_account(session: Session, tier: str = "standard", **fields) -> Invoice:  # type: ignore[no-untyped-def]
    aid = f"acct{next(_accounts)}"
    f.account(session, aid, "u1", tier=tier)
    f.contact(session, f"c-{aid}", aid)
    return f.invoice(session, aid, contacts=(f"c-{aid}",), **fields)


def days_ago(n: int) -> dt.datetime:
    return dt.datetime.combine(f.TODAY - dt.timedelta(days=n), dt.time(9), dt.UTC)


def test_a_large_key_account_invoice_ranks_above_a_small_ancient_one(session: Session) -> None:
    f.basic_book(session)
    ancient = on_own_account(
        session, days_overdue=248, amount=Decimal("1628.82"), status="viewed", status_updated_at=days_ago(220)
    )
    large = on_own_account(session, tier="key", days_overdue=46, amount=Decimal("108666.33"))
    items = ranked(session)
    assert rank_of(items, large.number) < rank_of(items, ancient.number)


def test_a_broken_promise_ranks_above_a_fresh_overdue_of_the_same_size(session: Session) -> None:
    f.basic_book(session)
    fresh = on_own_account(session, days_overdue=8, amount=Decimal("5000.00"), status="overdue")
    broken = on_own_account(
        session, days_overdue=5, amount=Decimal("5000.00"), status="overdue", promise_to_pay_date=f.TODAY - dt.timedelta(days=2)
    )
    items = ranked(session)
    assert rank_of(items, broken.number) < rank_of(items, fresh.number)


def test_the_same_age_ranks_by_the_open_balance_in_base_currency(session: Session) -> None:
    f.basic_book(session)
    eur = on_own_account(session, days_overdue=30, amount=Decimal("10000.00"), currency="EUR")  # USD 10,800
    usd = on_own_account(session, days_overdue=30, amount=Decimal("10500.00"))
    paid_half = on_own_account(session, days_overdue=30, amount=Decimal("20000.00"), status="partially_paid")
    f.pay(session, paid_half, "10000.00")  # USD 10,000 left
    assert [i["invoice_number"] for i in ranked(session)] == [eur.number, usd.number, paid_half.number]


def test_a_promised_payment_on_its_way_and_a_fresh_chase_wait_behind_the_same_debt_untouched(session: Session) -> None:
    f.basic_book(session)
    untouched = on_own_account(session, days_overdue=20, amount=Decimal("5000.00"))
    promised = on_own_account(
        session, days_overdue=20, amount=Decimal("5000.00"), promise_to_pay_date=f.TODAY + dt.timedelta(days=3)
    )
    chased = on_own_account(session, days_overdue=20, amount=Decimal("5000.00"))
    f.email_sent(session, chased, days_ago=1)
    items = ranked(session)
    assert rank_of(items, untouched.number) < rank_of(items, chased.number)
    assert rank_of(items, untouched.number) < rank_of(items, promised.number)


def test_other_overdue_invoices_of_the_account_raise_the_risk_and_say_so(session: Session) -> None:
    f.basic_book(session)
    alone = on_own_account(session, days_overdue=30, amount=Decimal("5000.00"))
    crowded = on_own_account(session, days_overdue=30, amount=Decimal("5000.00"))
    for _ in range(3):
        f.invoice(session, crowded.account_id, contacts=(f"c-{crowded.account_id}",), days_overdue=40, amount=Decimal("100.00"))
    items = ranked(session)
    assert rank_of(items, crowded.number) < rank_of(items, alone.number)
    crowded_item = next(i for i in items if i["invoice_number"] == crowded.number)
    assert f"Account {crowded.account_id} has 3 other overdue invoices" in crowded_item["reasons"]


def _busy_book(session: Session) -> None:
    """24 overdue invoices of USD 1,000 to 24,000, each on its own account."""
    f.basic_book(session)
    for n in range(1, 25):
        on_own_account(session, days_overdue=10 + n, amount=Decimal(n * 1000))


def test_a_call_task_three_days_late_is_visible_on_its_invoice_and_weighs_it_up(session: Session) -> None:
    _busy_book(session)
    target = on_own_account(session, days_overdue=15, amount=Decimal("8000.00"))
    before = rank_of(ranked(session, limit=20), target.number)
    f.task(session, "t-call", "u1", f.TODAY - dt.timedelta(days=3), title="Call about the overdue invoice", invoice_id=target.id)
    items = ranked(session, limit=20)
    item = next(i for i in items if i["invoice_number"] == target.number)
    assert item["task_id"] == "t-call" and item["rank"] < before
    assert "task due 3 days ago (2026-11-22): Call about the overdue invoice" in item["reasons"]


def test_a_task_due_today_on_no_invoice_is_visible_in_a_busy_book(session: Session) -> None:
    _busy_book(session)
    f.task(session, "t-today", "u1", f.TODAY, title="Prepare the quarterly review")
    f.task(session, "t-late", "u1", f.TODAY - dt.timedelta(days=5), title="Send the statement")
    items = ranked(session, limit=20)
    ranks = {i["task_id"]: i["rank"] for i in items if i["kind"] == "task_due"}
    assert set(ranks) == {"t-today", "t-late"} and ranks["t-late"] < ranks["t-today"]


def test_a_draft_due_soon_is_scored_and_explained_as_a_draft_not_as_due_soon(session: Session) -> None:
    # The score and the words come from one table: a draft is not open, so it is not "due in 2 days" in either.
    f.basic_book(session)
    draft = on_own_account(session, days_overdue=-2, status="draft", issue_date=f.TODAY - dt.timedelta(days=12))
    [item] = ranked(session)
    assert item["invoice_number"] == draft.number and item["kind"] == "stale_status"
    assert item["reasons"] == ["USD 1,000.00 draft, due 2026-11-27", "draft not sent since 2026-11-13"]


def test_every_reason_is_a_signal_that_scored_the_item(engine, session: Session) -> None:  # type: ignore[no-untyped-def]
    from lumo.demo.seed import seed_demo

    seed_demo(engine, invoices=1500, reps=2, seed=11, today=f.TODAY)
    scope = scope_for_email(session, "demo@lumenbase.test")
    for item in compute_priorities(session, scope, AsOf(f.TODAY, scope.tz), limit=None):
        if item.invoice is None:
            continue
        assert item.facts is not None
        # Skipping the signals that cannot apply to its kind skips none that would apply.
        owed = item.invoice.balance > 0
        assert item.fired == tuple(s for s in signals(Weights()) if (owed or s.risk is None) and s.applies(item.facts))
        said = [s.words(item.facts) for s in item.fired]
        assert item.reasons[: len(said)] == said
        extra = item.reasons[len(said) :]  # the task on it, and the contact note
        assert len(extra) <= 2 and all(r.startswith("task due") or "contact" in r for r in extra), extra


def test_demo_seed_ranks_the_key_account_debt_above_the_small_ancient_one(engine, session: Session) -> None:  # type: ignore[no-untyped-def]
    """The cases of issue 16 on the demo seed (`lumo seed --demo --date 2026-12-02`)."""
    from lumo.demo.seed import seed_demo

    day = dt.date(2026, 12, 2)
    seed_demo(engine, today=day)
    scope = scope_for_email(session, "demo@lumenbase.test")
    items = [i.as_json() for i in compute_priorities(session, scope, AsOf(day, scope.tz), limit=20)]
    by_number = {i["invoice_number"]: i for i in items}
    key, other_key = by_number["INV-101442"], by_number["INV-101067"]
    assert (key["amount"], key["days_overdue"]) == ("108666.33", 46) and key["rank"] <= 3
    assert other_key["amount"] == "94734.69"  # in the top 20 now
    assert "INV-100440" not in by_number  # USD 1,628.82, 248 days overdue: was #1
    late_call = by_number["INV-100003"]  # its call task is 3 days late
    assert late_call["task_id"] == "t-0000002" and any(r.startswith("task due 3 days ago") for r in late_call["reasons"])
    assert any(i["task_id"] for i in items if any(r.startswith("task due today") for r in i["reasons"]))


def _count_scored(monkeypatch: Any) -> dict[str, int]:
    from lumo.crm import priorities

    scored = {"n": 0}
    original = priorities._Scorer.item

    def counting(self: Any, inv: Any) -> Any:
        scored["n"] += 1
        return original(self, inv)

    monkeypatch.setattr(priorities._Scorer, "item", counting)
    return scored


def _top(session: Session, scope: Any, limit: int | None) -> list[tuple[Any, ...]]:
    items = compute_priorities(session, scope, AsOf(f.TODAY, scope.tz), limit=limit)
    return [(i.rank, i.kind, i.invoice.number if i.invoice else i.task_id, i.score, i.reasons, i.action) for i in items]


def test_the_top_items_are_those_of_the_whole_ranking_cut_short(engine, session: Session, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The top `limit` skips invoices that cannot reach it: it must be exactly the whole ranking's first `limit`,
    with tasks weighing up their invoices, and with a task of its own (worth the day's median)."""
    from lumo.demo.seed import seed_demo

    seed_demo(engine, invoices=1500, reps=2, seed=7, today=f.TODAY)
    scope = scope_for_email(session, "demo@lumenbase.test")
    owner = sorted(scope.owner_ids or [])[0]
    # A task late on the smallest overdue invoice: its weight must count in what that invoice can score.
    small = min(
        (i for i in compute_priorities(session, scope, AsOf(f.TODAY, scope.tz), limit=None) if i.invoice and i.days_overdue),
        key=lambda i: i.invoice.balance if i.invoice else 0,
    )
    assert small.invoice is not None
    f.task(session, "t-small", owner, f.TODAY - dt.timedelta(days=9), title="Call", invoice_id=small.invoice.id)
    session.commit()
    whole = _top(session, scope, None)
    scored = _count_scored(monkeypatch)
    for limit in (1, 5, 20, 50):
        assert _top(session, scope, limit) == whole[:limit], limit
    assert 0 < scored["n"] < 4 * len(whole) / 2  # the four cut-short rankings scored less than half the invoices each
    f.task(session, "t-own", owner, f.TODAY, title="Prepare the quarterly review")  # on no invoice: every score counts
    session.commit()
    whole = _top(session, scope, None)
    assert any(row[2] == "t-own" for row in whole)
    for limit in (5, 20):
        assert _top(session, scope, limit) == whole[:limit], limit
