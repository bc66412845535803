"""Expected vs collected: a hand-written book whose weekly figures, DSO and share at risk are worked out by hand."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from lumo.crm.forecast import Behaviour, cash_forecast, expect
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import scope_for_email
from tests import factories as f
from tests.clients import Cli, OpenApi

TODAY = dt.date(2026, 11, 25)
D = dt.date.fromisoformat


def _inv(session: Session, account: str, number: str, amount: str, due: str, currency: str = "USD", **kw: Any) -> Any:
    return f.invoice(
        session, account, number=number, amount=Decimal(amount), currency=currency, due_date=D(due),
        issue_date=D(due) - dt.timedelta(days=30), **kw,
    )  # fmt: skip


@pytest.fixture
def book(session: Session) -> None:
    """Globex paid 3 invoices: 4 days late on 2000 and 10 days late on 1000 + 1000, so half its money came at
    +4 days and half at +10; its tier (standard) has only those 3, so shrinking toward the tier changes nothing.
    Globex also left R-1 unpaid over 90 days past due: of what it owes it is counted on for (paid + 1) / (paid +
    unpaid + 1), paid = its paid invoices as late as the one at hand: 4/5 before the due date, 3/4 once 5 to 10
    days late. The rest of each balance is doubtful."""
    f.basic_book(session)
    f.account(session, "a3", "u1", name="Hooli", tier="key")
    for number, amount, due, late in (("P-1", "1000.00", "2026-09-01", 10), ("P-2", "1000.00", "2026-09-15", 10)):
        paid = _inv(session, "a1", number, amount, due, status="paid")
        f.pay(session, paid, amount, dt.datetime.combine(D(due) + dt.timedelta(days=late), dt.time(12), dt.UTC))
    paid = _inv(session, "a1", "P-3", "2000.00", "2026-10-01", status="paid")
    f.pay(session, paid, "2000.00", dt.datetime(2026, 10, 5, 12, tzinfo=dt.UTC))
    _inv(session, "a1", "O-1", "500.00", "2026-11-28")  # 4/5 of it: 200 on 12-02, 200 on 12-08, both week 1
    _inv(session, "a1", "O-2", "800.00", "2026-12-10", currency="EUR")  # 4/5: 320 on 12-14 (week 2), 320 on 12-20 (week 3)
    _inv(session, "a1", "O-3", "300.00", "2026-11-20")  # 5 days late, so only the +10 payers: 3/4 of it on 11-30
    _inv(session, "a1", "O-4", "1000.00", "2026-11-01")  # 24 days late, and Globex never paid that late: doubtful
    _inv(session, "a1", "O-6", "250.00", "2026-11-17")  # 8 days late: 3/4 on 11-27, week 0
    _inv(session, "a1", "O-5", "400.00", "2026-11-18", promise_to_pay_date=D("2026-12-01"))  # the promise: week 0
    _inv(session, "a1", "R-1", "2000.00", "2026-08-01")  # 116 days past due: at risk
    _inv(session, "a3", "H-1", "100.00", "2026-12-01")  # no history, no key peers: the book's, 50 on 12-05, 50 on 12-11
    _inv(session, "a2", "U-1", "9999.00", "2026-11-30")  # rep u2's: never in u1's forecast
    session.commit()


def test_lumo_forecast_json_gives_the_expected_weekly_figures(cli: Cli, book: None) -> None:
    code, out, err = cli("forecast", "--rep", "u1@acme.test", "--date", TODAY.isoformat(), "--weeks", "4", "--json")
    assert code == 0, err
    result = json.loads(out)
    weeks = [(w["week_start"], w["totals"], w["invoices"]) for w in result["expected"]]
    assert weeks == [
        ("2026-11-25", {"USD": "812.50"}, 3),  # O-3 225 + O-6 187.50 + O-5 400
        ("2026-12-02", {"USD": "450.00"}, 2),  # O-1 400 + H-1 50
        ("2026-12-09", {"EUR": "320.00", "USD": "50.00"}, 2),  # O-2, H-1
        ("2026-12-16", {"EUR": "320.00"}, 1),  # O-2
    ]
    assert result["expected_total"] == {"EUR": "640.00", "USD": "1312.50"}
    assert result["at_risk"]["totals"] == {"USD": "2000.00"} and result["at_risk"]["share_percent"] == "36.9"
    # O-4 whole, and what is not counted on of O-1 (100), O-3 (75) and O-6 (62.50); O-2's EUR 160.
    assert result["doubtful"]["totals"] == {"EUR": "160.00", "USD": "1237.50"}
    assert "Globex never paid an invoice this late: doubtful" in " ".join(result["doubtful"]["reasons"])
    assert result["dso"]["countback_days"] == 86 and result["dso"]["simple_days"] == 90
    reasons = " ".join(r for w in result["expected"] for r in w["reasons"])
    assert (
        "O-1 (Globex) USD 400.00 of USD 500.00: due 2026-11-28 + the delays of Globex's 3 paid invoices (50%) and the "
        "standard accounts' 3 (50%): 4 days to 10 days, median 2026-12-02: 2026-12-02 to 2026-12-08; counted on at 80% "
        "(Globex left 1 invoice unpaid over 90 days past due)"
    ) in reasons
    assert "O-5 (Globex) USD 400.00: promised for 2026-12-01" in reasons
    assert "O-6 (Globex) USD 187.50 of USD 250.00: due 2026-11-17, 8 days past due + the delays of Globex's" in reasons
    assert "as late or later: 10 days = 2026-11-27; counted on at 75%" in reasons
    assert "H-1 (Hooli) USD 50.00 of USD 100.00: due 2026-12-01 + the delays of the book's 3 paid invoices" in reasons
    assert "U-1" not in out
    collected = {w["week_end"]: w["totals"] for w in result["collected"]}
    assert collected == {"2026-11-04": {}, "2026-11-11": {}, "2026-11-18": {}, "2026-11-25": {}}


def test_collected_counts_the_weeks_behind(cli: Cli, book: None) -> None:
    code, out, err = cli("forecast", "--rep", "u1@acme.test", "--date", "2026-10-07", "--json")
    assert code == 0, err
    totals = {w["week_end"]: w["totals"] for w in json.loads(out)["collected"] if w["totals"]}
    # P-1 paid 09-11, P-2 09-25, P-3 10-05: weeks ending on Wednesdays back from 10-07.
    assert totals == {"2026-09-16": {"USD": "1000.00"}, "2026-09-30": {"USD": "1000.00"}, "2026-10-07": {"USD": "2000.00"}}


def test_forecast_scope_flags_and_bad_input_are_one_line(cli: Cli, book: None) -> None:
    code, out, err = cli("forecast", "--rep", "u1@acme.test", "--weeks", "0")
    assert code == 2 and err.strip() == "error: weeks must be between 1 and 52, not 0"
    code, out, err = cli("forecast", "--rep", "u1@acme.test", "--team")
    assert code == 2 and "you are a rep" in err
    code, out, err = cli("forecast", "--rep", "m1@acme.test", "--all")
    assert code == 2 and "admins only" in err
    date = ("--date", TODAY.isoformat(), "--json")
    code, out, err = cli("forecast", "--rep", "m1@acme.test", "--team", *date)
    assert code == 0 and json.loads(out)["expected"][0]["totals"] == {"USD": "812.50"}
    # u2's U-1 is the manager's team's: Initech has no history, so the standard accounts' (Globex's) +4 and +10.
    assert json.loads(out)["expected"][1]["totals"] == {"USD": "5449.50"}
    assert json.loads(out)["expected"][2]["totals"] == {"EUR": "320.00", "USD": "5049.50"}
    code, out, err = cli("forecast", "--rep", "m1@acme.test", *date)
    assert code == 0 and json.loads(out)["expected_total"] == {}  # the manager's own book is empty


def test_get_forecast_is_the_callers_book(api: OpenApi, book: None) -> None:
    opened = api("u1", "u2")
    mine = opened.client.get("/v1/forecast?date=2026-11-25&weeks=4", headers=opened.auth("u1"))
    theirs = opened.client.get("/v1/forecast?date=2026-11-25&weeks=4", headers=opened.auth("u2"))
    bad = opened.client.get("/v1/forecast?weeks=99", headers=opened.auth("u1"))
    assert mine.status_code == 200 and mine.json()["expected"][0]["totals"] == {"USD": "812.50"}
    [only] = theirs.json()["expected"][0]["reasons"]  # u2's one invoice, and no history of theirs to learn from
    assert only == "U-1 (Initech) USD 9,999.00: due 2026-11-30: no paid history yet: the due date = 2026-11-30"
    assert bad.status_code == 422


def test_an_account_with_few_paid_invoices_takes_its_tier_then_the_book() -> None:
    paid = [f.row(id=f"k{i}", account_id=f"k{i}", account_tier="key", status="paid", due_date=D("2026-09-01")) for i in range(3)]
    on = {p.id: D("2026-09-21") for p in paid}  # key accounts pay 20 days late
    behaviour = Behaviour.learn(paid, on, before=TODAY)
    new_key = f.row(id="n1", account_id="n1", account_name="Newco", account_tier="key", due_date=D("2026-12-01"))
    got = expect(new_key, TODAY, behaviour)
    assert got.day == D("2026-12-21") and "the delays of the key accounts' 3 paid invoices: 20 days" in got.reason
    standard = f.row(id="s1", account_id="s1", account_tier="standard", due_date=D("2026-12-01"))
    assert expect(standard, TODAY, behaviour).day == D("2026-12-21")  # no standard peers: the book's
    assert expect(standard, TODAY, Behaviour()).day == D("2026-12-01")  # no history at all: the due date


def test_what_was_paid_after_the_forecast_day_is_not_learnt() -> None:
    paid = [f.row(id=f"p{i}", status="paid", due_date=D("2026-09-01")) for i in range(3)]
    behaviour = Behaviour.learn(paid, {p.id: D("2026-12-01") for p in paid}, before=TODAY)
    assert behaviour.book.count == 0


def test_a_managers_digest_has_the_cash_section_and_a_reps_does_not(session: Session, book: None) -> None:
    from lumo.db.models import User
    from lumo.digest.build import build_digest

    manager = build_digest(session, session.get(User, "m1"), TODAY)  # type: ignore[arg-type]
    rep = build_digest(session, session.get(User, "u1"), TODAY)  # type: ignore[arg-type]
    assert "CASH: EXPECTED VS COLLECTED (TEAM)" in manager.text
    assert "- Week of 2026-11-25: USD 812.50 expected" in manager.text
    assert "- Week of 2026-12-02: USD 5,449.50 expected" in manager.text
    assert "Cash: expected vs collected" in manager.html
    assert rep.sections["cash"] is None and "CASH" not in rep.text


def _paid(account: str, *delays_and_amounts: tuple[int, str], due: str = "2026-09-01") -> tuple[list[Any], dict[str, Any]]:
    rows = [
        f.row(id=f"{account}{i}", account_id=account, status="paid", amount=Decimal(a), due_date=D(due))
        for i, (_, a) in enumerate(delays_and_amounts)
    ]
    on = {r.id: D(due) + dt.timedelta(days=d) for r, (d, _) in zip(rows, delays_and_amounts, strict=True)}
    return rows, on


def test_an_invoice_is_spread_over_its_accounts_paid_delays_by_amount() -> None:
    rows, on = _paid("a1", (2, "1000.00"), (9, "3000.00"), (30, "1000.00"))
    got = expect(f.row(id="o", due_date=D("2026-12-01")), TODAY, Behaviour.learn(rows, on, before=TODAY))
    assert got.parts == (
        (D("2026-12-03"), Decimal("200.00")),
        (D("2026-12-10"), Decimal("600.00")),
        (D("2026-12-31"), Decimal("200.00")),
    )
    assert got.day == D("2026-12-10") and "2 days to 30 days, median 2026-12-10" in got.reason


def test_delays_that_did_not_happen_by_today_are_dropped() -> None:
    rows, on = _paid("a1", (2, "1000.00"), (9, "3000.00"), (30, "1000.00"))
    late = f.row(id="o", due_date=TODAY - dt.timedelta(days=5))  # unpaid 5 days after its due date: not a +2 payer
    got = expect(late, TODAY, Behaviour.learn(rows, on, before=TODAY))
    assert got.parts == ((D("2026-11-29"), Decimal("750.00")), (D("2026-12-20"), Decimal("250.00")))
    assert "5 days past due" in got.reason and "as late or later" in got.reason


def test_a_short_history_is_shrunk_toward_its_segment() -> None:
    peers, peers_on = [], {}
    for i in range(3):  # three other standard accounts, each paying 20 days late
        rows, on = _paid(f"p{i}", (20, "1000.00"))
        peers += rows
        peers_on |= on
    own, own_on = _paid("a1", (0, "1000.00"))  # one invoice of its own, paid on the day
    behaviour = Behaviour.learn([*own, *peers], own_on | peers_on, before=TODAY)
    got = expect(f.row(id="o", due_date=D("2026-12-01")), TODAY, behaviour)
    # 1 paid invoice against SHRINK = 3: a quarter on its own habit (+0), three quarters on its segment's, which
    # includes it (+0 on a quarter, +20 on three quarters): 1/4 + 3/4 x 1/4 = 7/16 at +0, 9/16 at +20.
    assert got.parts == ((D("2026-12-01"), Decimal("437.50")), (D("2026-12-21"), Decimal("562.50")))
    assert "Globex's 1 paid invoice (25%) and the standard accounts' 4 (75%)" in got.reason


def test_an_account_that_left_invoices_unpaid_is_counted_on_for_less() -> None:
    rows, on = _paid("a1", (5, "1000.00"), (5, "1000.00"), (5, "1000.00"))
    gone = f.row(id="g", status="overdue", due_date=TODAY - dt.timedelta(days=120))  # over 90 days, still open
    got = expect(f.row(id="o", due_date=D("2026-12-01")), TODAY, Behaviour.learn([*rows, gone], on, before=TODAY))
    assert got.parts == ((D("2026-12-06"), Decimal("800.00")),)  # (3 paid + 1) / (3 + 1 unpaid + 1)
    assert "counted on at 80% (Globex left 1 invoice unpaid over 90 days past due)" in got.reason


def test_an_invoice_paid_in_instalments_teaches_each_at_its_own_delay(session: Session) -> None:
    f.basic_book(session)
    for number, due in (("P-1", "2026-09-01"), ("P-2", "2026-10-01"), ("P-3", "2026-11-01")):
        paid = _inv(session, "a1", number, "1000.00", due, status="paid")
        f.pay(session, paid, "250.00", dt.datetime.combine(D(due), dt.time(12), dt.UTC))  # a quarter on the day
        f.pay(session, paid, "750.00", dt.datetime.combine(D(due) + dt.timedelta(days=20), dt.time(12), dt.UTC))
    _inv(session, "a1", "O-1", "800.00", "2026-12-01")
    session.commit()
    scope = scope_for_email(session, "u1@acme.test")
    result = cash_forecast(session, scope, AsOf(TODAY, dt.UTC), weeks=6)
    by_week = {w["week_start"]: w["totals"] for w in result["expected"] if w["totals"]}
    # A quarter on the due date (12-01, week 0), three quarters 20 days later (12-21, week 3): not all on 12-21.
    assert by_week == {"2026-11-25": {"USD": "200.00"}, "2026-12-16": {"USD": "600.00"}}


def test_a_promise_ahead_is_the_whole_balance_on_its_day() -> None:
    rows, on = _paid("a1", (30, "1000.00"), (30, "1000.00"), (30, "1000.00"))
    promised = f.row(id="o", due_date=TODAY, promise_to_pay_date=D("2026-11-27"), amount_paid=Decimal("400.00"))
    got = expect(promised, TODAY, Behaviour.learn(rows, on, before=TODAY))
    assert got.parts == ((D("2026-11-27"), Decimal("600.00")),)  # the balance left after a partial payment
