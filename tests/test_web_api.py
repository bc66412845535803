"""The routes the web app adds: sign-in links, who am I, the thread list, a manager's switch of rep, the page itself.

Same small book as tests/test_api.py: rep u1 (INV-1042, INV-2001, INV-2002), rep u2 (INV-3001), their manager m1.
"""

from __future__ import annotations

import datetime as dt
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.cli import main as cli_main
from lumo.db.models import ApiToken, OutboxEmail, WebLink
from lumo.web.signin import SESSION_HOURS, LinkRefused, create_link, exchange_link, link_url
from tests import test_api
from tests.test_api import DATE, auth, chat, decide

client, tokens = test_api.client, test_api.tokens  # the fixtures of tests/test_api.py, shared

U1_ONLY = {"INV-1042", "INV-2001", "INV-2002"}


def _link(session_factory: sessionmaker[Session], email: str = "u1@acme.test", **kwargs: object) -> str:
    with session_factory() as s:
        token = create_link(s, email, kwargs.pop("now", dt.datetime.now(dt.UTC)), **kwargs)  # type: ignore[arg-type]
        s.commit()
    return token


def _exchange(client: TestClient, link: str):  # type: ignore[no-untyped-def]
    return client.post("/v1/web-links/exchange", json={"link": link})


def test_a_sign_in_link_gives_a_session_token_for_its_user(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    response = _exchange(client, _link(session_factory))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["email"] == "u1@acme.test" and body["token"].startswith("lumo_")
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200 and me.json()["email"] == "u1@acme.test"


def test_the_session_of_a_link_lasts_a_working_day(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    before = dt.datetime.now(dt.UTC)
    assert _exchange(client, _link(session_factory)).status_code == 200
    with session_factory() as s:
        expires = s.scalar(select(ApiToken.expires_at).where(ApiToken.name == "web sign-in"))
    assert expires is not None and before + dt.timedelta(hours=SESSION_HOURS) <= expires <= dt.datetime.now(
        dt.UTC
    ) + dt.timedelta(hours=SESSION_HOURS)


def test_signing_out_ends_the_session_of_a_link_and_only_that(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    first = _exchange(client, _link(session_factory)).json()["token"]
    second = _exchange(client, _link(session_factory)).json()["token"]  # the same rep in another tab
    out = client.post("/v1/sign-out", headers={"Authorization": f"Bearer {first}"})
    assert out.status_code == 200 and out.json() == {"revoked": True}
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {first}"}).status_code == 401
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    assert client.post("/v1/sign-out", headers={"Authorization": f"Bearer {first}"}).status_code == 401


def test_signing_out_of_the_page_with_a_pasted_api_token_leaves_it_working(client: TestClient, tokens: dict[str, str]) -> None:
    out = client.post("/v1/sign-out", headers=auth(tokens, "u1"))
    assert out.status_code == 200 and out.json() == {"revoked": False}
    assert client.get("/v1/me", headers=auth(tokens, "u1")).status_code == 200


def test_a_sign_in_link_works_once(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    link = _link(session_factory)
    assert _exchange(client, link).status_code == 200
    again = _exchange(client, link)
    assert again.status_code == 401
    assert again.json() == {"error": "this sign-in link was already used: ask for a new one (lumo web-link --user EMAIL)"}


def test_an_expired_sign_in_link_is_refused(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    link = _link(session_factory, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16), minutes=15)
    response = _exchange(client, link)
    assert response.status_code == 401 and "expired" in response.json()["error"]


def test_an_unknown_sign_in_link_is_refused(client: TestClient) -> None:
    response = _exchange(client, "lumolink_nope")
    assert response.status_code == 401 and "not valid" in response.json()["error"]


def test_a_sign_in_link_is_not_an_api_token(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    link = _link(session_factory)
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {link}"}).status_code == 401


def test_only_the_hash_of_a_link_is_stored(session_factory: sessionmaker[Session], tokens: dict[str, str]) -> None:
    link = _link(session_factory)
    with session_factory() as s:
        stored = s.scalars(select(WebLink.token_hash)).all()
    assert len(stored) == 1 and link not in stored[0]


def test_two_exchanges_racing_for_one_link_give_one_session(
    session_factory: sessionmaker[Session], tokens: dict[str, str]
) -> None:
    link = _link(session_factory)
    now = dt.datetime.now(dt.UTC)
    with session_factory() as first, session_factory() as second:
        seen = second.scalars(select(WebLink)).all()  # the loser read the link while it was still unused
        exchange_link(first, link, now)
        first.commit()
        with pytest.raises(LinkRefused, match="already used"):
            exchange_link(second, link, now)
        second.rollback()
        assert seen  # held, so the loser kept its stale copy
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.name == "web sign-in")) == 1


def test_a_link_lives_between_one_minute_and_a_day(session_factory: sessionmaker[Session], tokens: dict[str, str]) -> None:
    with session_factory() as s, pytest.raises(Exception, match="between 1 and 1440 minutes"):
        create_link(s, "u1@acme.test", dt.datetime.now(dt.UTC), minutes=0)


def test_the_link_url_carries_the_token_in_the_fragment() -> None:
    assert link_url("http://127.0.0.1:8000/", "lumolink_x") == "http://127.0.0.1:8000/#signin=lumolink_x"


def test_lumo_web_link_prints_a_url_that_signs_in(
    client: TestClient, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    monkeypatch.setattr(sys, "argv", ["lumo", "web-link", "--user", "u2@acme.test", "--base-url", "http://lumo.test:9000"])
    with pytest.raises(SystemExit) as done:
        cli_main()
    assert done.value.code in (0, None)
    url = capsys.readouterr().out.strip().splitlines()[-1]
    assert url.startswith("http://lumo.test:9000/#signin=lumolink_")
    assert _exchange(client, url.split("#signin=")[1]).json()["email"] == "u2@acme.test"


def test_lumo_web_link_for_an_unknown_user_is_one_line_and_exit_2(
    db_url: str,
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    monkeypatch.setattr(sys, "argv", ["lumo", "web-link", "--user", "nobody@acme.test"])
    with pytest.raises(SystemExit) as done:
        cli_main()
    assert done.value.code == 2
    assert capsys.readouterr().err.strip() == "error: unknown user: nobody@acme.test"


def test_me_lists_a_managers_team_and_no_one_for_a_rep(client: TestClient, tokens: dict[str, str]) -> None:
    manager = client.get("/v1/me", headers=auth(tokens, "m1")).json()
    assert manager["role"] == "manager" and {p["email"] for p in manager["team"]} == {"u1@acme.test", "u2@acme.test"}
    assert client.get("/v1/me", headers=auth(tokens, "u1")).json()["team"] == []


def _numbers(client: TestClient, tokens: dict[str, str], who: str, **params: str) -> set[str]:
    response = client.get("/v1/invoices", params={"date": DATE, **params}, headers=auth(tokens, who))
    assert response.status_code == 200, response.text
    return {i["invoice_number"] for i in response.json()["items"]}


def test_a_manager_can_switch_to_one_rep_of_the_team(client: TestClient, tokens: dict[str, str]) -> None:
    assert _numbers(client, tokens, "m1") == U1_ONLY | {"INV-3001"}
    assert _numbers(client, tokens, "m1", rep="u1@acme.test") == U1_ONLY
    assert _numbers(client, tokens, "m1", rep="U2@acme.test") == {"INV-3001"}
    items = client.get("/v1/priorities", params={"date": DATE, "rep": "u2@acme.test"}, headers=auth(tokens, "m1")).json()["items"]
    assert {i["invoice_number"] for i in items} == {"INV-3001"}


def test_a_rep_cannot_switch_to_another_reps_book(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.get("/v1/invoices", params={"rep": "u2@acme.test"}, headers=auth(tokens, "u1"))
    assert response.status_code == 404 and response.json() == {"error": "rep u2@acme.test not found"}
    assert client.get("/v1/invoices/INV-1042", params={"rep": "u2@acme.test"}, headers=auth(tokens, "m1")).status_code == 404


def test_a_rep_may_name_their_own_book(client: TestClient, tokens: dict[str, str]) -> None:
    assert _numbers(client, tokens, "u1", rep="u1@acme.test") == U1_ONLY


def test_the_invoice_page_data_is_scoped(client: TestClient, tokens: dict[str, str]) -> None:
    mine = client.get("/v1/invoices/INV-3001", params={"date": DATE}, headers=auth(tokens, "u2"))
    assert mine.status_code == 200 and {"history", "payments", "contacts", "stale"} <= set(mine.json())
    theirs = client.get("/v1/invoices/INV-3001", params={"date": DATE}, headers=auth(tokens, "u1"))
    assert theirs.status_code == 404 and theirs.json() == {"error": "invoice INV-3001 not found"}
    assert client.get("/v1/invoices/INV-3001", params={"date": DATE}, headers=auth(tokens, "m1")).status_code == 200


def test_threads_lists_the_callers_threads_newest_first(client: TestClient, tokens: dict[str, str]) -> None:
    first = chat(client, tokens, "what should I do today?")["thread_id"]
    second = chat(client, tokens, "which invoices of Globex are overdue?")["thread_id"]
    chat(client, tokens, "what should I do today?", who="u2")
    listed = client.get("/v1/threads", headers=auth(tokens, "u1")).json()["threads"]
    assert [t["thread_id"] for t in listed] == [second, first]
    assert listed[1]["title"] == "what should I do today?"


def test_a_later_turn_moves_a_thread_up_and_keeps_its_title(client: TestClient, tokens: dict[str, str]) -> None:
    first = chat(client, tokens, "what should I do today?")["thread_id"]
    chat(client, tokens, "which invoices of Globex are overdue?")
    chat(client, tokens, "and Hooli?", thread_id=first)
    listed = client.get("/v1/threads", headers=auth(tokens, "u1")).json()["threads"]
    assert listed[0]["thread_id"] == first and listed[0]["title"] == "what should I do today?"


def test_a_reopened_thread_reads_as_it_was_said_and_only_by_its_owner(client: TestClient, tokens: dict[str, str]) -> None:
    first = chat(client, tokens, "which invoices of Globex are overdue?")
    chat(client, tokens, "and Hooli?", thread_id=first["thread_id"])
    path = f"/v1/threads/{first['thread_id']}/history"
    messages = client.get(path, headers=auth(tokens, "u1")).json()["messages"]
    assert messages == [
        {"role": "user", "text": "which invoices of Globex are overdue?"},
        {"role": "lumo", "text": first["reply"]},
        {"role": "user", "text": "and Hooli?"},
    ]
    assert client.get(path, headers=auth(tokens, "u2")).status_code == 404  # another rep's thread is not found


def test_a_streamed_turn_is_listed(client: TestClient, tokens: dict[str, str]) -> None:
    with client.stream(
        "POST", "/v1/chat/stream", json={"message": "what should I do today?", "date": DATE}, headers=auth(tokens)
    ) as r:
        text = "".join(r.iter_text())
    assert "event: message" in text
    assert [t["title"] for t in client.get("/v1/threads", headers=auth(tokens)).json()["threads"]] == ["what should I do today?"]


def test_a_second_decision_on_an_email_queues_nothing_more(
    client: TestClient,
    tokens: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    turn = chat(client, tokens, "send the reminder for INV-1042")
    (action,) = turn["pending_actions"]
    assert action["tool"] == "send_email"
    assert decide(client, tokens, turn["thread_id"], decision="approve", action_id=action["id"]).status_code == 200
    again = decide(client, tokens, turn["thread_id"], decision="approve", action_id=action["id"])
    assert again.status_code >= 400 and again.json()["error"]
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEmail)) == 1


def test_the_page_is_served_at_the_root(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/app.js">' in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self' covers scripts: no inline
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    for asset in ("/static/js/app.js", "/static/vendor/marked.esm.js", "/static/vendor/purify.es.js"):
        response = client.get(asset)
        assert response.status_code == 200 and "javascript" in response.headers["content-type"], asset
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/nope.js").status_code == 404


def test_the_demo_set_up_of_make_run_prints_a_sign_in_link(
    db_url: str, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lumo.cli.serve import _demo_setup

    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    _demo_setup("127.0.0.1", 8000)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("Web app: open "))
    url = line.split()[3]
    assert url.startswith("http://127.0.0.1:8000/#signin=lumolink_")
    with session_factory() as s:
        user, _ = exchange_link(s, url.split("#signin=")[1], dt.datetime.now(dt.UTC))
    assert user.email == "demo@lumenbase.test"
