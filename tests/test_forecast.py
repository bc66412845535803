"""Expected vs collected: a hand-written book whose weekly figures, DSO and share at risk are worked out by hand."""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.cli import main as cli_main
from lumo.config import Settings
from lumo.crm.forecast import Behaviour, expect
from tests import factories as f

TODAY = dt.date(2026, 11, 25)
D = dt.date.fromisoformat


def _inv(session: Session, account: str, number: str, amount: str, due: str, currency: str = "USD", **kw: Any) -> Any:
    return f.invoice(
        session, account, number=number, amount=Decimal(amount), currency=currency, due_date=D(due),
        issue_date=D(due) - dt.timedelta(days=30), **kw,
    )  # fmt: skip


@pytest.fixture
def book(session: Session) -> None:
    """Globex pays 7 days late on average (amount-weighted: 10, 10 and 4 days on 1000, 1000, 2000)."""
    f.basic_book(session)
    f.account(session, "a3", "u1", name="Hooli", tier="key")
    for number, amount, due, late in (("P-1", "1000.00", "2026-09-01", 10), ("P-2", "1000.00", "2026-09-15", 10)):
        paid = _inv(session, "a1", number, amount, due, status="paid")
        f.pay(session, paid, amount, dt.datetime.combine(D(due) + dt.timedelta(days=late), dt.time(12), dt.UTC))
    paid = _inv(session, "a1", "P-3", "2000.00", "2026-10-01", status="paid")
    f.pay(session, paid, "2000.00", dt.datetime(2026, 10, 5, 12, tzinfo=dt.UTC))
    _inv(session, "a1", "O-1", "500.00", "2026-11-28")  # + 7 = 12-05: week 1
    _inv(session, "a1", "O-2", "800.00", "2026-12-10", currency="EUR")  # + 7 = 12-17: week 3
    _inv(session, "a1", "O-3", "300.00", "2026-11-20")  # + 7 = 11-27: week 0
    _inv(session, "a1", "O-4", "1000.00", "2026-11-01")  # + 7 = 11-08, passed, and Globex never paid 24 days late
    _inv(session, "a1", "O-6", "250.00", "2026-11-17")  # + 7 = 11-24, passed; Globex's 10-day payers: 11-27
    _inv(session, "a1", "O-5", "400.00", "2026-11-18", promise_to_pay_date=D("2026-12-01"))  # the promise: week 0
    _inv(session, "a1", "R-1", "2000.00", "2026-08-01")  # 116 days past due: at risk
    _inv(session, "a3", "H-1", "100.00", "2026-12-01")  # no history, no key peers: the book's 7 days, 12-08: week 1
    _inv(session, "a2", "U-1", "9999.00", "2026-11-30")  # rep u2's: never in u1's forecast
    session.commit()


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["lumo", *args])
    code = 0
    try:
        cli_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_lumo_forecast_json_gives_the_expected_weekly_figures(
    db_url: str, book: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    args = ("forecast", "--rep", "u1@acme.test", "--date", TODAY.isoformat(), "--weeks", "4", "--json")
    code, out, err = _cli(monkeypatch, capsys, *args)
    assert code == 0, err
    result = json.loads(out)
    weeks = [(w["week_start"], w["totals"], w["invoices"]) for w in result["expected"]]
    assert weeks == [
        ("2026-11-25", {"USD": "950.00"}, 3),
        ("2026-12-02", {"USD": "600.00"}, 2),
        ("2026-12-09", {}, 0),
        ("2026-12-16", {"EUR": "800.00"}, 1),
    ]
    assert result["expected_total"] == {"EUR": "800.00", "USD": "1550.00"}
    assert result["at_risk"]["totals"] == {"USD": "2000.00"} and result["at_risk"]["share_percent"] == "36.9"
    assert result["doubtful"]["totals"] == {"USD": "1000.00"}
    assert "Globex never paid an invoice this late: doubtful" in result["doubtful"]["reasons"][0]
    assert result["dso"]["countback_days"] == 86 and result["dso"]["simple_days"] == 90
    reasons = " ".join(r for w in result["expected"] for r in w["reasons"])
    assert "O-1 (Globex) USD 500.00: due 2026-11-28 + Globex's average delay of 7 days over 3 paid invoices" in reasons
    assert "O-5 (Globex) USD 400.00: promised for 2026-12-01" in reasons
    assert "Globex's 2 paid invoices as late were paid at 10 days on average: 2026-11-27" in reasons
    assert "H-1 (Hooli) USD 100.00: due 2026-12-01 + the book's average delay of 7 days over 3 paid invoices" in reasons
    assert "U-1" not in out
    collected = {w["week_end"]: w["totals"] for w in result["collected"]}
    assert collected == {"2026-11-04": {}, "2026-11-11": {}, "2026-11-18": {}, "2026-11-25": {}}


def test_collected_counts_the_weeks_behind(
    db_url: str, book: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    code, out, err = _cli(monkeypatch, capsys, "forecast", "--rep", "u1@acme.test", "--date", "2026-10-07", "--json")
    assert code == 0, err
    totals = {w["week_end"]: w["totals"] for w in json.loads(out)["collected"] if w["totals"]}
    # P-1 paid 09-11, P-2 09-25, P-3 10-05: weeks ending on Wednesdays back from 10-07.
    assert totals == {"2026-09-16": {"USD": "1000.00"}, "2026-09-30": {"USD": "1000.00"}, "2026-10-07": {"USD": "2000.00"}}


def test_forecast_scope_flags_and_bad_input_are_one_line(
    db_url: str, book: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    code, out, err = _cli(monkeypatch, capsys, "forecast", "--rep", "u1@acme.test", "--weeks", "0")
    assert code == 2 and err.strip() == "error: weeks must be between 1 and 52, not 0"
    code, out, err = _cli(monkeypatch, capsys, "forecast", "--rep", "u1@acme.test", "--team")
    assert code == 2 and "you are a rep" in err
    code, out, err = _cli(monkeypatch, capsys, "forecast", "--rep", "m1@acme.test", "--all")
    assert code == 2 and "admins only" in err
    date = ("--date", TODAY.isoformat(), "--json")
    code, out, err = _cli(monkeypatch, capsys, "forecast", "--rep", "m1@acme.test", "--team", *date)
    assert code == 0 and json.loads(out)["expected"][0]["totals"] == {"USD": "950.00"}
    assert json.loads(out)["expected"][1]["totals"] == {"USD": "10599.00"}  # u2's U-1 is the manager's team's
    code, out, err = _cli(monkeypatch, capsys, "forecast", "--rep", "m1@acme.test", *date)
    assert code == 0 and json.loads(out)["expected_total"] == {}  # the manager's own book is empty


def test_get_forecast_is_the_callers_book(db_url: str, session: Session, book: None) -> None:
    tokens = {
        who: create_token(session, f"{who}@acme.test", dt.datetime(2026, 11, 25, tzinfo=dt.UTC), "t") for who in ("u1", "u2")
    }
    session.commit()
    app = create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as c:
        mine = c.get("/v1/forecast?date=2026-11-25&weeks=4", headers={"Authorization": f"Bearer {tokens['u1']}"})
        theirs = c.get("/v1/forecast?date=2026-11-25&weeks=4", headers={"Authorization": f"Bearer {tokens['u2']}"})
        bad = c.get("/v1/forecast?weeks=99", headers={"Authorization": f"Bearer {tokens['u1']}"})
    assert mine.status_code == 200 and mine.json()["expected"][0]["totals"] == {"USD": "950.00"}
    [only] = theirs.json()["expected"][0]["reasons"]  # u2's one invoice, and no history of theirs to learn from
    assert only == "U-1 (Initech) USD 9,999.00: due 2026-11-30 + no paid history yet: the due date = 2026-11-30"
    assert bad.status_code == 422


def test_an_account_with_few_paid_invoices_takes_its_tier_then_the_book() -> None:
    paid = [f.row(id=f"k{i}", account_id=f"k{i}", account_tier="key", status="paid", due_date=D("2026-09-01")) for i in range(3)]
    on = {p.id: D("2026-09-21") for p in paid}  # key accounts pay 20 days late
    behaviour = Behaviour.learn(paid, on, before=TODAY)
    new_key = f.row(id="n1", account_id="n1", account_name="Newco", account_tier="key", due_date=D("2026-12-01"))
    got = expect(new_key, TODAY, behaviour)
    assert got.day == D("2026-12-21") and "the key accounts' average delay of 20 days over 3 paid invoices" in got.reason
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
    assert "- Week of 2026-11-25: USD 950.00 expected" in manager.text
    assert "- Week of 2026-12-02: USD 10,599.00 expected" in manager.text
    assert "Cash: expected vs collected" in manager.html
    assert rep.sections["cash"] is None and "CASH" not in rep.text
