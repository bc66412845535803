"""The offline reading of what a customer said: the intent, its arguments, and dates relative to today."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from lumo.agent.record_intents import date_in, money_in, parse_record_intent
from lumo.agent.understand import understand

TODAY = dt.date(2026, 11, 25)  # a Wednesday


@pytest.mark.parametrize(
    ("message", "tool", "args"),
    [
        ("Carol promised to pay BET-2001 by the 20th", "record_promise", {"invoice_number": "BET-2001", "date": "2026-12-20"}),
        ("Hank will pay INV-1042 by Friday", "record_promise", {"date": "2026-11-27"}),
        ("Pepper promised to pay GBP 600 of INV-4002 on Dec 3", "record_promise", {"amount": "600.00", "currency": "GBP"}),
        ("we got a payment of USD 500 for INV-1", "record_payment", {"invoice_number": "INV-1", "amount": "500.00"}),
        ("INV-1042: received €1,200.50 by card yesterday", "record_payment", {"date": "2026-11-24", "method": "card"}),
        ("Globex wired 2.5k for INV-1042 on the 20th", "record_payment", {"amount": "2500.00", "date": "2026-11-20"}),
        ("INV-1 is disputed: wrong quantity", "open_dispute", {"invoice_number": "INV-1", "reason": "wrong quantity"}),
        ("Hooli disputes INV-2001 because the PO number is wrong", "open_dispute", {"reason": "the PO number is wrong"}),
        ("resolve the dispute on INV-2002: credit note issued", "resolve_dispute", {"resolution": "credit note issued"}),
        ("Settled the dispute on INV-2002 - we wrote it off", "resolve_dispute", {"status": "written_off"}),
        ("log a call with Hank about INV-1042: no answer", "log_call", {"invoice_number": "INV-1042", "outcome": "no answer"}),
        ("I spoke with Gavin about INV-2001, he is checking with AP", "log_call", {"outcome": "he is checking with AP"}),
        ("fix all my stale statuses", "stale_findings", {"limit": 50}),
    ],
)
def test_what_the_customer_said_becomes_the_action_to_approve(message: str, tool: str, args: dict[str, Any]) -> None:
    intent = understand(message, TODAY)
    assert intent.calls, intent
    name, got = intent.calls[-1]
    assert name == tool and args.items() <= got.items()


def test_a_call_that_brought_a_promise_records_both() -> None:
    intent = understand("I called Carol about BET-2001, she'll pay by Friday", TODAY)
    assert [name for name, _ in intent.calls] == ["log_call", "record_promise"]


@pytest.mark.parametrize(
    "message",
    [
        "Any broken promises to pay?",
        "Show me the stalled disputes",
        "Mark INV-1044 as paid because the payments cover it",
        "Draft a reminder for INV-1042, they paid 400 already",
        "Log a note on INV-1042: promised payment Friday",
        "What did Carol promise on BET-2001?",
        "What should I do today?",
    ],
)
def test_questions_and_other_requests_are_left_to_the_general_parser(message: str) -> None:
    assert parse_record_intent(message, TODAY) is None


@pytest.mark.parametrize(
    ("message", "question"),
    [
        ("Carol promised to pay by the 20th", "Which invoice is the promise about?"),
        ("Carol promised to pay INV-1", "By what date"),
        ("INV-1 is disputed", "What does the customer dispute on INV-1?"),
        ("log a call about INV-1042", "What came out of the call about INV-1042?"),
    ],
)
def test_a_record_missing_a_fact_asks_for_it(message: str, question: str) -> None:
    intent = understand(message, TODAY)
    assert intent.name == "clarify" and question in (intent.question or "")


@pytest.mark.parametrize(
    ("text", "ahead", "day"),
    [
        ("by the 20th", True, dt.date(2026, 12, 20)),
        ("on the 20th", False, dt.date(2026, 11, 20)),
        ("by the 25th", True, TODAY),
        ("Friday", True, dt.date(2026, 11, 27)),
        ("last Friday", False, dt.date(2026, 11, 20)),
        ("by Wednesday", True, TODAY),
        ("next Wednesday", True, dt.date(2026, 12, 2)),
        ("by the end of the month", True, dt.date(2026, 11, 30)),
        ("January 5th", True, dt.date(2027, 1, 5)),
        ("3 Dec", False, dt.date(2025, 12, 3)),
        ("in two weeks", True, dt.date(2026, 12, 9)),
        ("2 days ago", False, dt.date(2026, 11, 23)),
        ("by 2026-12-01", True, dt.date(2026, 12, 1)),
        ("soon", True, None),
    ],
)
def test_dates_are_read_relative_to_the_injected_today(text: str, ahead: bool, day: dt.date | None) -> None:
    assert date_in(text, TODAY, ahead=ahead) == day


def test_money_ignores_invoice_numbers_and_days() -> None:
    assert money_in("INV-1042 will be paid in 5 days") is None
    assert str(money_in("a payment of 1,250.00 EUR")) == "(Decimal('1250.00'), 'EUR')"
