"""Rendering of the Jinja2 templates in `prompts/` with money and date filters."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, StrictUndefined

import prompts
from lumo.crm.money import format_code, format_money

PROMPTS_DIR = Path(prompts.__file__).parent


def long_date(value: dt.date | str, locale: str = "en_US") -> str:
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    return format_date(value, "long", locale=locale)


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(PROMPTS_DIR),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )
    env.filters["money"] = lambda amount, currency: format_money(Decimal(amount), currency)
    env.filters["money_code"] = lambda amount, currency: format_code(Decimal(amount), currency)
    env.filters["long_date"] = long_date
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context).strip()
