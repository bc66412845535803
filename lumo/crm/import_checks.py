"""Import checks beyond one record's fields: the file's shape, links across owners, manager cycles.

- Shape: a snapshot is a few levels deep; deeper nesting (a crafted file) and NUL characters
  (which PostgreSQL cannot store in text) are refused with one line before anything else runs.
- Owners: a task links only to accounts and invoices its owner sees (their own book, a manager's
  team, an admin's all), and an invoice's contacts belong to accounts of the invoice's owner;
  otherwise a scoped reader would see another owner's data through the link.
- Managers: following manager_id never comes back to where it started.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from lumo.crm.snapshot import LISTS, SNAPSHOT, WORKSPACE, Checked, Where, where
from lumo.db.models import Account, Contact, Invoice, User

# top object > list > record > a record's list or map (contact_ids, fx_rates) > its values
MAX_DEPTH = 5
MAX_NUL_LINES = 20
CHUNK = 900


# ---- shape ----


def shape_problems(data: object) -> list[str]:
    """Lines for nesting deeper than a snapshot has, and for NUL characters in keys or values."""
    lines: list[str] = []
    stack: list[tuple[object, tuple[str | int, ...]]] = [(data, ())]
    while stack:  # a loop, not recursion: the depth is what is being checked
        node, path = stack.pop()
        if len(path) >= MAX_DEPTH:
            return [f"{_label(data, path)}: nested deeper than a snapshot can be ({MAX_DEPTH} levels)"]
        items: Iterable[tuple[str | int, object]]
        if isinstance(node, dict):
            items = node.items()
            lines += [f"{_label(data, (*path, k))}: the key contains a NUL character" for k in node if "\x00" in k]
        else:
            assert isinstance(node, list)
            items = enumerate(node)
        for key, value in items:
            if type(value) is str:  # the common case, kept cheap: a large file has millions of these
                if "\x00" in value:
                    lines.append(f"{_label(data, (*path, key))}: contains a NUL character, which cannot be stored")
            elif isinstance(value, dict | list):
                stack.append((value, (*path, key)))
    ordered = sorted(set(lines))
    more = [f"snapshot: and {len(ordered) - MAX_NUL_LINES} more NUL characters"] if len(ordered) > MAX_NUL_LINES else []
    return ordered[:MAX_NUL_LINES] + more


def _label(data: object, path: tuple[str | int, ...]) -> str:
    """`contacts[3] (id=c3): name` for a path into the file, in the wording of the other problem lines."""
    at: Where = SNAPSHOT
    rest = path
    if path and path[0] == "workspace":
        at, rest = WORKSPACE, path[1:]
    elif len(path) >= 2 and path[0] in LISTS and isinstance(path[1], int) and isinstance(data, dict):
        records = data.get(str(path[0]))
        record = records[path[1]] if isinstance(records, list) else None
        at, rest = where(str(path[0]), path[1], record), path[2:]
    shown = "".join(f"[{p}]" if isinstance(p, int) else f".{p[:60]!r}" if "\x00" in p else f".{p[:60]}" for p in rest)
    return f"{at.label}: {shown.lstrip('.') or 'record'}"


# ---- owners and managers ----


@dataclass
class _People:
    role: dict[str, str]
    manager: dict[str, str | None]

    def sees(self, viewer: str, owner: str) -> bool:
        """Whether `viewer`'s scope (lumo.crm.scope) holds the accounts of `owner`."""
        role = self.role.get(viewer)
        return role == "admin" or viewer == owner or (role == "manager" and self.manager.get(owner) == viewer)


def check_links(session: Session, checked: Checked) -> None:
    """Add a problem for each cross-owner link and each manager cycle."""
    people = _people(session, checked)
    _check_manager_cycles(checked, people)
    contact_ids = {c for _, raw in _records(checked, "invoices") for c in _strings(_list(raw.get("contact_ids")))}
    contact_account = _file_or_db(session, checked, "contacts", "account_id", Contact.id, Contact.account_id, contact_ids)
    task_invoices = _wanted(checked, "tasks", "invoice_id")
    invoice_account = _file_or_db(session, checked, "invoices", "account_id", Invoice.id, Invoice.account_id, task_invoices)
    accounts = _wanted(checked, "tasks", "account_id") | set(contact_account.values()) | set(invoice_account.values())
    account_owner = _file_or_db(session, checked, "accounts", "owner_id", Account.id, Account.owner_id, accounts)
    _check_task_links(checked, people, account_owner, invoice_account)
    _check_invoice_contacts(checked, account_owner, contact_account, invoice_account)


