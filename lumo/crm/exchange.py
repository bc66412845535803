"""Import and export of workspace snapshots (ARCHITECTURE.md section 5).

An import checks everything first — every field, every reference (to the file and to the
database), unique values, exchange-rate coverage — and writes nothing if anything is wrong.
Then it upserts by id in one transaction (the caller commits) and never deletes. Payments and
activities have no ids: they are matched on their natural keys, so a re-import adds nothing twice.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from sqlalchemy import ColumnElement, String, any_, delete, insert, literal, select, union, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from lumo.crm.errors import ImportRejected, InvalidInput, LumoError
from lumo.crm.import_checks import check_links, shape_problems
from lumo.crm.ledger import recompute_derived
from lumo.crm.lifecycle import InvoiceStatus
from lumo.crm.snapshot import (
    CENT,
    LISTS,
    WORKSPACE,
    AccountIn,
    ActivityIn,
    Checked,
    ContactIn,
    DealIn,
    InvoiceIn,
    PaymentIn,
    TaskIn,
    UserIn,
    WorkspaceIn,
    amount_text,
    check_fields,
    day_text,
    moment_text,
    rate_text,
    where,
)
from lumo.db.models import (
    Account,
    Activity,
    Base,
    Contact,
    Deal,
    FxRate,
    Invoice,
    InvoiceContact,
    Payment,
    Task,
    User,
    Workspace,
)

# Ids per IN list on SQLite: under any version's bound-parameter limit.
CHUNK = 900

# (list, field, list it points to); `contact_ids` is checked on its own, being a list.
REFERENCES = (
    ("users", "manager_id", "users"),
    ("accounts", "owner_id", "users"),
    ("contacts", "account_id", "accounts"),
    ("deals", "account_id", "accounts"),
    ("invoices", "account_id", "accounts"),
    ("invoices", "deal_id", "deals"),
    ("payments", "invoice_id", "invoices"),
    ("activities", "invoice_id", "invoices"),
    ("activities", "by", "users"),
    ("tasks", "owner_id", "users"),
    ("tasks", "account_id", "accounts"),
    ("tasks", "invoice_id", "invoices"),
)
SINGULAR = {"users": "user", "accounts": "account", "contacts": "contact", "deals": "deal", "invoices": "invoice"}
ID_COLUMNS: dict[str, InstrumentedAttribute[str]] = {
    "users": User.id,
    "accounts": Account.id,
    "contacts": Contact.id,
    "deals": Deal.id,
    "invoices": Invoice.id,
    "tasks": Task.id,
}


# ---- summary ----


@dataclass
class ListCount:
    created: int = 0
    updated: int = 0
    # Payments and activities already in the database (matched on their natural key).
    skipped: int = 0


def _zero_counts() -> dict[str, ListCount]:
    return {name: ListCount() for name in ("workspace", "fx_rates", *LISTS)}


@dataclass
class ImportSummary:
    """Records created and updated, per list of the snapshot (plus the workspace and its rates)."""

    counts: dict[str, ListCount] = field(default_factory=_zero_counts)

    def __getitem__(self, list_name: str) -> ListCount:
        return self.counts.setdefault(list_name, ListCount())

    def __str__(self) -> str:
        parts = []
        for name, c in self.counts.items():
            skipped = f", {c.skipped} already there" if c.skipped else ""
            parts.append(f"{name}: {c.created} created, {c.updated} updated{skipped}")
        return "; ".join(parts)


# ---- reading a file ----


def load_file(path: str | Path) -> dict[str, Any]:
    """The JSON object in `path`; a file that is not one is rejected with one line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRejected([f"{path}: not UTF-8 text"]) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        line = f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise ImportRejected([line]) from None
    except DuplicateKey as exc:
        raise ImportRejected([f"{path}: {exc}"]) from None
    except RecursionError:
        raise ImportRejected([f"{path}: nested too deeply to be a snapshot"]) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ImportRejected([f"{path}: invalid JSON: {exc}".splitlines()[0]]) from None
    if not isinstance(data, dict):
        raise ImportRejected([f"{path}: the top level must be a JSON object"])
    return data


class DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: with a repeated key, which value counts is not obvious."""
    data = dict(pairs)
    if len(data) != len(pairs):
        key = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        record = f" (id={data['id']})" if isinstance(data.get("id"), str) else ""
        raise DuplicateKey(f'duplicate key "{key}" in one object{record}: each key may appear once')
    return data


# ---- import ----


def import_snapshot(session: Session, data: dict[str, Any]) -> ImportSummary:
    """Check `data` whole, then upsert it; raises ImportRejected (writing nothing) on any problem."""
    if shape := shape_problems(data):
        raise ImportRejected(shape)
    checked = check_fields(data)
    existing = _load_existing(session, checked)
    _check_references(checked, existing)
    check_links(session, checked)
    _check_unique_values(checked, existing)
    _check_fx_coverage(checked, existing)
    if checked.problems or checked.workspace is None:
        raise ImportRejected(checked.problems.lines())
    summary = _write(session, checked.workspace, checked, existing)
    session.flush()
    # Bulk statements bypass the identity map: make objects the caller holds reload.
    session.expire_all()
    return summary


@dataclass
class Existing:
    """What the database already holds, as far as this file is concerned."""

    ids: dict[str, set[str]]
    fx_currencies: set[str]
    currencies_in_use: set[str]
    users: dict[str, tuple[str, str | None]]  # id -> (email, slack_user_id): the table is small
    invoice_numbers: dict[str, str]  # id -> number, for invoices of the file or holding its numbers


def _load_existing(session: Session, checked: Checked) -> Existing:
    wanted: dict[str, set[str]] = {name: set(_ids(checked.raw[name])) for name in ID_COLUMNS}
    for list_name, key, target in REFERENCES:
        wanted[target].update(_strings(r.get(key) for r in _dicts(checked.raw[list_name])))
    for invoice in _dicts(checked.raw["invoices"]):
        ids = invoice.get("contact_ids")
        if isinstance(ids, list):
            wanted["contacts"].update(_strings(ids))
    # Users are few (reps of one workspace) and all are needed for the email check: load them whole.
    rows = session.execute(select(User.id, User.email, User.slack_user_id))
    users = {user_id: (email, slack_user_id) for user_id, email, slack_user_id in rows}
    ids = {name: _present(session, column, wanted[name]) for name, column in ID_COLUMNS.items() if name != "users"}
    ids["users"] = set(users)
    numbers = set(_strings(r.get("number") for r in _dicts(checked.raw["invoices"])))
    invoice_numbers = _invoice_numbers(session, ids["invoices"], numbers)
    in_use = union(select(Invoice.currency).distinct(), select(Deal.currency).distinct())
    return Existing(
        ids=ids,
        fx_currencies=set(session.scalars(select(FxRate.currency))),
        currencies_in_use=set(session.scalars(in_use)),
        users=users,
        invoice_numbers=invoice_numbers,
    )


def _invoice_numbers(session: Session, invoice_ids: set[str], numbers: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for column, values in ((Invoice.id, invoice_ids), (Invoice.number, numbers)):
        for clause in _one_of(session, column, values):
            found.update(session.execute(select(Invoice.id, Invoice.number).where(clause)).all())
    return found


def _check_references(checked: Checked, existing: Existing) -> None:
    known = {name: set(_ids(checked.raw[name])) | existing.ids[name] for name in ID_COLUMNS}
    for list_name, key, target in REFERENCES:
        for index, raw in _records(checked, list_name):
            value = raw.get(key)
            if isinstance(value, str) and value not in known[target] and _unreported(checked, list_name, index, key):
                checked.problems.add(where(list_name, index, raw), key, _unknown(target, value))
    for index, raw in _records(checked, "invoices"):
        contact_ids = raw.get("contact_ids")
        if not isinstance(contact_ids, list) or not _unreported(checked, "invoices", index, "contact_ids"):
            continue
        for position, contact_id in enumerate(contact_ids):
            if isinstance(contact_id, str) and contact_id not in known["contacts"]:
                at = where("invoices", index, raw)
                checked.problems.add(at, f"contact_ids[{position}]", _unknown("contacts", contact_id))


def _unknown(target: str, value: str) -> str:
    return f'unknown {SINGULAR[target]} "{value}" (neither in the file nor in the database)'


def _check_unique_values(checked: Checked, existing: Existing) -> None:
    for list_name in ID_COLUMNS:
        _check_duplicate_ids(checked, list_name)
    emails: dict[Hashable, set[str]] = {}
    slack_ids: dict[Hashable, set[str]] = {}
    for user_id, (email, slack_user_id) in existing.users.items():
        emails.setdefault(email.casefold(), set()).add(user_id)
        if slack_user_id is not None:
            slack_ids.setdefault(slack_user_id, set()).add(user_id)
    numbers: dict[Hashable, set[str]] = {}
    for invoice_id, number in existing.invoice_numbers.items():
        numbers.setdefault(number, set()).add(invoice_id)
    _check_unique(checked, "users", "email", emails, fold=True)
    _check_unique(checked, "users", "slack_user_id", slack_ids)
    _check_unique(checked, "invoices", "number", numbers)


def _check_duplicate_ids(checked: Checked, list_name: str) -> None:
    first: dict[str, int] = {}
    for index, raw in _records(checked, list_name):
        record_id = raw.get("id")
        if not isinstance(record_id, str):
            continue
        if record_id in first:
            reason = f"duplicate id: also at {list_name}[{first[record_id]}]"
            checked.problems.add(where(list_name, index, raw), "id", reason)
        else:
            first[record_id] = index


def _check_unique(checked: Checked, list_name: str, key: str, in_db: dict[Hashable, set[str]], fold: bool = False) -> None:
    """A value used once: within the file, and against database rows the file does not rewrite."""
    rewritten = set(_ids(checked.raw[list_name]))
    first: dict[Hashable, tuple[int, str]] = {}
    for index, raw in _records(checked, list_name):
        value, record_id = raw.get(key), raw.get("id")
        if not isinstance(value, str) or not isinstance(record_id, str):
            continue
        norm = value.casefold() if fold else value
        holders = sorted(in_db.get(norm, set()) - rewritten - {record_id})
        if norm in first and first[norm][1] != record_id:
            other_index, other_id = first[norm]
            reason = f'"{value}" is also used by {list_name}[{other_index}] (id={other_id})'
        elif holders:
            reason = f'"{value}" is already used by {SINGULAR[list_name]} "{holders[0]}" in the database'
        else:
            first.setdefault(norm, (index, record_id))
            continue
        checked.problems.add(where(list_name, index, raw), key, reason)


def _check_fx_coverage(checked: Checked, existing: Existing) -> None:
    """Every currency in use needs a rate to the base currency, or priorities cannot rank it."""
    if checked.workspace is None:
        return
    base = checked.workspace.base_currency
    rated = set(checked.workspace.fx_rates) | existing.fx_currencies | {base}
    users_of: dict[str, list[str]] = {}
    for list_name in ("deals", "invoices"):
        for index, raw in _records(checked, list_name):
            currency = raw.get("currency")
            bad = not _unreported(checked, list_name, index, "currency")
            if isinstance(currency, str) and currency not in rated and not bad:
                users_of.setdefault(currency, []).append(where(list_name, index, raw).label)
    for currency in sorted(users_of):
        labels = users_of[currency]
        more = f" and {len(labels) - 1} more" if len(labels) > 1 else ""
        checked.problems.add(WORKSPACE, "fx_rates", f"no rate for {currency} to {base}, used by {labels[0]}{more}")
    for currency in sorted(existing.currencies_in_use - rated - set(users_of)):
        checked.problems.add(WORKSPACE, "fx_rates", f"no rate for {currency} to {base}, used by records in the database")


# ---- writing (everything has been checked: these statements are not expected to fail) ----


def _write(session: Session, workspace: WorkspaceIn, checked: Checked, existing: Existing) -> ImportSummary:
    summary = ImportSummary()
    _write_workspace(session, workspace, summary)
    users: list[UserIn] = checked.valid("users")
    invoices: list[InvoiceIn] = checked.valid("invoices")
    _release_unique_values(session, users, invoices, existing)
    _write_users(session, users, existing.ids["users"], summary)
    changed: list[ActivityIn] = []  # status events of the invoices whose status the file changes
    for list_name, model, to_row in (
        ("accounts", Account, _account_row),
        ("contacts", Contact, _contact_row),
        ("deals", Deal, _deal_row),
        ("invoices", Invoice, _invoice_row),
    ):
        rows = [to_row(record) for record in checked.valid(list_name)]
        if list_name == "invoices":
            changed = _status_changes(session, invoices, checked.valid("activities"), existing.ids["invoices"])
        summary.counts[list_name] = _upsert(session, model, rows, existing.ids[list_name])
    _write_invoice_contacts(session, invoices)
    # Only new history changes the derived columns (a new invoice starts at their defaults).
    touched = _write_payments(session, checked.valid("payments"), summary)
    touched |= _write_activities(session, [*checked.valid("activities"), *changed], summary)
    task_rows = [_task_row(t) for t in checked.valid("tasks")]
    summary.counts["tasks"] = _upsert(session, Task, task_rows, existing.ids["tasks"])
    recompute_derived(session, sorted(touched))
    return summary


def _write_workspace(session: Session, workspace: WorkspaceIn, summary: ImportSummary) -> None:
    row = session.get(Workspace, 1)  # one workspace per database
    if row is None:
        session.add(Workspace(id=1, name=workspace.name, base_currency=workspace.base_currency))
        summary["workspace"].created = 1
    else:
        row.name, row.base_currency = workspace.name, workspace.base_currency
        summary["workspace"].updated = 1
    current = {r.currency: r for r in session.scalars(select(FxRate))}
    for currency, rate in sorted(workspace.fx_rates.items()):
        if currency in current:
            current[currency].rate = rate
            summary["fx_rates"].updated += 1
        else:
            session.add(FxRate(currency=currency, rate=rate))
            summary["fx_rates"].created += 1


def _release_unique_values(session: Session, users: Sequence[UserIn], invoices: Sequence[InvoiceIn], existing: Existing) -> None:
    """Park unique values that change, so a swap between two rows cannot collide halfway."""
    user_rows = []
    for user in users:
        if user.id in existing.users and existing.users[user.id] != (user.email, user.slack_user_id):
            user_rows.append({"id": user.id, "email": _parked(), "slack_user_id": None})
    invoice_rows = [
        {"id": i.id, "number": _parked()}
        for i in invoices
        if i.id in existing.invoice_numbers and existing.invoice_numbers[i.id] != i.number
    ]
    for model, rows in ((User, user_rows), (Invoice, invoice_rows)):
        if rows:
            session.execute(update(model), rows)


def _parked() -> str:
    return f"~{uuid.uuid4().hex}"


def _write_users(session: Session, users: Sequence[UserIn], existing: set[str], summary: ImportSummary) -> None:
    # Managers may come later in the list (or be new): link them once every user exists.
    rows = [_user_row(u) | {"manager_id": None} for u in users if u.id not in existing]
    rows += [_user_row(u) for u in users if u.id in existing]
    summary.counts["users"] = _upsert(session, User, rows, existing)
    links = [{"id": u.id, "manager_id": u.manager_id} for u in users if u.id not in existing and u.manager_id]
    if links:
        session.execute(update(User), links)


def _upsert(session: Session, model: type[Base], rows: list[dict[str, Any]], existing: set[str]) -> ListCount:
    new = [row for row in rows if row["id"] not in existing]
    old = [row for row in rows if row["id"] in existing]
    if new:
        session.execute(insert(model), new)
    if old:
        session.execute(update(model), old)
    return ListCount(created=len(new), updated=len(old))


def _user_row(u: UserIn) -> dict[str, Any]:
    return {
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role,
        "manager_id": u.manager_id,
        "timezone": u.timezone,
        "slack_user_id": u.slack_user_id,
    }


def _account_row(a: AccountIn) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "owner_id": a.owner_id, "tier": a.tier, "renewal_date": a.renewal_date}


def _contact_row(c: ContactIn) -> dict[str, Any]:
    return {
        "id": c.id,
        "account_id": c.account_id,
        "name": c.name,
        "email": c.email,
        "role": c.role,
        "do_not_contact": c.do_not_contact,
    }


def _deal_row(d: DealIn) -> dict[str, Any]:
    return {"id": d.id, "account_id": d.account_id, "name": d.name, "stage": d.stage, "amount": d.amount, "currency": d.currency}


def _invoice_row(i: InvoiceIn) -> dict[str, Any]:
    # amount_paid and the last_* moments are derived: recompute_derived sets them afterwards.
    return {
        "id": i.id,
        "number": i.number,
        "account_id": i.account_id,
        "deal_id": i.deal_id,
        "issue_date": i.issue_date,
        "due_date": i.due_date,
        "amount": i.amount,
        "currency": i.currency,
        "status": i.status,
        "status_updated_at": i.status_updated_at,
        "promise_to_pay_date": i.promise_to_pay_date,
        "dispute_reason": i.dispute_reason,
        "payment_url": i.payment_url,
    }


def _task_row(t: TaskIn) -> dict[str, Any]:
    return {
        "id": t.id,
        "owner_id": t.owner_id,
        "account_id": t.account_id,
        "invoice_id": t.invoice_id,
        "title": t.title,
        "due_date": t.due_date,
        "done": t.done,
    }


def _write_invoice_contacts(session: Session, invoices: Sequence[InvoiceIn]) -> None:
    """The file's contact list replaces the invoice's, in the file's order."""
    for clause in _one_of(session, InvoiceContact.invoice_id, {i.id for i in invoices}):
        session.execute(delete(InvoiceContact).where(clause))
    rows = [
        {"invoice_id": i.id, "contact_id": contact_id, "position": position}
        for i in invoices
        for position, contact_id in enumerate(i.contact_ids)
    ]
    if rows:
        session.execute(insert(InvoiceContact), rows)


