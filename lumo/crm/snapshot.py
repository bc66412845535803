"""The workspace snapshot of ARCHITECTURE.md section 5: its records, their wire forms, and problem lines.

This module checks every field of every record on its own. References between records and to
the database, uniqueness and exchange-rate coverage are checked by `lumo.crm.exchange`, which
owns the import as a whole. Both report through `Problems`, one line per problem:

    <list>[<index>] (id=<id>): <field>: <reason>

Payments and activities have no ids, so they are named by `(invoice_id=<id>)`; the workspace is
named `workspace`, and the top level of the file `snapshot`.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal

from babel.numbers import list_currencies
from pydantic import (
    BaseModel,
    ConfigDict,
    PlainValidator,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from lumo.crm.addresses import parse_address
from lumo.crm.errors import InvalidInput
from lumo.crm.lifecycle import InvoiceStatus as Status

CENT = Decimal("0.01")
# ASCII digits only: \d would also take other scripts' digits.
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CODE = re.compile(r"[A-Z]{3}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


# ---- wire forms: parsing (raise ValueError with the reason shown to the user) ----


def _decimal(value: object, example: str, places: int, int_digits: int) -> Decimal:
    if isinstance(value, str) and value.startswith("-") and _DECIMAL.fullmatch(value[1:]):
        raise ValueError("must not be negative")
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise ValueError(f'must be a decimal string like "{example}"')
    number = Decimal(value)
    if -int(number.as_tuple().exponent) > places:
        raise ValueError(f"must have at most {places} decimals")
    if number >= Decimal(10) ** int_digits:
        raise ValueError(f"must be less than 10^{int_digits}")
    return number


def parse_amount(value: object) -> Decimal:
    # Numeric(18, 2) in the database: 16 digits before the point.
    return _decimal(value, "1250.00", places=2, int_digits=16).quantize(CENT)


def parse_rate(value: object) -> Decimal:
    # Numeric(18, 8) in the database: 10 digits before the point.
    rate = _decimal(value, "1.08", places=8, int_digits=10)
    if rate == 0:
        raise ValueError("must be greater than 0")
    return rate


@cache
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def parse_currency(value: object) -> str:
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise ValueError('must be a 3-letter upper-case ISO-4217 code like "EUR"')
    if value not in _currencies():
        raise ValueError(f'"{value}" is not an ISO-4217 currency code')
    return value


def parse_day(value: object) -> dt.date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError('must be a date like "2026-10-31"')
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f'"{value}" is not a calendar date') from None


def parse_moment(value: object) -> dt.datetime:
    example = '"2026-10-01T09:00:00+00:00"'
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO-8601 moment with offset like {example}")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be an ISO-8601 moment with offset like {example}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"has no UTC offset, so the moment is ambiguous: write it like {example}")
    return moment.astimezone(dt.UTC)


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def parse_timezone(value: object) -> str:
    if not isinstance(value, str) or value not in _zones():
        raise ValueError('must be an IANA time zone like "America/New_York"')
    return value


def parse_email(value: object) -> str:
    """One addr-spec, kept as written (so an export gives back the file); lists and display names are refused."""
    if not isinstance(value, str) or not _EMAIL.fullmatch(value):
        raise ValueError('must be an email address like "dana@acme.test"')
    try:
        parse_address(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    return value


# ---- wire forms: writing ----


def amount_text(amount: Decimal) -> str:
    return str(amount.quantize(CENT))


def rate_text(rate: Decimal) -> str:
    # The column holds 8 places; write the shortest exact form ("1.08", not "1.08000000").
    return format(rate.normalize(), "f")


def day_text(day: dt.date | None) -> str | None:
    return day.isoformat() if day is not None else None


def moment_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


# ---- field types (lengths follow the columns of lumo.db.models) ----

Amount = Annotated[Decimal, PlainValidator(parse_amount)]
Rate = Annotated[Decimal, PlainValidator(parse_rate)]
Currency = Annotated[str, PlainValidator(parse_currency)]
Day = Annotated[dt.date, PlainValidator(parse_day)]
Moment = Annotated[dt.datetime, PlainValidator(parse_moment)]
TimeZone = Annotated[str, PlainValidator(parse_timezone)]
Email = Annotated[str, PlainValidator(parse_email)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Tier = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=500)]

Role = Literal["rep", "manager", "admin"]
Kind = Literal["email", "call", "note", "status_change"]


# ---- records, fields in contract order ----


class Record(BaseModel):
    # strict: no "1" for true, no 12 for "12"; the contract spells every type out.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class WorkspaceIn(Record):
    name: Name
    base_currency: Currency
    fx_rates: dict[Currency, Rate]

    @field_validator("fx_rates")
    @classmethod
    def _base_rate_is_one(cls, rates: dict[str, Decimal], info: ValidationInfo) -> dict[str, Decimal]:
        base = info.data.get("base_currency")
        if base in rates and rates[base] != 1:
            raise ValueError(f"{base} is the base currency: its rate must be 1 (or leave it out)")
        return rates


class UserIn(Record):
    id: Id
    email: Email
    name: Name
    role: Role
    manager_id: Id | None = None
    timezone: TimeZone
    slack_user_id: Label | None = None


class AccountIn(Record):
    id: Id
    name: Name
    owner_id: Id
    tier: Tier
    renewal_date: Day | None = None


class ContactIn(Record):
    id: Id
    account_id: Id
    name: Name
    email: Email
    role: Label
    do_not_contact: bool


class DealIn(Record):
    id: Id
    account_id: Id
    name: Name
    stage: Label
    amount: Amount
    currency: Currency


class InvoiceIn(Record):
    id: Id
    number: Label
    account_id: Id
    deal_id: Id | None = None
    contact_ids: list[Id]
    issue_date: Day
    due_date: Day
    amount: Amount
    currency: Currency
    status: Status
    status_updated_at: Moment
    promise_to_pay_date: Day | None = None
    dispute_reason: str | None = None
    payment_url: Url | None = None

    @field_validator("due_date")
    @classmethod
    def _due_after_issue(cls, due: dt.date, info: ValidationInfo) -> dt.date:
        issued = info.data.get("issue_date")
        if issued is not None and due < issued:
            raise ValueError(f"must not be before issue_date ({issued.isoformat()})")
        return due

    @field_validator("contact_ids")
    @classmethod
    def _contacts_once(cls, ids: list[str]) -> list[str]:
        seen: set[str] = set()
        for contact_id in ids:
            if contact_id in seen:
                raise ValueError(f'lists "{contact_id}" twice')
            seen.add(contact_id)
        return ids


class PaymentIn(Record):
    invoice_id: Id
    amount: Amount
    paid_at: Moment


class ActivityIn(Record):
    invoice_id: Id
    kind: Kind
    at: Moment
    by: Id | None
    text: str
    # Optional (added compatibly): the two sides of a status_change, so a round trip keeps the history.
    from_status: Status | None = None
    to_status: Status | None = None


class TaskIn(Record):
    id: Id
    owner_id: Id
    account_id: Id | None
    invoice_id: Id | None
    title: Title
    due_date: Day | None
    done: bool


# The lists of a snapshot in contract order, with the model of one record.
LISTS: dict[str, type[Record]] = {
    "users": UserIn,
    "accounts": AccountIn,
    "contacts": ContactIn,
    "deals": DealIn,
    "invoices": InvoiceIn,
    "payments": PaymentIn,
    "activities": ActivityIn,
    "tasks": TaskIn,
}
KEYED_BY_INVOICE = ("payments", "activities")


class Snapshot(Record):
    """A whole snapshot; lists left out are empty."""

    workspace: WorkspaceIn
    users: list[UserIn] = []
    accounts: list[AccountIn] = []
    contacts: list[ContactIn] = []
    deals: list[DealIn] = []
    invoices: list[InvoiceIn] = []
    payments: list[PaymentIn] = []
    activities: list[ActivityIn] = []
    tasks: list[TaskIn] = []


# ---- problems ----

_RANK = {name: rank for rank, name in enumerate(("snapshot", "workspace", *LISTS))}


@dataclass(frozen=True)
class Where:
    """One record of the file: where its problems sort, and how they name it."""

    list_name: str
    index: int
    label: str


def where(list_name: str, index: int, raw: object) -> Where:
    key = "invoice_id" if list_name in KEYED_BY_INVOICE else "id"
    ref = raw.get(key) if isinstance(raw, dict) else None
    shown = ref if isinstance(ref, str) else "?"
    return Where(list_name, index, f"{list_name}[{index}] ({key}={shown})")


SNAPSHOT = Where("snapshot", -1, "snapshot")
WORKSPACE = Where("workspace", -1, "workspace")


@dataclass
class Problems:
    """Problem lines, kept in file order whatever order the checks ran in."""

    _items: list[tuple[int, int, int, str]] = field(default_factory=list)

    def add(self, at: Where, field_path: str, reason: str) -> None:
        line = f"{at.label}: {field_path}: {reason}"
        self._items.append((_RANK[at.list_name], at.index, len(self._items), line))

    def lines(self) -> list[str]:
        return [line for *_, line in sorted(self._items)]

    def __bool__(self) -> bool:
        return bool(self._items)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":  # a bad dict key: the reason says what is wrong with it
            path += f".{part}" if path else part
    return path or "record"


_REASONS = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "string_too_short": "must not be empty",
}


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _REASONS:
        return _REASONS[kind]
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    return str(error["msg"])


def report(problems: Problems, at: Where, error: ValidationError) -> set[str]:
    """Add one line per error; return the top-level fields that were bad."""
    bad: set[str] = set()
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        problems.add(at, _field_path(loc), _reason(item))
        if loc:
            bad.add(str(loc[0]))
    return bad


# ---- checking a whole file, field by field ----


@dataclass
class Checked:
    """A snapshot checked field by field.

    `raw` keeps every list as given (records that are not objects included) so that the
    cross-record checks can see ids and references of records that failed their own checks;
    `records` holds the parsed record at the same index, or None; `bad_fields` the fields that
    already have a problem, so that a reference check does not report them twice.
    """

    problems: Problems
    workspace: WorkspaceIn | None
    raw: dict[str, list[Any]]
    records: dict[str, list[Record | None]]
    bad_fields: dict[tuple[str, int], set[str]]

    def valid(self, list_name: str) -> list[Any]:
        return [r for r in self.records[list_name] if r is not None]


def check_fields(data: object) -> Checked:
    problems = Problems()
    checked = Checked(problems, None, {n: [] for n in LISTS}, {n: [] for n in LISTS}, {})
    if not isinstance(data, dict):
        problems.add(SNAPSHOT, "record", "the top level must be a JSON object")
        return checked
    for key in data:
        if key != "workspace" and key not in LISTS:
            problems.add(SNAPSHOT, str(key), "unknown key")
    _check_workspace(checked, data)
    for list_name, model in LISTS.items():
        raw = data.get(list_name, [])
        if not isinstance(raw, list):
            problems.add(SNAPSHOT, list_name, "must be a list")
            continue
        checked.raw[list_name] = raw
        checked.records[list_name] = [_check_record(checked, list_name, i, r, model) for i, r in enumerate(raw)]
    return checked


def _check_workspace(checked: Checked, data: dict[str, Any]) -> None:
    if "workspace" not in data:
        checked.problems.add(SNAPSHOT, "workspace", "required key is missing")
        return
    try:
        checked.workspace = WorkspaceIn.model_validate(data["workspace"])
    except ValidationError as error:
        report(checked.problems, WORKSPACE, error)


def _check_record(checked: Checked, list_name: str, index: int, raw: object, model: type[Record]) -> Record | None:
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        at = where(list_name, index, raw)
        checked.bad_fields[(list_name, index)] = report(checked.problems, at, error)
        return None


__all__ = [
    "CENT",
    "LISTS",
    "SNAPSHOT",
    "WORKSPACE",
    "AccountIn",
    "ActivityIn",
    "Checked",
    "ContactIn",
    "DealIn",
    "InvoiceIn",
    "PaymentIn",
    "Problems",
    "Record",
    "Snapshot",
    "TaskIn",
    "UserIn",
    "Where",
    "WorkspaceIn",
    "amount_text",
    "check_fields",
    "day_text",
    "moment_text",
    "parse_amount",
    "parse_currency",
    "parse_day",
    "parse_email",
    "parse_moment",
    "parse_rate",
    "parse_timezone",
    "rate_text",
    "report",
    "where",
]
