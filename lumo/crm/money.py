"""Money: Decimal amounts with ISO-4217 currencies, formatted per locale by Babel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from babel.numbers import format_currency
from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm.errors import InvalidInput
from lumo.db.models import FxRate, Workspace

CENT = Decimal("0.01")


def format_money(amount: Decimal, currency: str, locale: str = "en_US") -> str:
    """Locale style with a symbol, for emails: '€12,400.00'."""
    return format_currency(amount, currency, locale=locale)


def format_code(amount: Decimal, currency: str, locale: str = "en_US") -> str:
    """Unambiguous style with the ISO code, for reasons and tables: 'EUR 12,400.00'."""
    return format_currency(amount, currency, format="¤¤\u00a0#,##0.00", locale=locale).replace("\u00a0", " ")


def amount_str(amount: Decimal) -> str:
    """The wire form of ARCHITECTURE.md section 5: '1250.00'."""
    return str(amount.quantize(CENT))


@dataclass(frozen=True)
class FxTable:
    """Converts to the workspace's base currency with the stored rate table."""

    base: str
    rates: Mapping[str, Decimal]

    def to_base(self, amount: Decimal, currency: str) -> Decimal:
        if currency == self.base:
            return amount
        try:
            return amount * self.rates[currency]
        except KeyError:
            raise InvalidInput(f"no exchange rate for {currency} to {self.base}") from None


def load_fx(session: Session) -> FxTable:
    workspace = session.get(Workspace, 1)
    base = workspace.base_currency if workspace else "USD"
    rates = {c: r for c, r in session.execute(select(FxRate.currency, FxRate.rate)).all()}
    return FxTable(base=base, rates=rates)


def totals_by_currency(pairs: Iterable[tuple[Decimal, str]]) -> dict[str, Decimal]:
    """Sum amounts per currency, currencies in sorted order."""
    totals: dict[str, Decimal] = {}
    for amount, currency in pairs:
        totals[currency] = totals.get(currency, Decimal("0")) + amount
    return dict(sorted(totals.items()))
