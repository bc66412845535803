"""One user-by-email rule for every path: case and surrounding spaces never matter, an exact match wins."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lumo.auth import add_user, create_token, user_for_token
from lumo.crm.errors import InvalidInput, UnknownUser
from lumo.crm.scope import scope_for_email
from lumo.crm.users import find_user
from lumo.db.models import User
from lumo.digest import send_digests
from tests import factories as f


def _dana(session: Session, email: str = "Dana.Reyes@Acme.test") -> User:
    """A rep whose email was imported with capitals, as import keeps it."""
    u = f.user(session, "u1")
    u.email = email
    session.commit()
    return u


def test_the_cli_scope_finds_a_rep_whatever_the_case_and_spaces(session: Session) -> None:
    _dana(session)
    assert scope_for_email(session, "  dana.reyes@acme.TEST ").user_id == "u1"


def test_a_token_can_be_created_for_an_email_stored_with_capitals(session: Session) -> None:
    _dana(session)
    token = create_token(session, "dana.reyes@acme.test", f.NOON)
    user = user_for_token(session, token, f.NOON)
    assert user is not None and user.id == "u1"


def test_the_digest_of_one_user_finds_an_email_stored_with_capitals(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        _dana(session)
    results = send_digests(session_factory, None, f.TODAY, user_email="dana.reyes@acme.test", send=False, now=f.NOON)
    assert [r.user_id for r in results] == ["u1"]


def test_adding_a_user_whose_email_differs_only_in_case_is_refused(session: Session) -> None:
    _dana(session)
    with pytest.raises(InvalidInput, match="already exists"):
        add_user(session, email="dana.reyes@acme.test", name="Dana again")


def test_a_new_rep_can_name_a_manager_stored_with_capitals(session: Session) -> None:
    _dana(session, "Max.Boss@Acme.test")
    rep = add_user(session, email="pat@acme.test", name="Pat", manager_email="max.boss@acme.test")
    assert rep.manager_id == "u1"


def test_an_exact_match_wins_over_one_that_differs_in_case(session: Session) -> None:
    _dana(session)
    other = f.user(session, "u2")
    other.email = "dana.reyes@acme.test"  # rows from before import checked case; the exact one is meant
    session.commit()
    found = find_user(session, "dana.reyes@acme.test")
    assert found is not None and found.id == "u2"


def test_an_unknown_email_is_an_unknown_user_on_every_path(session: Session) -> None:
    with pytest.raises(UnknownUser, match="unknown user: nobody@acme.test"):
        scope_for_email(session, "nobody@acme.test")
    with pytest.raises(UnknownUser, match="unknown user: nobody@acme.test"):
        create_token(session, "nobody@acme.test", f.NOON)
