"""The grounding guard: every amount, invoice number, date and currency in a text must match its facts."""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from babel.numbers import get_currency_symbol, list_currencies

MONTHS = {
    m: i + 1
    for i, names in enumerate(
        zip(
            [
                "january",
                "february",
                "march",
                "april",
                "may",
                "june",
                "july",
                "august",
                "september",
                "october",
                "november",
                "december",
            ],
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
            strict=True,
        )
    )
    for m in names
}
_MONTH = r"(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
MDY_DATE = re.compile(rf"\b({_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.IGNORECASE)
DMY_DATE = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MONTH}),?\s+(\d{{4}})\b", re.IGNORECASE)
SLASH_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
URL = re.compile(r"https?://\S+")
INVOICE_NUMBER = re.compile(r"\b[A-Z][A-Z0-9]*-\d{2,}\b")
NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
BARE_AMOUNT = re.compile(rf"(?<![\w.,/-])({NUMBER})(?![\w/-]|[.,]\d)")


@dataclass(frozen=True)
class Mismatch:
    kind: str  # amount | currency | invoice_number | date | missing_invoice_number
    found: str
    detail: str


CURRENCY_WORDS = {"euro": "EUR", "euros": "EUR", "dollar": "USD", "dollars": "USD", "pound": "GBP", "pounds": "GBP", "yen": "JPY"}
MULTIPLIERS = {"k": Decimal(1000), "K": Decimal(1000), "m": Decimal(1_000_000), "M": Decimal(1_000_000)}


@dataclass(frozen=True)
class MoneyPatterns:
    tokens: dict[str, str]  # symbol, code or word -> ISO code
    prefix: re.Pattern[str]  # "EUR 12,400.00", "€12.4k"
    suffix: re.Pattern[str]  # "12,400.00 EUR", "13000 euros"


@cache
def _money() -> MoneyPatterns:
    tokens: dict[str, str] = {}
    for code in sorted(list_currencies()):
        tokens[code] = code
        symbol = get_currency_symbol(code, locale="en_US")
        if symbol != code:
            tokens.setdefault(symbol, code)
    marks = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
    words = "|".join(sorted(CURRENCY_WORDS, key=len, reverse=True))
    tokens.update(CURRENCY_WORDS)
    amount = rf"({NUMBER})([kKmM](?![A-Za-z]))?"
    return MoneyPatterns(
        tokens,
        re.compile(rf"(?<![A-Za-z])({marks})\s?{amount}"),
        re.compile(rf"{amount}\s?({marks}|(?i:{words}))(?![A-Za-z])"),
    )


def money_mentions(text: str) -> tuple[list[tuple[str, str, Decimal | None]], str]:
    """(raw, currency, value) of each amount written with a currency, and the text without them.

    The currency-first form is read first, so in "1-30 USD 3,492.50" the code belongs to 3,492.50, not to 30.
    """
    patterns = _money()
    found: list[tuple[str, str, Decimal | None]] = []

    def take(mark: str, number: str, multiplier: str | None, raw: str) -> str:
        value = _decimal(number)
        if value is not None and multiplier:
            value *= MULTIPLIERS[multiplier]
        found.append((raw, patterns.tokens.get(mark, patterns.tokens.get(mark.lower(), mark)), value))
        return " "

    text = patterns.prefix.sub(lambda m: take(m[1], m[2], m[3], m[0]), text)
    text = patterns.suffix.sub(lambda m: take(m[3], m[1], m[2], m[0]), text)
    return found, text


def currency_tokens() -> dict[str, str]:
    return _money().tokens


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def _dates(text: str) -> list[tuple[str, dt.date | None]]:
    found: list[tuple[str, dt.date | None]] = []

    def add(raw: str, y: int, m: int, d: int) -> None:
        try:
            found.append((raw, dt.date(y, m, d)))
        except ValueError:
            found.append((raw, None))

    for mt in ISO_DATE.finditer(text):
        add(mt.group(0), int(mt[1]), int(mt[2]), int(mt[3]))
    for mt in MDY_DATE.finditer(text):
        add(mt.group(0), int(mt[3]), MONTHS[mt[1].lower().rstrip(".")], int(mt[2]))
    for mt in DMY_DATE.finditer(text):
        add(mt.group(0), int(mt[3]), MONTHS[mt[2].lower().rstrip(".")], int(mt[1]))
    for mt in SLASH_DATE.finditer(text):
        add(mt.group(0), int(mt[3]), int(mt[1]), int(mt[2]))
    return found


