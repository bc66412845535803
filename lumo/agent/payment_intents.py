"""Payments and cash, read offline: "what payments need matching?", "apply bank line 3 to INV-1042",
"what cash do we expect?", and a customer's word that an invoice is paid ("Acme says they paid INV-1042
yesterday"), which is a claim to verify (a note and a task), never a payment.

Registered with `lumo.agent.understand` at order 25, before the record recognizer (30) that reads a payment
with an amount as received.
"""

from __future__ import annotations

import datetime as dt
import re

from lumo.agent.intents import Intent, invoice_numbers
from lumo.agent.record_intents import date_in, money_in
from lumo.agent.slots import Request
from lumo.agent.understand import register

_TO_MATCH = re.compile(
    r"\b(?:payments?|bank\s+lines?|bank\s+payments?|remittances?)\b(?:\s+\S+){0,4}?\s+(?:need|needs|to|waiting|left|for)\s+"
    r"(?:be\s+)?(?:match|matching|matched|reconcil\w*|approv\w*)|\bunmatched\b|\b(?:match|reconcile)\s+(?:the\s+|my\s+)?"
    r"(?:bank|payments?)\b|\bbank\s+(?:suggestions|matches)\b",
    re.I,
)
_APPLY_LINE = re.compile(r"\b(?:apply|match|approve)\s+(?:the\s+)?bank\s+line\s+#?(\d{1,9})\b", re.I)
_FORECAST = re.compile(
    r"\bforecast\b|\bcash\s+(?:flow|to\s+come|coming|expected|in)\b|\bexpect(?:ed)?\s+(?:cash|to\s+collect|collections?)\b"
    r"|\b(?:what|how\s+much)\s+cash\b(?:\s+\S+){0,4}?\s+expect\b|\bexpected\s+vs\.?\s+collected\b",
    re.I,
)
_CLAIM = re.compile(
    r"\b(?:says?|said|claims?|claimed|tells?\s+me|told\s+(?:me|us))\b(?:\s+\S+){0,5}?\s+(?:already\s+)?(?:paid|settled|wired|sent\s+(?:the\s+)?(?:payment|money))\b"
    r"|\b(?:claims?|claimed)\s+(?:to\s+have\s+)?paid\b",
    re.I,
)


def parse_payment_intent(text: str, today: dt.date) -> Intent | None:
    text = (text or "").strip()
    if not text:
        return None
    line = _APPLY_LINE.search(text)
    if line:
        args: dict[str, object] = {"line_id": int(line.group(1))}
        numbers = invoice_numbers(text)
        if numbers:
            args["invoice_numbers"] = numbers
        return Intent("apply_bank_line", [("apply_bank_line", args)])
    if _TO_MATCH.search(text):
        return Intent("payments_to_match", [("payments_to_match", {})])
    if _FORECAST.search(text):
        return Intent("forecast", [("cash_forecast", {})])
    numbers = invoice_numbers(text)
    if numbers and _CLAIM.search(text) and money_in(text) is None:
        return _claimed_paid(text, numbers[0], today)
    return None


def _claimed_paid(text: str, number: str, today: dt.date) -> Intent:
    day = date_in(text, today, ahead=False) or today
    when = "today" if day == today else day.isoformat()
    note = f"Customer says {number} was paid ({when}); not yet seen in the bank or Stripe: to verify"
    task = {
        "title": f"Verify the payment of {number} the customer says was made {when}",
        "invoice_number": number,
        "due_date": (today + dt.timedelta(days=1)).isoformat(),
    }
    return Intent(
        "claimed_paid",
        [("log_note", {"invoice_number": number, "text": note}), ("create_follow_up_task", task)],
    )


def recognize(req: Request) -> Intent | None:
    return parse_payment_intent(req.text, req.today)


register(recognize, order=25, name="payments")