def _write_payments(session: Session, payments: Sequence[PaymentIn], summary: ImportSummary) -> set[str]:
    columns = (Payment.invoice_id, Payment.amount, Payment.paid_at)
    have = _natural_keys(session, columns, Payment.invoice_id, {p.invoice_id for p in payments}, _payment_key)
    rows = [
        {"invoice_id": p.invoice_id, "amount": p.amount, "paid_at": p.paid_at}
        for p in _new_only(payments, have, summary["payments"], lambda p: (p.invoice_id, p.amount.quantize(CENT), p.paid_at))
    ]
    if rows:
        session.execute(insert(Payment), rows)
    return {row["invoice_id"] for row in rows}


def _status_changes(
    session: Session, invoices: Sequence[InvoiceIn], activities: Sequence[ActivityIn], known: set[str]
) -> list[ActivityIn]:
    """A status event (from, to, by the import) for each known invoice whose status the file changes, unless
    the file brings that event itself: history is never overwritten."""
    ids = [i.id for i in invoices if i.id in known]
    before: dict[str, str] = {}
    for clause in _one_of(session, Invoice.id, set(ids)):
        before.update(session.execute(select(Invoice.id, Invoice.status).where(clause)).all())
    carried = {(a.invoice_id, a.to_status) for a in activities if a.kind == "status_change"}
    return [
        ActivityIn.model_construct(  # built from checked values: no second validation
            invoice_id=i.id,
            kind="status_change",
            at=i.status_updated_at,
            by=None,
            text=f"Status changed by import: {before[i.id]} -> {i.status}",
            from_status=cast(InvoiceStatus, before[i.id]),
            to_status=i.status,
        )
        for i in invoices
        if i.id in before and before[i.id] != i.status and (i.id, i.status) not in carried
    ]