def _allowed(facts: dict[str, Any]) -> tuple[set[tuple[str, Decimal]], set[str], set[dt.date], set[str]]:
    amounts: set[tuple[str, Decimal]] = set()
    numbers: set[str] = set()
    dates: set[dt.date] = set()
    for inv in facts.get("invoices", []):
        numbers.add(inv["number"])
        for key in ("amount", "original_amount"):
            if inv.get(key) is not None:
                amounts.add((inv["currency"], Decimal(inv[key])))
        for key in ("due_date", "issue_date", "promise_to_pay_date"):
            if inv.get(key):
                dates.add(dt.date.fromisoformat(inv[key]))
    for total in facts.get("totals", []):
        amounts.add((total["currency"], Decimal(total["amount"])))
    if facts.get("today"):
        dates.add(dt.date.fromisoformat(facts["today"]))
    currencies = {c for c, _ in amounts}
    return amounts, numbers, dates, currencies


def check_grounding(text: str, facts: dict[str, Any], *, require_all_invoices: bool = True) -> list[Mismatch]:
    """Every mismatch between what `text` states and the `facts` of a draft (empty when grounded)."""
    amounts, numbers, dates, currencies = _allowed(facts)
    return check_text(text, amounts, numbers, dates, currencies, require_all_invoices=require_all_invoices)


def check_text(
    text: str,
    amounts: set[tuple[str, Decimal]],
    numbers: set[str],
    dates: set[dt.date],
    currencies: set[str],
    *,
    require_all_invoices: bool = False,
) -> list[Mismatch]:
    """The guard over explicit sets of allowed (currency, amount) pairs, invoice numbers and dates."""
    problems: list[Mismatch] = []
    text = URL.sub(" ", text)  # links carry ids and query strings, not statements
    seen_numbers = set(INVOICE_NUMBER.findall(text))
    for number in sorted(seen_numbers - numbers):
        problems.append(Mismatch("invoice_number", number, "not one of the invoices in the facts"))
    if require_all_invoices:
        for number in sorted(numbers - seen_numbers):
            problems.append(Mismatch("missing_invoice_number", number, "invoice of the draft not named"))
    scrubbed = INVOICE_NUMBER.sub(" ", text)
    for raw, value in _dates(scrubbed):
        if value is None or value not in dates:
            problems.append(Mismatch("date", raw, "no such date among the facts"))
        scrubbed = scrubbed.replace(raw, " ")
    tokens = currency_tokens()
    mentions, scrubbed = money_mentions(scrubbed)
    for raw, currency, amount in mentions:
        problems.extend(_check_amount(raw, currency, amount, amounts, currencies))
    for mt in BARE_AMOUNT.finditer(scrubbed):
        raw = mt[1]
        if "." not in raw and "," not in raw:
            continue  # plain integers are counts (days, items), not amounts
        amount = _decimal(raw)
        if amount is not None and all(amount != a for _, a in amounts):
            problems.append(Mismatch("amount", raw, "no such amount among the facts"))
    for code in sorted(set(re.findall(r"\b[A-Z]{3}\b", scrubbed)) & set(tokens)):
        if tokens[code] == code and code not in currencies:
            problems.append(Mismatch("currency", code, "currency not among the facts"))
    return problems


CODED_AMOUNT = re.compile(rf"(?<![A-Za-z])([A-Z]{{3}}) ?({NUMBER})")


@functools.lru_cache(maxsize=256)
def facts_in_text(text: str) -> tuple[frozenset[tuple[str, Decimal]], frozenset[str], frozenset[dt.date]]:
    """Money, invoice numbers and ISO dates stated in a trusted text (a tool's JSON result).

    Tools write money as "EUR 12,400.00" (and as structured fields, read elsewhere), so only ISO codes are
    looked for here: much cheaper than every symbol and word the guard must recognise in free text. Kept per
    text: the same result (a rep's priorities, kept per book version) is checked on every turn that shows it.
    """
    codes = currency_tokens()
    amounts = {
        (code, value)
        for code, number in CODED_AMOUNT.findall(text)
        if codes.get(code) == code and (value := _decimal(number)) is not None
    }
    dates = {dt.date(int(m[1]), int(m[2]), int(m[3])) for m in ISO_DATE.finditer(text) if _valid(m)}
    return frozenset(amounts), frozenset(INVOICE_NUMBER.findall(text)), frozenset(dates)


def _valid(mt: re.Match[str]) -> bool:
    try:
        dt.date(int(mt[1]), int(mt[2]), int(mt[3]))
    except ValueError:
        return False
    return True


def _check_amount(
    raw: str, currency: str, value: Decimal | None, amounts: set[tuple[str, Decimal]], currencies: set[str]
) -> list[Mismatch]:
    if value is not None and (currency, value) in amounts:
        return []
    if value is not None and any(a == value for _, a in amounts):
        right = sorted(c for c, a in amounts if a == value)
        return [Mismatch("currency", raw, f"amount is in {', '.join(right)}, not {currency}")]
    if currency not in currencies:
        return [Mismatch("currency", raw, f"no {currency} amount among the facts")]
    return [Mismatch("amount", raw, f"no {currency} amount of {value} among the facts")]
