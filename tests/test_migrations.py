"""The schema's migrations: the database holds the lifecycle's statuses and no other, and upgrading keeps the rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lumo.crm.lifecycle import STATUSES
from lumo.db.migrate import alembic_config, upgrade
from lumo.db.models import Invoice, InvoiceContact
from lumo.db.session import make_engine, make_sessionmaker
from tests import factories as f


def _book(session: Session) -> None:
    f.user(session, "u1")
    f.account(session, "a1", "u1")
    f.contact(session, "c1", "a1")


def test_the_database_accepts_every_status_of_the_lifecycle(session: Session) -> None:
    _book(session)
    for status in STATUSES:
        f.invoice(session, "a1", status=status)
    session.commit()
    assert set(session.scalars(select(Invoice.status))) == set(STATUSES)


def test_the_database_refuses_a_status_outside_the_lifecycle(session: Session) -> None:
    _book(session)
    session.commit()
    with pytest.raises(IntegrityError):
        f.invoice(session, "a1", status="lost")


def test_changing_an_invoice_to_an_unknown_status_is_refused(session: Session) -> None:
    _book(session)
    inv = f.invoice(session, "a1")
    session.commit()
    with pytest.raises(IntegrityError):
        session.execute(text("UPDATE invoices SET status = 'Paid' WHERE id = :id"), {"id": inv.id})


def test_adding_the_status_check_to_a_sqlite_database_keeps_its_rows(tmp_path: Path) -> None:
    # The SQLite batch copy drops the old table: linked rows (ON DELETE CASCADE) must survive it.
    url = f"sqlite:///{tmp_path / 'old.db'}"
    before = ScriptDirectory.from_config(alembic_config(url)).get_revision("0007").down_revision
    assert isinstance(before, str)
    upgrade(url, before)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        _book(session)
        f.invoice(session, "a1", contacts=("c1",), status="overdue")
        session.commit()
    upgrade(url)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Invoice)) == 1
        assert session.scalar(select(func.count()).select_from(InvoiceContact)) == 1
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1  # back on for the app's connections
        with pytest.raises(IntegrityError):
            f.invoice(session, "a1", status="lost")
    engine.dispose()