def _check_task_links(checked: Checked, people: _People, account_owner: dict[str, str], invoice_account: dict[str, str]) -> None:
    for index, raw in _records(checked, "tasks"):
        owner = raw.get("owner_id")
        if not isinstance(owner, str) or owner not in people.role:
            continue
        at = where("tasks", index, raw)
        account_id, invoice_id = raw.get("account_id"), raw.get("invoice_id")
        if isinstance(account_id, str) and (holder := account_owner.get(account_id)) and not people.sees(owner, holder):
            checked.problems.add(at, "account_id", _unseen("account", account_id, holder, owner))
        if not isinstance(invoice_id, str) or (of := invoice_account.get(invoice_id)) is None:
            continue
        if isinstance(account_id, str) and of != account_id:
            checked.problems.add(at, "invoice_id", f'invoice "{invoice_id}" belongs to account "{of}", not "{account_id}"')
        elif (holder := account_owner.get(of)) and not people.sees(owner, holder):
            checked.problems.add(at, "invoice_id", _unseen("invoice", invoice_id, holder, owner))


def _unseen(kind: str, record_id: str, holder: str, owner: str) -> str:
    return f'{kind} "{record_id}" is in the book of user "{holder}", outside what the task owner "{owner}" sees'


def _check_invoice_contacts(
    checked: Checked, account_owner: dict[str, str], contact_account: dict[str, str], invoice_account: dict[str, str]
) -> None:
    for index, raw in _records(checked, "invoices"):
        account_id = invoice_account.get(raw["id"]) if isinstance(raw.get("id"), str) else None
        owner = account_owner.get(account_id) if account_id else None
        if owner is None:
            continue
        for position, contact_id in enumerate(_list(raw.get("contact_ids"))):
            of = contact_account.get(contact_id) if isinstance(contact_id, str) else None
            holder = account_owner.get(of) if of else None
            if holder is not None and holder != owner:
                reason = f'contact "{contact_id}" is on account "{of}" of another owner ("{holder}"), not of "{owner}"'
                checked.problems.add(where("invoices", index, raw), f"contact_ids[{position}]", reason)


def _check_manager_cycles(checked: Checked, people: _People) -> None:
    reported: set[str] = set()
    for index, raw in _records(checked, "users"):
        start = raw.get("id")
        if not isinstance(start, str) or start in reported:
            continue
        chain, seen = [start], {start}
        while (up := people.manager.get(chain[-1])) is not None and up not in seen:
            chain.append(up)
            seen.add(up)
        if up is None or up != start:
            continue  # no cycle through this user (a cycle further up is reported at its own members)
        reported |= seen
        shown = " -> ".join([*chain, start])
        checked.problems.add(where("users", index, raw), "manager_id", f"managers form a cycle: {shown}")


def _people(session: Session, checked: Checked) -> _People:
    rows = session.execute(select(User.id, User.role, User.manager_id)).all()
    role = {uid: r for uid, r, _ in rows}
    manager = {uid: m for uid, _, m in rows}
    for _, raw in _records(checked, "users"):
        uid = raw.get("id")
        if isinstance(uid, str):
            role[uid] = raw["role"] if isinstance(raw.get("role"), str) else role.get(uid, "rep")
            manager[uid] = raw.get("manager_id") if isinstance(raw.get("manager_id"), str) else None
    return _People(role, manager)


def _wanted(checked: Checked, list_name: str, key: str) -> set[str]:
    return {v for _, raw in _records(checked, list_name) if isinstance(v := raw.get(key), str)}


def _file_or_db(
    session: Session,
    checked: Checked,
    list_name: str,
    key: str,
    id_column: InstrumentedAttribute[str],
    value_column: InstrumentedAttribute[str],
    wanted: set[str],
) -> dict[str, str]:
    """id -> `key` for the wanted ids: the file's value when the file has the record, else the database's."""
    found = {
        rid: value
        for _, raw in _records(checked, list_name)
        if isinstance(rid := raw.get("id"), str) and isinstance(value := raw.get(key), str)
    }
    return found | _db_values(session, id_column, value_column, wanted - set(found))


def _db_values(
    session: Session, id_column: InstrumentedAttribute[str], value_column: InstrumentedAttribute[str], ids: Iterable[str]
) -> dict[str, str]:
    ordered = sorted(set(ids))
    out: dict[str, str] = {}
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        out.update(session.execute(select(id_column, value_column).where(id_column.in_(chunk))).all())
    return out


def _records(checked: Checked, list_name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    return ((i, r) for i, r in enumerate(checked.raw[list_name]) if isinstance(r, dict))


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(values: Iterable[object]) -> Iterator[str]:
    return (v for v in values if isinstance(v, str))
