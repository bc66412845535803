"""The demo seed: every status, stale kind and bucket present, derived columns true, deterministic."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, ForeignKeyConstraint, and_, func, select, text
from sqlalchemy.orm import Session

from lumo.crm.errors import InvalidInput
from lumo.crm.lifecycle import STATUSES
from lumo.db.models import (
    Account,
    Activity,
    Base,
    Contact,
    FxRate,
    Invoice,
    Payment,
    Task,
    User,
)
from lumo.db.session import make_engine
from lumo.demo.seed import DEMO_REP_EMAIL, DEMO_REP_ID, database_is_empty, seed_demo

TODAY = dt.date(2026, 11, 25)
MIDNIGHT = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
OPEN = ("sent", "viewed", "partially_paid", "overdue", "disputed")


def seed_small(engine: Engine, seed: int = 7) -> None:
    seed_demo(engine, invoices=300, reps=3, seed=seed, today=TODAY)


def invoices_with_tz(engine: Engine) -> list[tuple[Invoice, ZoneInfo]]:
    """Every invoice with its owner's time zone (days are counted in the rep's calendar)."""
    with Session(engine) as session:
        rows = session.execute(
            select(Invoice, User.timezone).join(Account, Account.id == Invoice.account_id).join(User, User.id == Account.owner_id)
        ).all()
        return [(inv, ZoneInfo(tz)) for inv, tz in rows]


def balance(inv: Invoice) -> Decimal:
    return inv.amount - inv.amount_paid


def is_open(inv: Invoice) -> bool:
    return inv.status in OPEN and balance(inv) > 0


def days_quiet(inv: Invoice, tz: ZoneInfo) -> int:
    last = max(m for m in (inv.last_activity_at, inv.status_updated_at) if m is not None)
    return (TODAY - last.astimezone(tz).date()).days


def days_overdue(inv: Invoice) -> int:
    overdue = is_open(inv) and inv.status != "disputed" and inv.due_date < TODAY
    return (TODAY - inv.due_date).days if overdue else 0


# The preconditions of ARCHITECTURE.md section 3's six stale kinds, written out on the raw rows.
STALE_KINDS: dict[str, Callable[[Invoice, ZoneInfo], bool]] = {
    "overdue_not_marked": lambda inv, tz: inv.status in ("sent", "viewed") and days_overdue(inv) > 0,
    "paid_not_marked": lambda inv, tz: inv.amount_paid >= inv.amount and inv.status not in ("paid", "void", "written_off"),
    "no_recent_activity": lambda inv, tz: is_open(inv) and inv.status != "disputed" and days_quiet(inv, tz) > 14,
    "draft_not_sent": lambda inv, tz: inv.status == "draft" and (TODAY - inv.issue_date).days > 7,
    "promise_broken": lambda inv, tz: inv.promise_to_pay_date is not None and inv.promise_to_pay_date < TODAY and is_open(inv),
    "dispute_stalled": lambda inv, tz: inv.status == "disputed" and balance(inv) > 0 and days_quiet(inv, tz) > 14,
}


def test_small_seed_has_every_status(engine: Engine) -> None:
    seed_small(engine)
    with Session(engine) as session:
        statuses = set(session.scalars(select(Invoice.status).distinct()))
    assert statuses == set(STATUSES)


def test_demo_rep_is_the_first_rep_with_a_stable_id(engine: Engine) -> None:
    seed_small(engine)
    with Session(engine) as session:
        rep = session.get(User, DEMO_REP_ID)
        manager = session.get(User, rep.manager_id) if rep and rep.manager_id else None
        accounts = session.scalar(select(func.count()).where(Account.owner_id == DEMO_REP_ID))
    assert rep is not None and rep.email == DEMO_REP_EMAIL == "demo@lumenbase.test"
    assert rep.role == "rep" and rep.slack_user_id == "U0000001"
    assert manager is not None and manager.role == "manager"
    assert accounts and accounts > 0


def test_users_have_one_admin_managers_and_reps_in_varied_time_zones(engine: Engine) -> None:
    seed_demo(engine, invoices=200, reps=20, today=TODAY)
    with Session(engine) as session:
        users = session.scalars(select(User)).all()
    by_role = defaultdict(list)
    for user in users:
        by_role[user.role].append(user)
    assert len(by_role["admin"]) == 1 and len(by_role["manager"]) == 3 and len(by_role["rep"]) == 20
    assert all(u.manager_id in {m.id for m in by_role["manager"]} for u in by_role["rep"])
    assert len({u.timezone for u in by_role["rep"]}) > 3
    assert len({u.slack_user_id for u in users}) == len(users)


def test_amount_paid_is_the_sum_of_payments(engine: Engine) -> None:
    seed_small(engine)
    with Session(engine) as session:
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for invoice_id, amount in session.execute(select(Payment.invoice_id, Payment.amount)):
            sums[invoice_id] += amount
        invoices = session.scalars(select(Invoice)).all()
    assert sums, "the seed should record payments"
    assert all(inv.amount_paid == sums.get(inv.id, Decimal("0")) for inv in invoices)
    assert any(Decimal("0") < inv.amount_paid < inv.amount for inv in invoices)


def test_last_activity_columns_agree_with_activities(engine: Engine) -> None:
    seed_small(engine)
    with Session(engine) as session:
        last_any: dict[str, dt.datetime] = {}
        last_contact: dict[str, dt.datetime] = {}
        for invoice_id, kind, at in session.execute(select(Activity.invoice_id, Activity.kind, Activity.at)):
            last_any[invoice_id] = max(at, last_any.get(invoice_id, at))
            if kind in ("email", "call"):
                last_contact[invoice_id] = max(at, last_contact.get(invoice_id, at))
        invoices = session.scalars(select(Invoice)).all()
    assert all(inv.last_activity_at == last_any.get(inv.id) for inv in invoices)
    assert all(inv.last_contacted_at == last_contact.get(inv.id) for inv in invoices)


def test_status_history_chains_from_draft_to_the_current_status(engine: Engine) -> None:
    seed_small(engine)
    with Session(engine) as session:
        changes = defaultdict(list)
        rows = session.execute(
            select(Activity.invoice_id, Activity.at, Activity.from_status, Activity.to_status)
            .where(Activity.kind == "status_change")
            .order_by(Activity.invoice_id, Activity.at, Activity.id)
        )
        for invoice_id, at, from_status, to_status in rows:
            changes[invoice_id].append((at, from_status, to_status))
        invoices = session.scalars(select(Invoice)).all()
    for inv in invoices:
        chain = changes.get(inv.id, [])
        if not chain:
            assert inv.status == "draft"
            continue
        assert chain[0][1] == "draft"
        assert all(a[2] == b[1] for a, b in zip(chain, chain[1:], strict=False))
        assert chain[-1][2] == inv.status and chain[-1][0] == inv.status_updated_at


@pytest.mark.parametrize("kind", list(STALE_KINDS))
def test_every_stale_kind_occurs(engine: Engine, kind: str) -> None:
    seed_small(engine)
    rule = STALE_KINDS[kind]
    assert any(rule(inv, tz) for inv, tz in invoices_with_tz(engine))


def test_demo_rep_book_shows_every_stale_kind(engine: Engine) -> None:
    seed_small(engine)
    with Session(engine) as session:
        demo_accounts = set(session.scalars(select(Account.id).where(Account.owner_id == DEMO_REP_ID)))
    book = [(inv, tz) for inv, tz in invoices_with_tz(engine) if inv.account_id in demo_accounts]
    assert {kind for kind, rule in STALE_KINDS.items() if any(rule(inv, tz) for inv, tz in book)} == set(STALE_KINDS)


def test_every_aging_bucket_occurs(engine: Engine) -> None:
    seed_small(engine)
    buckets = set()
    for inv, _ in invoices_with_tz(engine):
        days = days_overdue(inv)
        if is_open(inv) and days == 0:
            buckets.add("current")
        elif days:
            buckets.add("1-30" if days <= 30 else "31-60" if days <= 60 else "61-90" if days <= 90 else "90+")
    assert buckets == {"current", "1-30", "31-60", "61-90", "90+"}


def test_pending_promises_recent_contacts_and_due_soon_occur(engine: Engine) -> None:
    seed_small(engine)
    rows = invoices_with_tz(engine)
    assert any(is_open(i) and i.promise_to_pay_date and i.promise_to_pay_date >= TODAY for i, _ in rows)
    assert any(
        is_open(i) and i.last_contacted_at and (TODAY - i.last_contacted_at.astimezone(tz).date()).days <= 3 for i, tz in rows
    )
    assert any(is_open(i) and 0 <= (i.due_date - TODAY).days <= 3 for i, _ in rows)
    assert all(i.dispute_reason for i, _ in rows if i.status == "disputed")


def test_tasks_are_due_today_past_and_some_done(engine: Engine) -> None:
    seed_small(engine)
    with Session(engine) as session:
        tasks = session.scalars(select(Task)).all()
    assert any(t.due_date == TODAY and not t.done for t in tasks)
    assert any(t.due_date and t.due_date < TODAY and not t.done for t in tasks)
    assert any(t.done for t in tasks)


def test_money_is_decimal_in_several_currencies_and_yen_is_whole(engine: Engine) -> None:
    seed_demo(engine, invoices=600, reps=3, today=TODAY)
    with Session(engine) as session:
        invoices = session.scalars(select(Invoice)).all()
        rates = {r.currency: r.rate for r in session.scalars(select(FxRate))}
    currencies = {inv.currency for inv in invoices}
    assert {"USD", "EUR", "GBP", "JPY"} <= currencies <= set(rates)
    assert all(isinstance(inv.amount, Decimal) and inv.amount > 0 for inv in invoices)
    assert all(inv.amount == inv.amount.quantize(Decimal("0.01")) for inv in invoices)
    assert all(inv.amount == inv.amount.to_integral_value() for inv in invoices if inv.currency == "JPY")


def test_every_moment_is_aware_and_before_today(engine: Engine) -> None:
    seed_small(engine)
    with Session(engine) as session:
        moments = [
            m
            for inv in session.scalars(select(Invoice))
            for m in (inv.status_updated_at, inv.last_activity_at, inv.last_contacted_at)
            if m
        ]
        moments += list(session.scalars(select(Activity.at))) + list(session.scalars(select(Payment.paid_at)))
    assert all(m.tzinfo is not None and m < MIDNIGHT for m in moments)


def test_invoice_numbers_contacts_and_payment_links(engine: Engine) -> None:
    seed_small(engine)
    with Session(engine) as session:
        invoices = session.scalars(select(Invoice)).all()
        contacts = session.scalars(select(Contact)).all()
        per_account = session.execute(select(Contact.account_id, func.count()).group_by(Contact.account_id)).all()
        without_contact = session.scalar(select(func.count()).select_from(Invoice).where(~Invoice.contacts.any()))
    numbers = sorted(inv.number for inv in invoices)
    assert numbers[0] == "INV-100001" and len(set(numbers)) == len(invoices)
    assert sum(1 for inv in invoices if inv.payment_url) > len(invoices) * 0.7
    assert all(1 <= n <= 3 for _, n in per_account)
    assert any(c.do_not_contact for c in contacts)
    assert without_contact == 0


def test_every_reference_points_at_an_existing_row(engine: Engine) -> None:
    seed_small(engine)
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for fk in (c for c in table.constraints if isinstance(c, ForeignKeyConstraint)):
                child = fk.elements[0].parent
                parents = fk.elements[0].column.table.alias("parent")  # users refer to users
                parent = parents.c[fk.elements[0].column.name]
                orphans = conn.scalar(
                    select(func.count())
                    .select_from(table.outerjoin(parents, child == parent))
                    .where(and_(child.is_not(None), parent.is_(None)))
                )
                assert orphans == 0, f"{table.name}.{child.name} has orphans"


def test_progress_reports_invoices_written_so_far(engine: Engine) -> None:
    seen: list[int] = []
    seed_demo(engine, invoices=300, reps=3, today=TODAY, progress=seen.append)
    assert seen and seen[-1] == 300 and seen == sorted(seen)


def test_seed_refuses_a_database_that_is_not_empty(engine: Engine) -> None:
    assert database_is_empty(engine)
    seed_small(engine)
    assert not database_is_empty(engine)
    with pytest.raises(InvalidInput):
        seed_small(engine)


def fresh_sqlite(template: Path, path: Path) -> Engine:
    shutil.copy(template, path)
    return make_engine(f"sqlite:///{path}")


def invoice_digest(engine: Engine) -> str:
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for row in conn.execute(text("SELECT * FROM invoices ORDER BY id")):
            digest.update(repr(tuple(row)).encode())
        for row in conn.execute(text("SELECT id, name, owner_id FROM accounts ORDER BY id")):
            digest.update(repr(tuple(row)).encode())
    engine.dispose()
    return digest.hexdigest()


def seeded_digest(template: Path, path: Path, seed: int) -> str:
    engine = fresh_sqlite(template, path)
    seed_small(engine, seed=seed)
    return invoice_digest(engine)


def test_same_seed_gives_the_same_data(tmp_path: Path, sqlite_template: Path) -> None:
    first = seeded_digest(sqlite_template, tmp_path / "a.db", seed=7)
    assert seeded_digest(sqlite_template, tmp_path / "b.db", seed=7) == first


def test_another_seed_gives_other_data(tmp_path: Path, sqlite_template: Path) -> None:
    first = seeded_digest(sqlite_template, tmp_path / "a.db", seed=7)
    assert seeded_digest(sqlite_template, tmp_path / "b.db", seed=8) != first