def _write_activities(session: Session, activities: Sequence[ActivityIn], summary: ImportSummary) -> set[str]:
    columns = (Activity.invoice_id, Activity.kind, Activity.at, Activity.by_id, Activity.text)
    have = _natural_keys(session, columns, Activity.invoice_id, {a.invoice_id for a in activities}, _activity_key)
    rows = [
        {
            "invoice_id": a.invoice_id,
            "kind": a.kind,
            "at": a.at,
            "by_id": a.by,
            "text": a.text,
            "from_status": a.from_status,
            "to_status": a.to_status,
        }
        for a in _new_only(activities, have, summary["activities"], lambda a: (a.invoice_id, a.kind, a.at, a.by, a.text))
    ]
    if rows:
        session.execute(insert(Activity), rows)
    return {row["invoice_id"] for row in rows}


def _payment_key(row: Sequence[Any]) -> Hashable:
    invoice_id, amount, paid_at = row
    return (invoice_id, Decimal(str(amount)).quantize(CENT), _utc(paid_at))


def _activity_key(row: Sequence[Any]) -> Hashable:
    invoice_id, kind, at, by_id, text = row
    return (invoice_id, kind, _utc(at), by_id, text or "")


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _natural_keys(session: Session, columns: Sequence[Any], by: Any, invoice_ids: set[str], key: Any) -> Counter[Hashable]:
    have: Counter[Hashable] = Counter()
    for clause in _one_of(session, by, invoice_ids):
        have.update(key(row) for row in session.execute(select(*columns).where(clause)))
    return have


