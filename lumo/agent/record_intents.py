"""What a rep tells Lumo that a customer said, read offline: a promise to pay, a payment, a dispute opened or
resolved, a call; and "fix all my stale statuses".

One entry point, `parse_record_intent(text, today)`, returns the `Intent` to act on or None when the message
is none of these (the general parser then reads it); it is registered with `lumo.agent.understand` as the
recognizer of order 30, before the parser's own actions. Dates are read relative to the injected `today`:
a promise looks ahead ("by the 20th" is the next 20th), a payment or a call looks back.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import list_currencies

from lumo.agent.intents import Intent, invoice_numbers
from lumo.agent.slots import Request
from lumo.agent.understand import register

FIX_LIMIT = 50  # fixes proposed at once; the rest come with the next "fix all"

_FIX_STALE = re.compile(
    r"\bfix\b(?:\s+\S+){0,4}?\s+(?:stale\b|status(?:es)?\b|wrong\s+status)|\bclean\s+up\b(?:\s+\S+){0,3}?\s+status", re.I
)
_PROMISE = re.compile(
    r"\bpromis(?:e|ed|es|ing)\b(?:\s+\S+){0,3}?\s+(?:to\s+)?pay\b|\b(?:will|'ll|going\s+to|agreed\s+to|committed\s+to)\s+pay\b",
    re.I,
)
_BROKEN = re.compile(r"\bbroken\b|\bbroke\b|\bany\s+promises\b|\bpromises\?", re.I)
_PAYMENT = re.compile(r"\bpayment\b|\bpaid\b|\breceived\b|\b(?:got|wired|transferred|remitted)\b|\bcame\s+in\b|\barrived\b", re.I)
# A note or a task the rep asks for is theirs to word: "log a note on INV-1: promised payment Friday".
_NOTE_OR_TASK = re.compile(
    r"\b(?:log|add|record|leave|write|put|make|save)\s+(?:a\s+|the\s+|this\s+)?(?:quick\s+)?note\b|^\W*note\s+(?:on|for|to)\b"
    r"|\b(?:create|add|make|set\s+up|schedule|open|new)\s+(?:a\s+|an\s+|me\s+a\s+)?(?:follow[\s-]?up\s+)?(?:task|to-?do)\b"
    r"|\bremind\s+me\b",
    re.I,
)
_STATUS_REQUEST = re.compile(r"\b(?:mark|change|set|update|move|switch|flag|put)\b", re.I)
_OUTREACH_REQUEST = re.compile(r"\b(?:draft|send|write|remind|chase|nudge|email)\b", re.I)
_RESOLVE = re.compile(
    r"\bresolv(?:e|ed|es|ing)\b|\bsettled?\b|\bclos(?:e|ed|ing)\s+(?:the\s+|out\s+the\s+)?dispute|\bdispute\s+is\s+over\b",
    re.I,
)
_DISPUTE = re.compile(
    r"\b(?:is|are|was|were|now|being)\s+(?:being\s+)?disputed\b|\bdisput(?:es|ing)\b|\b(?:open|opened|raise|raised|log|record|file|filed)\s+"
    r"(?:a\s+|the\s+)?dispute\b|\bdispute[sd]?\s+(?:on\s+|about\s+|over\s+)?(?:invoice\s+)?[A-Za-z]{2,8}-\d|\bdisputed\s*:",
    re.I,
)
_CALL = re.compile(
    r"\b(?:log|record|add|note|save)\s+(?:a\s+|the\s+|my\s+|this\s+)?(?:phone\s+)?call\b|\b(?:called|phoned|rang)\b"
    r"|\b(?:spoke|talked)\s+(?:to|with)\b|\bon\s+the\s+phone\s+with\b|\bhad\s+a\s+call\b",
    re.I,
)
_QUESTION = re.compile(r"^\s*(?:what|which|why|how|who|when|where|is|are|was|did|does|do|any|show|list)\b", re.I)

# What follows a lead-in is the rep's words: the reason, the resolution, the outcome.
_LEAD = re.compile(
    r"\s*(?::|—|–|\s-\s)\s*|\b(?:because(?:\s+of)?|since|due\s+to|reason(?:\s+is)?:?|over|about\s+(?:the\s+)?|with|"
    r"saying|says|said|told\s+me|(?:he|she|they)\s+(?:said|says))\s+",
    re.I,
)

# --- dates ------------------------------------------------------------------------------------------

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name} | {
    name.lower(): i for i, name in enumerate(calendar.month_abbr) if name
}
_MONTH_ALT = "|".join(sorted(_MONTHS, key=len, reverse=True)) + r"|sept"
_ORD = r"(\d{1,2})(?:st|nd|rd|th)?"
_ISO = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_MONTH_DAY = re.compile(rf"\b({_MONTH_ALT})\.?\s+{_ORD}\b|\b{_ORD}\s+(?:of\s+)?({_MONTH_ALT})\b", re.I)
_THE_DAY = re.compile(r"\b(?:the\s+)(\d{1,2})(?:st|nd|rd|th)\b|\b(\d{1,2})(?:st|nd|rd|th)\b", re.I)
_RELATIVE = re.compile(r"\b(today|tonight|tomorrow|yesterday)\b", re.I)
_IN = re.compile(r"\bin\s+(\d{1,3}|a|an|one|two|three|four|five|six|seven)\s+(day|week)s?\b", re.I)
_AGO = re.compile(r"\b(\d{1,3}|a|an|one|two|three|four|five|six|seven)\s+(day|week)s?\s+ago\b", re.I)
_END_OF = re.compile(r"\bend\s+of\s+(?:the\s+|this\s+)?(week|month)\b", re.I)
_NEXT_WEEK = re.compile(r"\bnext\s+week\b", re.I)
_WEEKDAY = re.compile(r"\b(?:(last|next|this|on|by)\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.I)
_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _COUNTS[word.lower()]


def _day_of_month(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _month_ahead(today: dt.date, months: int) -> tuple[int, int]:
    index = today.year * 12 + today.month - 1 + months
    return index // 12, index % 12 + 1


def date_in(text: str, today: dt.date, *, ahead: bool) -> dt.date | None:
    """The day a message names; `ahead` reads an open date as the next one (a promise), else the last one."""
    step = 1 if ahead else -1
    if m := _ISO.search(text):
        try:
            return dt.date.fromisoformat(m.group(1))
        except ValueError:
            return None
    if m := _RELATIVE.search(text):
        return today + dt.timedelta(days={"tomorrow": 1, "yesterday": -1}.get(m.group(1).lower(), 0))
    if m := _AGO.search(text):
        return today - dt.timedelta(days=_count(m.group(1)) * (7 if m.group(2).lower() == "week" else 1))
    if m := _IN.search(text):
        return today + dt.timedelta(days=_count(m.group(1)) * (7 if m.group(2).lower() == "week" else 1))
    if m := _MONTH_DAY.search(text):
        month_word = (m.group(1) or m.group(4)).lower().rstrip(".")
        month = _MONTHS.get(month_word, 9 if month_word == "sept" else 0)
        day = int(m.group(2) or m.group(3))
        for years in (0, step):
            found = _day_of_month(today.year + years, month, day)
            if found and (found >= today if ahead else found <= today):
                return found
        return None
    if m := _END_OF.search(text):
        if m.group(1).lower() == "week":
            return today + dt.timedelta(days=(4 - today.weekday()) % 7)  # Friday
        return dt.date(today.year, today.month, calendar.monthrange(today.year, today.month)[1])
    if _NEXT_WEEK.search(text):
        return today + dt.timedelta(days=7)
    if m := _WEEKDAY.search(text):
        wanted = _WEEKDAYS.index(m.group(2).lower())
        lead = (m.group(1) or "").lower()
        if lead == "last" or not ahead:
            return today - dt.timedelta(days=(today.weekday() - wanted) % 7 or (7 if lead == "last" else 0))
        return today + dt.timedelta(days=(wanted - today.weekday()) % 7 or (7 if lead == "next" else 0))
    if m := _THE_DAY.search(text):
        day = int(m.group(1) or m.group(2))
        for months in (0, step, 2 * step):
            year, month = _month_ahead(today, months)
            found = _day_of_month(year, month, day)
            if found and (found >= today if ahead else found <= today):
                return found
    return None


# --- money ------------------------------------------------------------------------------------------

_CODES = frozenset(list_currencies()) - {"ALL", "TOP"}
_SYMBOLS = {"€": "EUR", "£": "GBP", "¥": "JPY", "$": None}
_NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?)\s*(k\b)?"
_CODE_FIRST = re.compile(rf"\b([A-Za-z]{{3}})\s?{_NUM}", re.I)
_CODE_AFTER = re.compile(rf"(?<![\w.,-]){_NUM}\s?([A-Za-z]{{3}})\b", re.I)
_SYMBOL_FIRST = re.compile(rf"([€£¥$])\s?{_NUM}")
_BARE = re.compile(
    rf"\b(?:of|paid|received|pay|paying|wired|sent|transferred|got)\s+(?:us\s+)?{_NUM}(?!\s*(?:days?|weeks?|st|nd|rd|th)\b)", re.I
)


def _number(digits: str, thousands: str | None) -> Decimal | None:
    try:
        value = Decimal(digits.replace(",", ""))
    except InvalidOperation:
        return None
    return (value * 1000 if thousands else value).quantize(Decimal("0.01"))


def money_in(text: str) -> tuple[Decimal, str | None] | None:
    """An amount a message names, with its currency if it says one: 'USD 500', '€1,200.50', '300 EUR', 'paid 500'."""
    plain = _ISO.sub(" ", re.sub(r"\b[A-Za-z]{2,8}-\d[\d-]*\b", " ", text))
    for m in _CODE_FIRST.finditer(plain):
        if m.group(1).upper() in _CODES:
            amount = _number(m.group(2), m.group(3))
            return (amount, m.group(1).upper()) if amount is not None else None
    for m in _CODE_AFTER.finditer(plain):
        if m.group(3).upper() in _CODES:
            amount = _number(m.group(1), m.group(2))
            return (amount, m.group(3).upper()) if amount is not None else None
    if symbol := _SYMBOL_FIRST.search(plain):
        amount = _number(symbol.group(2), symbol.group(3))
        return (amount, _SYMBOLS[symbol.group(1)]) if amount is not None else None
    if bare := _BARE.search(plain):
        amount = _number(bare.group(1), bare.group(2))
        return (amount, None) if amount is not None else None
    return None


_METHODS = (
    (re.compile(r"\b(?:wire|wired|bank\s+transfer|transfer(?:red)?|ach|bacs|sepa)\b", re.I), "bank_transfer"),
    (re.compile(r"\b(?:card|credit\s+card|debit\s+card|visa|mastercard|amex|stripe)\b", re.I), "card"),
    (re.compile(r"\b(?:check|cheque)\b", re.I), "check"),
    (re.compile(r"\bcash\b", re.I), "cash"),
    (re.compile(r"\bdirect\s+debit\b", re.I), "direct_debit"),
)


def method_in(text: str) -> str | None:
    return next((method for pattern, method in _METHODS if pattern.search(text)), None)


# --- the rep's words --------------------------------------------------------------------------------


def words_after_lead(text: str, start: int = 0) -> str:
    """What the rep said after a lead-in (':', 'because', 'saying' ...), or '' if nothing follows one."""
    m = _LEAD.search(text, start)
    if not m:
        return ""
    words = " ".join(text[m.end() :].split()).strip(" .!")
    return words if len(words) >= 3 else ""


def _about_invoice_end(text: str, number: str) -> int:
    """Where the mention of the invoice ends, so the words after it are read."""
    m = re.search(re.escape(number), text, re.I)
    return m.end() if m else 0


def _clarify(question: str) -> Intent:
    return Intent("clarify", question=question)


# --- the intents ------------------------------------------------------------------------------------


def _promise(text: str, number: str, today: dt.date) -> Intent:
    day = date_in(text, today, ahead=True)
    if day is None:
        return _clarify(f"By what date did the customer promise to pay {number} (YYYY-MM-DD)?")
    args: dict[str, Any] = {"invoice_number": number, "date": day.isoformat(), "note": " ".join(text.split())[:1000]}
    money = money_in(text)
    if money:
        args["amount"] = str(money[0])
        if money[1]:
            args["currency"] = money[1]
    calls = [("record_promise", args)]
    if _CALL.search(text):  # "I called Carol, she promised to pay ...": the call is history too
        call = _call(text, number)
        calls = [*call.calls, *calls]
    return Intent("record_promise", calls)


def _payment(text: str, number: str, today: dt.date) -> Intent | None:
    money = money_in(text)
    if money is None:
        return None  # "INV-1 is paid" with no amount is a status change, read by the general parser
    args: dict[str, Any] = {"invoice_number": number, "amount": str(money[0])}
    if money[1]:
        args["currency"] = money[1]
    day = date_in(text, today, ahead=False)
    if day is not None and day != today:
        args["date"] = day.isoformat()
    if method := method_in(text):
        args["method"] = method
    return Intent("record_payment", [("record_payment", args)])


def _dispute(text: str, number: str) -> Intent:
    reason = words_after_lead(text, _about_invoice_end(text, number)) or words_after_lead(text)
    if not reason:
        return _clarify(f"What does the customer dispute on {number}?")
    return Intent("open_dispute", [("open_dispute", {"invoice_number": number, "reason": reason[:1000]})])


def _resolve(text: str, number: str) -> Intent:
    resolution = words_after_lead(text, _about_invoice_end(text, number))
    if not resolution:
        return _clarify(f"How was the dispute on {number} settled?")
    args: dict[str, Any] = {"invoice_number": number, "resolution": resolution[:1000]}
    if re.search(r"\bwr(?:ite|ote|itten)(?:\s+it)?[\s-]*off\b", text, re.I):
        args["status"] = "written_off"
    elif re.search(r"\bvoid(?:ed)?\b", text, re.I):
        args["status"] = "void"
    return Intent("resolve_dispute", [("resolve_dispute", args)])


def _call(text: str, number: str) -> Intent:
    outcome = words_after_lead(text, _about_invoice_end(text, number))
    if not outcome:
        tail = text[_about_invoice_end(text, number) :].strip(" ,.;")
        outcome = " ".join(tail.split()) if len(tail) >= 3 else ""
    if not outcome:
        return _clarify(f"What came out of the call about {number}?")
    return Intent("log_call", [("log_call", {"invoice_number": number, "outcome": outcome[:4000]})])


def parse_record_intent(text: str, today: dt.date) -> Intent | None:
    """The record or fix intent of a message, or None when it is something else."""
    text = (text or "").strip()
    if not text:
        return None
    if _FIX_STALE.search(text):
        return Intent("fix_stale", [("stale_findings", {"limit": FIX_LIMIT})])
    if _NOTE_OR_TASK.search(text):
        return None
    numbers = invoice_numbers(text)
    promise = _PROMISE.search(text) and not _BROKEN.search(text)
    resolve = _RESOLVE.search(text) and re.search(r"\bdisput", text, re.I)
    dispute = _DISPUTE.search(text) and not _STATUS_REQUEST.search(text)
    call = _CALL.search(text)
    payment = _PAYMENT.search(text) and not (_STATUS_REQUEST.search(text) or _OUTREACH_REQUEST.search(text))
    if not (promise or resolve or dispute or call or payment):
        return None
    if _QUESTION.search(text) and text.rstrip().endswith("?"):
        return None  # "what did Carol promise on BET-2001?" asks, it does not tell
    if not numbers:
        if promise or resolve or call:
            what = "promise" if promise else "dispute" if resolve else "call"
            return _clarify(f"Which invoice is the {what} about? Give me its number, e.g. INV-1042.")
        return None
    number = numbers[0]
    if promise:
        return _promise(text, number, today)
    if resolve:
        return _resolve(text, number)
    if dispute:
        return _dispute(text, number)
    if call:
        return _call(text, number)
    return _payment(text, number, today)


def recognize(req: Request) -> Intent | None:
    return parse_record_intent(req.text, req.today)


register(recognize, order=30, name="record")
