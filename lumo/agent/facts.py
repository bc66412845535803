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


@dataclass
class TurnFacts:
    amounts: set[tuple[str, Decimal]] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    dates: set[dt.date] = field(default_factory=set)

    def add_result(self, raw_json: str, data: Any) -> None:
        amounts, numbers, dates = facts_in_text(raw_json)
        self.amounts |= amounts
        self.numbers |= numbers
        self.dates |= dates
        self._walk(data)

    def _walk(self, data: Any) -> None:
        if isinstance(data, list):
            for item in data:
                self._walk(item)
        elif isinstance(data, dict):
            currency = data.get("currency") or data.get("base_currency")
            for key, value in data.items():
                if key in AMOUNT_KEYS and isinstance(value, str) and isinstance(currency, str) and AMOUNT.match(value):
                    try:
                        self.amounts.add((currency, Decimal(value)))
                    except InvalidOperation:
                        pass
                elif isinstance(value, dict | list):
                    self._walk(value)
                if key == "open_balance" and isinstance(value, list):
                    self._walk(value)

    def check(self, text: str, today: dt.date) -> list[Mismatch]:
        currencies = {c for c, _ in self.amounts}
        return check_text(text, self.amounts, self.numbers, self.dates | {today}, currencies)
