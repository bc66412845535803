"""What a message names and asks for beyond its intent: accounts, day and amount thresholds, dates.

Read against the rep's book (`Request.names`), so an account is the book's own name when it is in the book
and the name as typed when it is not (the tools then say "not found", the same in every phrasing).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lumo.agent import intents
from lumo.agent.focus import Focus
from lumo.agent.names import LEXICON, NameIndex, accounts_in, contact_account_in
from lumo.crm.book import BookNames


@dataclass(frozen=True)
class Request:
    text: str  # the message (as typed, or with its typos put right on the second reading)
    today: dt.date
    book: BookNames
    names: NameIndex
    focus: Focus


# --- slots ------------------------------------------------------------------------------------------

_NAME_WORD = r"[A-Z][\w&'’.\-]*"
_NAME_AFTER = re.compile(rf"\b(?:at|from|of|for|with|about|on|by)\s+(?:the\s+)?({_NAME_WORD}(?:\s+(?:&\s+)?{_NAME_WORD})*)")
_OWES = re.compile(rf"\b(?:does|do|did|is)\s+({_NAME_WORD}(?:\s+{_NAME_WORD})*)\s+(?:owe|still\s+owe|pay|late|behind)\b")
_NOT_NAMES = frozenset(
    """
    more less than this next last quarter year date status years month months week weeks day days today tomorrow yesterday now
    total totals base usd eur gbp dollars euros pounds me you us them all every any lumo inv monday tuesday wednesday
    thursday friday saturday sunday january february march april may june july august september october november december
    """.split()
)


def name_like(phrase: str) -> bool:
    words = re.findall(r"[a-z0-9&]+", phrase.lower())
    return any(w not in LEXICON and w not in _NOT_NAMES and not w.isdigit() and len(w) > 1 for w in words)


def account_of(req: Request) -> str | None:
    """The account a message names: one of the book's (by name, first word or misspelling), a contact's
    account, or else the name as typed (an account outside the book gets the tools' "not found")."""
    text = intents._without_invoices(req.text)
    found = accounts_in(text, req.names)
    if len(found) == 1:
        return found[0]
    if found:
        shared = _shared_prefix(found)
        return shared or found[0]
    by_contact = contact_account_in(text, req.names)
    if by_contact:
        return by_contact
    typed = intents.account_in(text)
    if typed and name_like(typed) and (typed[:1].isupper() or not req.book.accounts):
        whole = next((m.group(1) for m in _NAME_AFTER.finditer(text) if m.group(1).startswith(typed)), typed)
        return whole.removesuffix("'s").removesuffix("’s")
    for pattern in (_OWES, _NAME_AFTER):
        for m in pattern.finditer(text):
            name = intents._clean_name(m.group(1))
            if name and name_like(name) and name.lower() not in _NOT_NAMES:
                return name
    if typed and name_like(typed):
        return typed
    return None


def _shared_prefix(names: list[str]) -> str | None:
    """The first word several matched accounts share ("Brandt" for Brandt Foods and Brandt Aerospace)."""
    firsts = {n.split()[0] for n in names}
    return firsts.pop() if len(firsts) == 1 else None


_OVER_DAYS = re.compile(
    r"\b(?:over|more\s+than|older\s+than|above|beyond|past|greater\s+than|at\s+least|>\s*)\s*(\d{1,5})\s*\+?\s*days?\b"
    r"|\b(\d{1,5})\s*\+\s*days?\b|\b(\d{1,5})\s+days?\s+(?:or\s+more|and\s+(?:up|over|more|older))\b",
    re.I,
)
AMOUNT = re.compile(
    r"\b(?:over|above|more\s+than|greater\s+than|at\s+least|bigger\s+than|larger\s+than|under|below|less\s+than)\s+"
    r"(?:([A-Z]{3})\s*)?([$€£])?\s*(\d[\d,]*(?:\.\d+)?)\s*(k|m)?\b(?!\s*(?:\+\s*)?days?\b)(?!-)",
    re.I,
)
CONVERT = re.compile(
    r"\bconvert(?:ed)?\b|\bin\s+(?:the\s+|our\s+)?base\s+currency\b|\bin\s+total\b|\baltogether\b|\bcombined\b"
    r"|\bgrand\s+total\b|\ball\s+together\b|\bone\s+(?:total|number|figure|currency)\b|\btotal\s+(?:\w+\s+){0,3}in\s+\w+"
    r"|\bsum\b|\boverall\b|\bacross\s+(?:all\s+)?(?:the\s+)?currencies\b",
    re.I,
)


def min_days_in(text: str) -> int | None:
    """A day threshold ("over 60 days", "60+ days"): invoices more than this many days overdue."""
    m = _OVER_DAYS.search(intents._without_invoices(text))
    if not m:
        return None
    if m.group(1):
        days = int(m.group(1))
        return days - 1 if re.search(r"at\s+least|\+", m.group(0)) else days
    return int(m.group(2) or m.group(3)) - 1 or None


def amount_in(text: str) -> str | None:
    """An amount threshold as typed ("over $5,000")."""
    m = AMOUNT.search(intents._without_invoices(text))
    return m.group(0).strip() if m else None


_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP"}


def min_balance_in(text: str, base: str) -> tuple[str | None, str | None]:
    """The least open balance asked for ("over $5,000", "above 5k"), as a string in the base currency, and
    else why it cannot be applied (a ceiling, or an amount in another currency)."""
    m = AMOUNT.search(intents._without_invoices(text))
    if not m:
        return None, None
    said = m.group(0).strip()
    if re.match(r"(?i)under|below|less", said):
        return None, f'I can\'t filter by a ceiling on the amount ("{said}"), so the answer below is not limited by it.'
    currency = (m.group(1) or "").upper() or _SYMBOLS.get(m.group(2) or "") or base
    if currency != base:
        return None, f'I can compare amounts only in the base currency ({base}), so "{said}" is not applied.'
    value = Decimal(m.group(3).replace(",", "")) * {"k": 1000, "m": 1_000_000}.get((m.group(4) or "").lower(), 1)
    return str(value), None


# --- dates ------------------------------------------------------------------------------------------

_DATE_LEAD = re.compile(r"\b(?:since|by|on|for|before|until|till|due|from)\s+((?:the\s+)?[\w ,/.-]{2,30})", re.I)


def date_in(text: str, today: dt.date, *, past: bool = False) -> dt.date | None:
    """A day a message names: the task parser's phrases, else `dateparser` on the phrase after since/by/on...,
    relative to the injected today (never the clock)."""
    if past and (m := re.search(r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", text, re.I)):
        back = (today.weekday() - intents._WEEKDAYS.index(m.group(1).lower())) % 7
        return today - dt.timedelta(days=back or 7)
    try:
        day, _ = intents.due_date_in(text, today)
    except intents.BadDate:
        return None
    if day is not None:
        return day
    low = text.lower()
    if re.search(r"\byesterday\b", low):
        return today - dt.timedelta(days=1)
    if re.search(r"\blast\s+week\b", low):
        return today - dt.timedelta(days=7)
    if re.search(r"\bthis\s+week\b", low):  # since its Monday, or by its Sunday
        return today - dt.timedelta(days=today.weekday()) if past else today + dt.timedelta(days=6 - today.weekday())
    if (m := _DAY_OF_MONTH.search(text)) and not re.search(rf"{m.group(0)}\s+(?:of\s+)?[A-Za-z]{{3}}", text):
        return _day_of_month(int(m.group(1)), today, past)
    for m in _DATE_LEAD.finditer(text):
        found = _dateparser_day(m.group(1), today, past)
        if found is not None:
            return found
    return None


_DAY_OF_MONTH = re.compile(r"\b(?:by|on|for|before|until|since|due)\s+(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)\b", re.I)


def _day_of_month(day: int, today: dt.date, past: bool) -> dt.date | None:
    """ "by the 20th": the next 20th (the last one for "since"), in this month or the one after (before)."""
    year, month = today.year, today.month
    for _ in range(3):
        try:
            found = dt.date(year, month, day)
        except ValueError:
            found = None
        if found is not None and (found <= today if past else found >= today):
            return found
        month += -1 if past else 1
        if month == 0:
            year, month = year - 1, 12
        elif month == 13:
            year, month = year + 1, 1
    return None


def _dateparser_day(phrase: str, today: dt.date, past: bool) -> dt.date | None:
    phrase = re.split(r"[?!;]| and | about | for ", phrase)[0].strip()
    if not re.search(r"\d|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|end|week|month)", phrase, re.I):
        return None
    import dateparser  # imported on first use: it costs a third of a second to load

    base = dt.datetime.combine(today, dt.time(12))
    settings: dict[str, Any] = {
        "RELATIVE_BASE": base,
        "PREFER_DATES_FROM": "past" if past else "future",
        "PREFER_DAY_OF_MONTH": "first",
        "REQUIRE_PARTS": ["day"],
    }
    try:
        parsed = dateparser.parse(phrase.removeprefix("the "), languages=["en"], settings=settings)
    except (ValueError, OverflowError):
        return None
    return parsed.date() if parsed is not None else None
