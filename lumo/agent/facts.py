"""What the model may state in a turn: the facts in that turn's tool results."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from lumo.crm.grounding import Mismatch, check_text, facts_in_text

AMOUNT = re.compile(r"^-?\d+(?:\.\d+)?$")
AMOUNT_KEYS = frozenset(
    {
        "amount",
        "balance",
        "original_amount",
        "amount_paid",
        "open_base",
        "overdue_base",
        "revenue_at_risk",
        "total",
    }
)


# Maps whose values are amounts in the enclosing object's currency ({"1-30": "3492.50", ...}).
AMOUNT_MAPS = frozenset({"overdue_by_bucket"})
MOMENT = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]\d{2}:\d{2}")


@dataclass
class TurnFacts:
    """Facts from tool results, read with their context: an amount is in the currency of the object that holds
    it or of the nearest one around it (an invoice's payments, an account's buckets, revenue at risk's accounts);
    a moment (`paid_at`, `at`) states its date, as written and in the rep's time zone."""

    amounts: set[tuple[str, Decimal]] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    dates: set[dt.date] = field(default_factory=set)
    tz: dt.tzinfo | None = None

    def add_result(self, raw_json: str, data: Any) -> None:
        amounts, numbers, dates = facts_in_text(raw_json)
        self.amounts |= amounts
        self.numbers |= numbers
        self.dates |= dates
        self._walk(data, None)

    def _walk(self, data: Any, currency: str | None) -> None:
        if isinstance(data, list):
            for item in data:
                self._walk(item, currency)
        elif isinstance(data, dict):
            own = data.get("currency") or data.get("base_currency")
            currency = own if isinstance(own, str) else currency
            for key, value in data.items():
                if key in AMOUNT_KEYS and isinstance(value, str):
                    self._amount(currency, value)
                elif key in AMOUNT_MAPS and isinstance(value, dict):
                    for amount in value.values():
                        if isinstance(amount, str):
                            self._amount(currency, amount)
                elif isinstance(value, dict | list):
                    self._walk(value, currency)
                elif isinstance(value, str):
                    self._moment(value)

    def _amount(self, currency: str | None, value: str) -> None:
        if currency is None or not AMOUNT.match(value):
            return
        try:
            self.amounts.add((currency, Decimal(value)))
        except InvalidOperation:
            pass

    def _moment(self, value: str) -> None:
        match = MOMENT.match(value)
        if not match:
            return
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return
        self.dates.add(moment.date())
        if self.tz is not None and moment.tzinfo is not None:
            self.dates.add(moment.astimezone(self.tz).date())

    def check(self, text: str, today: dt.date) -> list[Mismatch]:
        currencies = {c for c, _ in self.amounts}
        return check_text(text, self.amounts, self.numbers, self.dates | {today}, currencies)