def _new_only(records: Iterable[Any], have: Counter[Hashable], count: ListCount, key: Any) -> Iterator[Any]:
    """Records not yet in the database; as a multiset, so two equal rows in a file stay two."""
    for record in records:
        k = key(record)
        if have[k] > 0:
            have[k] -= 1
            count.skipped += 1
        else:
            count.created += 1
            yield record


# ---- export ----


def export_snapshot(session: Session) -> dict[str, Any]:
    """The whole workspace in the contract's shape; importing it into an empty database and
    exporting again gives the same dict."""
    workspace = session.get(Workspace, 1)
    if workspace is None:
        raise LumoError("the database holds no workspace yet: import a snapshot first")
    rates = sorted(session.execute(select(FxRate.currency, FxRate.rate)))
    return {
        "workspace": {
            "name": workspace.name,
            "base_currency": workspace.base_currency,
            "fx_rates": {currency: rate_text(rate) for currency, rate in rates},
        },
        "users": _export_users(session),
        "accounts": _export_accounts(session),
        "contacts": _export_contacts(session),
        "deals": _export_deals(session),
        "invoices": _export_invoices(session),
        "payments": _export_payments(session),
        "activities": _export_activities(session),
        "tasks": _export_tasks(session),
    }


# Sorting happens in Python: database collations differ, and the output must not.


