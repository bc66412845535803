"""The rules that read a customer's reply: automatic or not, and what it means."""

from __future__ import annotations

import datetime as dt

import pytest

from lumo.crm.replies import classify, fresh_text, is_auto_reply, promised_date, proposals

TODAY = dt.date(2026, 11, 25)  # a Wednesday


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"auto-submitted": "auto-generated"},
        {"X-Auto-Response-Suppress": "All"},
        {"Precedence": "bulk"},
        {"Precedence": "auto_reply"},
        {"X-Autoreply": "yes"},
    ],
)
def test_automatic_replies_are_known_by_their_headers(headers: dict[str, str]) -> None:
    assert is_auto_reply(headers)


def test_a_person_s_reply_is_not_automatic() -> None:
    assert not is_auto_reply({"Auto-Submitted": "no", "Precedence": "first-class", "From": "pat@customer.test"})


def test_the_quoted_original_is_not_the_reply() -> None:
    body = "Will check.\n\nOn Tue, Nov 25, 2026 at 12:00 Rep <r@acme.test> wrote:\n> We paid this already?"
    assert fresh_text(body) == "Will check."
    assert classify(body, TODAY).kind == "other"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("We paid this yesterday.", "paid_claim"),
        ("Hi, I have already paid the invoice", "paid_claim"),
        ("The payment was sent on Monday.", "paid_claim"),
        ("This amount is incorrect, we were quoted less.", "dispute"),
        ("We never received the goods, so we already paid nothing.", "dispute"),
        ("We will pay by Friday.", "promise"),
        ("Can you resend the invoice with our PO number?", "question"),
        ("Thanks.", "other"),
    ],
)
def test_a_reply_is_read_by_rules(text: str, kind: str) -> None:
    assert classify(text, TODAY).kind == kind


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("we will pay by Friday", dt.date(2026, 11, 27)),
        ("we'll pay on 2026-12-10", dt.date(2026, 12, 10)),
        ("payment will be made on 4 December", dt.date(2026, 12, 4)),
        ("we will pay Jan 5", dt.date(2027, 1, 5)),
        ("we will pay tomorrow", dt.date(2026, 11, 26)),
        ("we will pay at the end of the month", dt.date(2026, 11, 30)),
        ("we will pay soon", None),
    ],
)
def test_a_promise_s_date_is_read_from_its_words(text: str, day: dt.date | None) -> None:
    assert promised_date(text, TODAY) == day


def test_a_paid_claim_suggests_a_note_and_a_verify_task_never_a_payment() -> None:
    said = "We paid this yesterday."
    calls = proposals(classify(said, TODAY), "INV-1001", "pat@customer.test", said, TODAY)
    assert [c["tool"] for c in calls] == ["log_note", "create_follow_up_task"]
    assert "Not verified" in calls[0]["args"]["text"] and calls[1]["args"]["title"].startswith("Verify the payment")


def test_a_promise_without_a_date_is_left_for_the_rep_to_read() -> None:
    calls = proposals(classify("We will pay soon", TODAY), "INV-1001", "pat@customer.test", "We will pay soon", TODAY)
    assert [c["tool"] for c in calls] == ["create_follow_up_task"]
