"""The forecast of a seeded book, pinned: every figure and reason of `lumo forecast --json` for a rep, a manager's
team and the whole workspace on two days, and a digest of every open invoice's expected parts and reason, against
tests/data/forecast_snapshot.json. A change to the forecast's speed must leave this file as it is; a change to
its figures rewrites it on purpose (delete the file, run this test once, read the diff)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lumo.crm.forecast import Behaviour, expect, paid_payments
from lumo.crm.invoices import fetch_rows, rows_query
from lumo.crm.lifecycle import AsOf, is_open
from lumo.crm.scope import scope_for_email
from lumo.db.models import User
from lumo.demo.seed import ADMIN_EMAIL, DEMO_REP_EMAIL, seed_demo
from tests.clients import Cli

SNAPSHOT = Path(__file__).parent / "data" / "forecast_snapshot.json"
SEED_DAY = dt.date(2026, 11, 25)
DAYS = ("2026-11-25", "2026-12-21")
INVOICES = 2500


def _manager_email(engine: Engine) -> str:
    with Session(engine) as session:
        manager_id = session.scalar(select(User.manager_id).where(User.email == DEMO_REP_EMAIL))
        email = session.scalar(select(User.email).where(User.id == manager_id))
    assert email is not None
    return email


def _calls(manager: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for day in DAYS:
        out[f"rep {day}"] = ("--rep", DEMO_REP_EMAIL, "--date", day)
        out[f"team {day}"] = ("--rep", manager, "--team", "--date", day)
        out[f"all {day}"] = ("--rep", ADMIN_EMAIL, "--all", "--date", day, "--weeks", "52")
    return out


def _expectations(engine: Engine, day: str) -> dict[str, Any]:
    """Every open invoice of the workspace: its expected day, parts and reason, hashed in invoice order."""
    with Session(engine) as session:
        scope = scope_for_email(session, ADMIN_EMAIL)
        as_of = AsOf(dt.date.fromisoformat(day), scope.tz)
        rows = fetch_rows(session, rows_query(scope))
        paid_on, payments = paid_payments(session, [r.id for r in rows if r.status == "paid"], as_of)
        behaviour = Behaviour.learn(rows, paid_on, as_of.today, payments)
    digest = hashlib.sha256()
    count = 0
    for r in sorted((r for r in rows if is_open(r)), key=lambda r: r.number):
        e = expect(r, as_of.today, behaviour)
        parts = ",".join(f"{d.isoformat()}={a}" for d, a in e.parts)
        digest.update(f"{r.number}|{e.day}|{e.doubtful}|{parts}|{e.reason}\n".encode())
        count += 1
    return {"open_invoices": count, "sha256": digest.hexdigest()}


def current(engine: Engine, cli: Cli) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, args in _calls(_manager_email(engine)).items():
        code, text, err = cli("forecast", *args, "--json")
        assert code == 0, err
        out[name] = json.loads(text)
    for day in DAYS:
        out[f"expectations {day}"] = _expectations(engine, day)
    return out


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    seed_demo(engine, invoices=INVOICES, reps=10, seed=7, today=SEED_DAY)
    return engine


def test_the_forecast_of_a_seeded_book_is_exactly_the_snapshot(seeded: Engine, cli: Cli) -> None:
    got = current(seeded, cli)
    if not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        pytest.fail(f"no snapshot yet: wrote {SNAPSHOT}, read it and run again")
    expected = json.loads(SNAPSHOT.read_text())
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == expected[name], name