def _export_users(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(User.id, User.email, User.name, User.role, User.manager_id, User.timezone, User.slack_user_id))
    keys = list(LISTS["users"].model_fields)
    return [dict(zip(keys, row, strict=True)) for row in sorted(rows, key=lambda r: r[0])]


def _export_accounts(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(Account.id, Account.name, Account.owner_id, Account.tier, Account.renewal_date))
    return [
        {"id": r.id, "name": r.name, "owner_id": r.owner_id, "tier": r.tier, "renewal_date": day_text(r.renewal_date)}
        for r in sorted(rows, key=lambda r: r.id)
    ]


def _export_contacts(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Contact.id, Contact.account_id, Contact.name, Contact.email, Contact.role, Contact.do_not_contact)
    )
    keys = list(LISTS["contacts"].model_fields)
    return [dict(zip(keys, row, strict=True)) for row in sorted(rows, key=lambda r: r[0])]


def _export_deals(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(Deal.id, Deal.account_id, Deal.name, Deal.stage, Deal.amount, Deal.currency))
    return [
        {
            "id": r.id,
            "account_id": r.account_id,
            "name": r.name,
            "stage": r.stage,
            "amount": amount_text(r.amount),
            "currency": r.currency,
        }
        for r in sorted(rows, key=lambda r: r.id)
    ]


