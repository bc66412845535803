"""The web app in a real Chromium against a real `lumo serve`: the flows a rep and a manager go through.

Book (tests/browser/book.py): rep Dana (Globex: INV-1001, INV-1002; Hooli: INV-1003; Umbrella: INV-1004; Stark: INV-1005), rep Rob
(Initech: INV-2001), manager Mia over both.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request
from typing import Any

from sqlalchemy import select

from lumo.db.models import OutboxEmail
from tests.browser.book import DANA, MIA, ROB
from tests.browser.conftest import LUMO, RESOURCE_404, Server

EDITED_BODY = (
    "Dear Hank Scorpio,\n\nA friendly nudge about INV-1001: could you confirm when it will be paid?\n\nThanks,\nDana Reyes"
)


def sign_in(page: Any, server: Server, email: str = DANA) -> None:
    page.goto(server.link(email))
    page.get_by_role("heading", name="Today").wait_for()
    page.locator("ol.items > li").first.wait_for()


def outbox(server: Server) -> list[OutboxEmail]:
    with server.sessions() as s:
        return list(s.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all())


def no_horizontal_overflow(page: Any) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"


def test_the_sign_in_link_of_lumo_web_link_signs_in_once(page: Any, server: Server) -> None:
    printed = subprocess.run(
        [LUMO, "web-link", "--user", DANA, "--base-url", server.base_url],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    url = printed.strip().splitlines()[-1]
    page.goto(url)
    page.get_by_role("heading", name="Today").wait_for()
    assert page.locator("#me").inner_text() == "Dana Reyes (rep)"
    assert "signin=" not in page.url  # the spent link leaves the address bar
    page.console.allowed.append(re.compile("status of 401"))
    page.goto("about:blank")
    page.goto(url)
    page.get_by_text("this sign-in link was already used").wait_for()
    page.get_by_label("API token").wait_for()


def test_sign_in_by_pasting_a_token_and_a_bad_token_is_said_in_words(page: Any, server: Server) -> None:
    page.console.allowed.append(re.compile("status of 401"))
    page.goto(server.base_url + "/")
    page.get_by_label("API token").fill("lumo_not-a-real-token")
    page.get_by_label("API token").press("Enter")
    page.get_by_text("Your sign-in is no longer valid").wait_for()  # the server's reason follows, in words
    page.get_by_label("API token").fill(server.token(DANA))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Today").wait_for()
    page.locator("ol.items > li").first.wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out.").wait_for()
    page.reload()  # the token left the browser session with the sign-out
    page.get_by_label("API token").wait_for()


def test_signing_out_ends_the_session_on_the_server_too(page: Any, server: Server) -> None:
    sign_in(page, server)
    token = page.evaluate("Object.values(sessionStorage).find((v) => v.startsWith('lumo_'))")
    me = urllib.request.Request(server.base_url + "/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert urllib.request.urlopen(me, timeout=30).status == 200
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out.").wait_for()
    try:
        urllib.request.urlopen(me, timeout=30)
        raise AssertionError("the session token still works after signing out")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401


def test_what_should_i_do_today_shows_the_ranked_items(page: Any, server: Server) -> None:
    sign_in(page, server)
    expected = [i["invoice_number"] for i in server.api("/v1/priorities", DANA)["items"]]
    page.get_by_role("link", name="Chat").click()
    box = page.get_by_label("Message to Lumo")
    box.fill("what should I do today?")
    box.press("Enter")  # Enter sends
    answer = page.locator(".msg.lumo").last
    answer.locator(".md").wait_for()
    assert "INV-1001" in answer.locator(".md").inner_text()
    assert answer.locator(".steps li").count() >= 1  # the live steps of the turn were shown
    answer.get_by_text("Work on these").click()
    shown = answer.locator("ol.items > li .item-head a").all_inner_texts()
    assert shown == expected and shown[0] == "INV-1001"
    link = answer.locator(".md a", has_text="INV-1001").first  # invoice numbers in the answer link to their page
    assert link.get_attribute("href") == "#/invoice/INV-1001"
    page.get_by_role("link", name="New chat").click()
    page.get_by_role("complementary", name="Threads").get_by_role("link", name="what should I do today?").first.click()
    page.locator(".msg.lumo .md").wait_for()  # the thread reopens with its question and its latest answer
    assert page.locator(".msg.user").first.inner_text().endswith("what should I do today?")
    assert "INV-1001" in page.locator(".msg.lumo .md").inner_text()


def test_draft_edit_and_approve_queues_the_edited_email_once(page: Any, server: Server) -> None:
    sign_in(page, server)
    decisions: list[str] = []
    page.on("request", lambda r: decisions.append(r.url) if r.method == "POST" and r.url.endswith("/decision") else None)
    page.get_by_role("button", name="Draft it: reminder for INV-1001").click()
    card = page.locator("article.approval")
    card.wait_for()
    facts = card.locator(".facts").inner_text()
    assert "hank@globex.test" in facts and "INV-1001" in facts and "12,400.00" in facts  # exactly what will be sent
    card.get_by_role("button", name="Edit").click()
    card.get_by_label("Email text").fill(EDITED_BODY)
    before = len(outbox(server))
    card.get_by_role("button", name="Approve edited email").dblclick()
    card.get_by_text("Approved with your changes").wait_for()
    page.get_by_text("queued in the outbox").wait_for()
    assert len(decisions) == 1  # the double click sent one decision
    queued = outbox(server)[before:]
    assert len(queued) == 1
    assert queued[0].status == "queued" and queued[0].body == EDITED_BODY and "INV-1001" in queued[0].invoice_numbers
    assert card.locator(".facts pre").inner_text() == EDITED_BODY  # the card shows what was approved
    assert card.locator("button:enabled").count() == 0


def test_reject_with_a_reason_sends_nothing(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.get_by_role("link", name="Chat").click()
    page.get_by_label("Message to Lumo").fill("send the reminder for INV-1003")
    page.get_by_role("button", name="Send").click()
    card = page.locator("article.approval")
    card.wait_for()
    assert "gavin@hooli.test" in card.inner_text()
    card.get_by_role("button", name="Reject").click()
    card.get_by_label("Reason for rejecting").fill("Gavin paid by wire this morning")
    card.get_by_role("button", name="Reject it").click()
    card.get_by_text("Rejected: Gavin paid by wire this morning. Nothing was done.").wait_for()
    assert page.locator(".msg.lumo").last.inner_text().count("Gavin paid by wire this morning") >= 1
    assert not [e for e in outbox(server) if "INV-1003" in e.invoice_numbers]


def ask(page: Any, message: str) -> Any:
    """Send a message and return the approval card it brings (pinned by position: later cards come after it)."""
    cards = page.locator("article.approval")
    before = cards.count()
    page.get_by_label("Message to Lumo").fill(message)
    page.get_by_label("Message to Lumo").press("Enter")
    card = cards.nth(before)
    card.wait_for()
    return card


def test_an_approval_refused_by_the_checks_says_why_in_the_thread(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.get_by_role("link", name="Chat").click()
    ask(page, "send the reminder for INV-1004")
    first_thread = page.url
    page.get_by_role("link", name="New chat").click()
    page.locator("article.approval").first.wait_for(state="detached")  # the new chat shows none yet (busy cores)
    ask(page, "send the reminder for INV-1004").get_by_role("button", name="Approve").click()
    page.get_by_text("queued in the outbox").wait_for()
    page.goto(first_thread)  # the older draft of the same reminder, reopened: it still waits
    card = page.locator("article.approval")
    card.wait_for()
    card.get_by_role("button", name="Approve").click()
    card.get_by_text("Approved. The result is below.").wait_for()
    assert "cooldown" in page.locator(".msg.lumo").last.inner_text()  # refused at approval time, and why
    assert len([e for e in outbox(server) if "INV-1004" in e.invoice_numbers]) == 1


def test_an_edit_the_guard_holds_is_sent_only_when_approved_anyway(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.get_by_role("link", name="Chat").click()
    card = ask(page, "send the reminder for INV-1005")
    card.get_by_role("button", name="Edit").click()
    wrong = "Dear Pepper Potts,\n\nINV-1005 for $99.00 is overdue.\n\nDana Reyes"  # the invoice is $3,100.00
    card.get_by_label("Email text").fill(wrong)
    card.get_by_role("button", name="Approve edited email").click()
    card.get_by_text("Approved with your changes, but the checks held it").wait_for()
    held = page.locator("article.approval.held")
    assert "Not sent" in held.locator(".description").inner_text()  # the guard's reason, in words
    assert not [e for e in outbox(server) if "INV-1005" in e.invoice_numbers]
    held.get_by_role("button", name="Approve anyway").click()
    held.get_by_text("Approved anyway.").wait_for()
    (sent,) = [e for e in outbox(server) if "INV-1005" in e.invoice_numbers]
    assert sent.body == wrong and sent.status == "queued"


def test_the_account_page_shows_health_and_overdue_by_bucket(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.get_by_role("link", name="Accounts").click()
    page.get_by_role("link", name="Globex").click()
    page.get_by_role("heading", name="Globex").wait_for()
    health = page.get_by_role("region", name="Health").inner_text()
    assert "score" in health and "Open balance" in health
    buckets = page.get_by_role("region", name="Overdue by bucket").inner_text()
    assert "31-60" in buckets and "1-30" in buckets
    assert page.get_by_role("region", name="Open invoices").locator("tbody a").all_inner_texts() == ["INV-1001", "INV-1002"]


def test_an_approved_note_is_logged_and_shows_on_the_invoice_page(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.get_by_role("link", name="Chat").click()
    page.get_by_label("Message to Lumo").fill("add a note to INV-1003: Gavin says the check is in the mail")
    page.get_by_label("Message to Lumo").press("Enter")
    card = page.locator("article.approval")
    card.wait_for()
    assert card.get_by_role("heading").inner_text() == "Log note"
    assert "INV-1003" in card.locator(".facts").inner_text() and "Gavin says the check is in the mail" in card.inner_text()
    card.get_by_role("button", name="Approve").click()
    card.get_by_text("Approved. The result is below.").wait_for()
    card.locator(".facts a", has_text="INV-1003").click()
    page.get_by_role("heading", name="Invoice INV-1003").wait_for()
    assert "Gavin says the check is in the mail" in page.get_by_role("region", name="History").inner_text()


def test_the_invoice_page_shows_facts_payments_and_history(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.locator("ol.items a", has_text="INV-1002").first.click()
    page.get_by_role("heading", name="Invoice INV-1002").wait_for()
    facts = page.get_by_role("region", name="Facts").inner_text()
    assert "Globex" in facts and "partially paid" in facts and "$4,000.00" in facts and "Promise to pay" in facts
    assert "$1,000.00" in page.get_by_role("region", name="Payments").inner_text()
    assert "Hank promised the rest within a week" in page.get_by_role("region", name="History").inner_text()


def test_a_rep_cannot_open_another_reps_invoice(page: Any, server: Server) -> None:
    page.console.allowed.append(RESOURCE_404)  # the browser notes the API's 404 on its console
    sign_in(page, server)
    page.goto(server.base_url + "/#/invoice/INV-2001")
    page.get_by_text("Invoice INV-2001 not found.").wait_for()
    assert page.get_by_role("region", name="Facts").count() == 0


def test_a_manager_opens_a_team_invoice_and_switches_rep(page: Any, server: Server) -> None:
    sign_in(page, server, MIA)
    page.goto(server.base_url + "/#/invoice/INV-2001")
    assert "Initech" in page.get_by_role("region", name="Facts").inner_text()
    page.get_by_role("link", name="Today").click()
    page.get_by_label("Book").select_option("rob@acme.test")
    page.get_by_text("Showing the book of rob@acme.test").wait_for()
    page.locator("ol.items > li").first.wait_for()
    assert page.locator("ol.items > li .item-head a").all_inner_texts() == ["INV-2001"]


def test_the_overdue_list_filters_by_account_bucket_and_currency(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.get_by_role("link", name="Overdue").click()
    page.get_by_text("5 overdue invoices").wait_for()
    page.get_by_label("Currency").fill("eur")
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("1 overdue invoice", exact=True).wait_for()
    assert page.locator("tbody a").all_inner_texts() == ["INV-1001"]
    page.get_by_label("Currency").fill("")
    page.get_by_label("Account").fill("hooli")
    page.get_by_label("Days overdue").select_option("1-30")
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("1 overdue invoice", exact=True).wait_for()
    assert page.locator("tbody a").all_inner_texts() == ["INV-1003"]


def test_at_375_px_no_page_overflows_sideways(phone: Any, server: Server) -> None:
    sign_in(phone, server, ROB)  # Rob's reminder is drafted here only, so no other test's email is in its way
    no_horizontal_overflow(phone)
    phone.get_by_role("button", name="Draft it: reminder for INV-2001").click()
    phone.locator("article.approval").wait_for()
    no_horizontal_overflow(phone)
    phone.locator("article.approval").get_by_role("button", name="Edit").click()
    no_horizontal_overflow(phone)
    for route, ready in (
        ("#/invoice/INV-2001", "History"),
        ("#/overdue", "Filters"),
        ("#/stale", "Filters"),
        ("#/accounts", None),
        ("#/account/a3", "Overdue by bucket"),
    ):
        phone.goto(server.base_url + "/" + route)
        if ready:
            phone.get_by_role("region", name=ready).or_(phone.get_by_role("form", name=ready)).first.wait_for()
        else:
            phone.locator(".accounts li").first.wait_for()
        no_horizontal_overflow(phone)


def test_the_page_loads_without_console_errors(page: Any, server: Server) -> None:
    sign_in(page, server)
    for name in ("Chat", "Overdue", "Stale", "Accounts", "Today"):
        page.get_by_role("link", name=name, exact=True).click()
        page.wait_for_load_state("networkidle")
    assert page.console.errors == []
    assert os.path.exists(server.log)