def _export_invoices(session: Session) -> list[dict[str, Any]]:
    contacts: dict[str, list[tuple[int, str]]] = {}
    links = session.execute(select(InvoiceContact.invoice_id, InvoiceContact.position, InvoiceContact.contact_id))
    for invoice_id, position, contact_id in links:
        contacts.setdefault(invoice_id, []).append((position, contact_id))
    rows = session.execute(
        select(
            Invoice.id,
            Invoice.number,
            Invoice.account_id,
            Invoice.deal_id,
            Invoice.issue_date,
            Invoice.due_date,
            Invoice.amount,
            Invoice.currency,
            Invoice.status,
            Invoice.status_updated_at,
            Invoice.promise_to_pay_date,
            Invoice.dispute_reason,
            Invoice.payment_url,
        )
    )
    return [
        {
            "id": r.id,
            "number": r.number,
            "account_id": r.account_id,
            "deal_id": r.deal_id,
            "contact_ids": [c for _, c in sorted(contacts.get(r.id, []))],
            "issue_date": day_text(r.issue_date),
            "due_date": day_text(r.due_date),
            "amount": amount_text(r.amount),
            "currency": r.currency,
            "status": r.status,
            "status_updated_at": moment_text(r.status_updated_at),
            "promise_to_pay_date": day_text(r.promise_to_pay_date),
            "dispute_reason": r.dispute_reason,
            "payment_url": r.payment_url,
        }
        for r in sorted(rows, key=lambda r: r.id)
    ]


def _export_payments(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(Payment.id, Payment.invoice_id, Payment.amount, Payment.paid_at))
    return [
        {"invoice_id": r.invoice_id, "amount": amount_text(r.amount), "paid_at": moment_text(r.paid_at)}
        for r in sorted(rows, key=lambda r: (r.invoice_id, r.paid_at, r.id))
    ]


def _export_activities(session: Session) -> list[dict[str, Any]]:
    columns = (Activity.id, Activity.invoice_id, Activity.kind, Activity.at, Activity.by_id, Activity.text)
    rows = session.execute(select(*columns, Activity.from_status, Activity.to_status))
    return [
        {
            "invoice_id": r.invoice_id,
            "kind": r.kind,
            "at": moment_text(r.at),
            "by": r.by_id,
            "text": r.text or "",
            "from_status": r.from_status,
            "to_status": r.to_status,
        }
        for r in sorted(rows, key=lambda r: (r.invoice_id, r.at, r.id))
    ]


def _export_tasks(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(Task.id, Task.owner_id, Task.account_id, Task.invoice_id, Task.title, Task.due_date, Task.done))
    return [
        {
            "id": r.id,
            "owner_id": r.owner_id,
            "account_id": r.account_id,
            "invoice_id": r.invoice_id,
            "title": r.title,
            "due_date": day_text(r.due_date),
            "done": r.done,
        }
        for r in sorted(rows, key=lambda r: r.id)
    ]


# ---- helpers ----


def _dicts(raw: Iterable[Any]) -> Iterator[dict[str, Any]]:
    return (r for r in raw if isinstance(r, dict))


def _records(checked: Checked, list_name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    return ((i, r) for i, r in enumerate(checked.raw[list_name]) if isinstance(r, dict))


def _strings(values: Iterable[object]) -> Iterator[str]:
    return (v for v in values if isinstance(v, str))


def _ids(raw: Iterable[Any]) -> Iterator[str]:
    return _strings(r.get("id") for r in _dicts(raw))


def _unreported(checked: Checked, list_name: str, index: int, key: str) -> bool:
    return key not in checked.bad_fields.get((list_name, index), set())


def _one_of(session: Session, column: Any, values: Iterable[str]) -> Iterator[ColumnElement[bool]]:
    """WHERE clauses that together cover `column IN values`.

    PostgreSQL gets one array parameter: a long IN list of separate parameters ends up with a
    slow generic plan once psycopg prepares the repeated statement. SQLite gets chunks under its
    bound-parameter limit.
    """
    ordered = sorted(set(values))
    if not ordered:
        return
    if session.get_bind().dialect.name == "postgresql":
        yield column == any_(literal(ordered, ARRAY(String)))
        return
    for start in range(0, len(ordered), CHUNK):
        yield column.in_(ordered[start : start + CHUNK])


def _present(session: Session, column: InstrumentedAttribute[str], values: set[str]) -> set[str]:
    found: set[str] = set()
    for clause in _one_of(session, column, values):
        found.update(session.scalars(select(column).where(clause)))
    return found
