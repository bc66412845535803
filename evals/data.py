"""A case's workspace: compact scenarios expanded to the import format of ARCHITECTURE.md section 5, and databases.

Compact form (everything else is the import format as is):
- any date may be relative to the case's date: `today`, `today-38`, `today+3`; a moment `today-2` is noon UTC
  of that day, `today-2@09:30` that time UTC; YAML dates and numbers are turned into the contract's strings;
- defaults: workspace `Eval Workspace` in USD; users are reps in UTC; accounts are `standard`; contacts are
  `billing` and reachable; an invoice's `id` is its number, its `contact_ids` all of its account's contacts,
  its `issue_date` 30 days before its due date, its status `sent`, `status_updated_at` 09:00 UTC of its issue
  date; the currency is the workspace's base currency;
- shorthands: an invoice's `paid: "400.00"` adds a payment 5 days after its issue date; payments, activities
  and tasks may name their invoice by `invoice: INV-1042`; an activity's `by` defaults to the account owner.

Overrides merge into the base by id (an invoice also by number): fields of a matching record are replaced,
other records are added; payments and activities are added. `remove` drops records by id.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select

from evals.cases import SCENARIOS_DIR, Case, DataSpec
from lumo.crm.exchange import export_snapshot, import_snapshot
from lumo.db.migrate import upgrade
from lumo.db.models import Base
from lumo.db.session import make_engine, make_sessionmaker
from lumo.demo.seed import seed_demo

LISTS = ("users", "accounts", "contacts", "deals", "invoices", "payments", "activities", "tasks")
KEYLESS = ("payments", "activities")
RELATIVE = re.compile(r"^today(?:([+-])(\d+))?(?:@(\d{1,2}):(\d{2}))?$")
CENT = Decimal("0.01")


class DataError(ValueError):
    pass


# --- dates and money ---------------------------------------------------------------------------------


def day(value: Any, today: dt.date) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    m = RELATIVE.match(str(value).strip())
    if m and m.group(3) is None:
        return (today + _offset(m)).isoformat()
    return str(value)


def moment(value: Any, today: dt.date) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(12), dt.UTC).isoformat()
    text = str(value).strip()
    m = RELATIVE.match(text)
    if m:
        hour, minute = (int(m.group(3)), int(m.group(4))) if m.group(3) else (12, 0)
        return dt.datetime.combine(today + _offset(m), dt.time(hour, minute), dt.UTC).isoformat()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return f"{text}T12:00:00+00:00"
    return text


def _offset(m: re.Match[str]) -> dt.timedelta:
    if not m.group(1):
        return dt.timedelta(0)
    days = int(m.group(2))
    return dt.timedelta(days=days if m.group(1) == "+" else -days)


def money(value: Any) -> str:
    if isinstance(value, bool):
        raise DataError(f"not an amount: {value!r}")
    if isinstance(value, int | float | Decimal):
        return str(Decimal(str(value)).quantize(CENT))
    return str(value)


# --- scenarios and overrides -------------------------------------------------------------------------


def load_scenario(name: str) -> dict[str, Any]:
    path = SCENARIOS_DIR / f"{name}.yaml"
    if not path.exists():
        raise DataError(f"unknown scenario {name!r}: no {path}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a scenario is a mapping of lists")
    return raw


def _record_key(list_name: str, record: dict[str, Any]) -> str | None:
    if list_name in KEYLESS:
        return None
    if list_name == "invoices":
        return str(record.get("id") or record.get("number"))
    return str(record["id"]) if "id" in record else None


def merge(base: dict[str, Any], overrides: dict[str, Any], remove: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Overrides merged into a copy of base (see the module docstring)."""
    out = copy.deepcopy(base)
    unknown = set(overrides) - {"workspace", *LISTS}
    if unknown:
        raise DataError(f"unknown override lists {sorted(unknown)}")
    if "workspace" in overrides:
        workspace = dict(out.get("workspace") or {})
        for key, value in overrides["workspace"].items():
            if key == "fx_rates":
                workspace["fx_rates"] = {**(workspace.get("fx_rates") or {}), **value}
            else:
                workspace[key] = value
        out["workspace"] = workspace
    for list_name in LISTS:
        records = list(out.get(list_name) or [])
        for record in overrides.get(list_name) or []:
            key = _record_key(list_name, record)
            index = next((i for i, r in enumerate(records) if key is not None and _matches(list_name, r, key)), None)
            if index is None:
                records.append(copy.deepcopy(record))
            else:
                records[index] = {**records[index], **copy.deepcopy(record)}
        out[list_name] = records
    for list_name, ids in (remove or {}).items():
        if list_name not in LISTS:
            raise DataError(f"cannot remove from unknown list {list_name!r}")
        wanted = set(ids)
        out[list_name] = [
            r for r in out.get(list_name) or [] if not (_record_key(list_name, r) in wanted or r.get("number") in wanted)
        ]
    return out


def _matches(list_name: str, record: dict[str, Any], key: str) -> bool:
    if list_name == "invoices":
        return key in (record.get("id"), record.get("number"))
    return record.get("id") == key


# --- expansion to the import format ------------------------------------------------------------------


def expand(raw: dict[str, Any], today: dt.date) -> dict[str, Any]:
    """The import-format snapshot of a compact scenario (idempotent on a full snapshot)."""
    ws = raw.get("workspace") or {}
    workspace = {
        "name": ws.get("name", "Eval Workspace"),
        "base_currency": ws.get("base_currency", "USD"),
        "fx_rates": {code: str(rate) for code, rate in (ws.get("fx_rates") or {}).items()},
    }
    base = workspace["base_currency"]
    users = [_user(u) for u in raw.get("users") or []]
    accounts = [_account(a, today) for a in raw.get("accounts") or []]
    owners = {a["id"]: a["owner_id"] for a in accounts}
    contacts = [_contact(c) for c in raw.get("contacts") or []]
    by_account: dict[str, list[str]] = {}
    for c in contacts:
        by_account.setdefault(c["account_id"], []).append(c["id"])
    deals = [{**d, "amount": money(d["amount"]), "currency": d.get("currency", base)} for d in raw.get("deals") or []]
    invoices, payments = [], []
    for inv in raw.get("invoices") or []:
        record, paid = _invoice(inv, today, base, by_account)
        invoices.append(record)
        payments.extend(paid)
    numbers = {i["number"]: i["id"] for i in invoices}
    accounts_of = {i["id"]: i["account_id"] for i in invoices}

    def invoice_id(record: dict[str, Any]) -> str:
        if "invoice" in record:
            number = record["invoice"]
            if number not in numbers:
                raise DataError(f"unknown invoice {number!r} in {record}")
            return numbers[number]
        return str(record["invoice_id"])

    for p in raw.get("payments") or []:
        payments.append({"invoice_id": invoice_id(p), "amount": money(p["amount"]), "paid_at": moment(p["paid_at"], today)})
    activities = []
    for a in raw.get("activities") or []:
        iid = invoice_id(a)
        activities.append(
            {
                "invoice_id": iid,
                "kind": a.get("kind", "note"),
                "at": moment(a["at"], today),
                "by": a["by"] if "by" in a else owners.get(accounts_of.get(iid, ""), None),
                "text": a.get("text", ""),
            }
        )
    tasks = []
    for t in raw.get("tasks") or []:
        iid = invoice_id(t) if ("invoice" in t or t.get("invoice_id")) else None
        account_id = t.get("account_id") or (accounts_of.get(iid) if iid else None)
        tasks.append(
            {
                "id": t["id"],
                "owner_id": t.get("owner_id") or owners.get(account_id or "", None),
                "account_id": account_id,
                "invoice_id": iid,
                "title": t["title"],
                "due_date": day(t.get("due_date"), today),
                "done": bool(t.get("done", False)),
            }
        )
    return {
        "workspace": workspace,
        "users": users,
        "accounts": accounts,
        "contacts": contacts,
        "deals": deals,
        "invoices": invoices,
        "payments": payments,
        "activities": activities,
        "tasks": tasks,
    }


def _user(u: dict[str, Any]) -> dict[str, Any]:
    email = u["email"]
    name = u.get("name") or email.split("@")[0].replace(".", " ").title()
    out = {
        "id": u["id"],
        "email": email,
        "name": name,
        "role": u.get("role", "rep"),
        "manager_id": u.get("manager_id"),
        "timezone": u.get("timezone", "UTC"),
    }
    if u.get("slack_user_id"):
        out["slack_user_id"] = u["slack_user_id"]
    return out


def _account(a: dict[str, Any], today: dt.date) -> dict[str, Any]:
    return {
        "id": a["id"],
        "name": a["name"],
        "owner_id": a["owner_id"],
        "tier": a.get("tier", "standard"),
        "renewal_date": day(a.get("renewal_date"), today),
    }


def _contact(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": c["id"],
        "account_id": c["account_id"],
        "name": c["name"],
        "email": c["email"],
        "role": c.get("role", "billing"),
        "do_not_contact": bool(c.get("do_not_contact", False)),
    }


def _invoice(
    inv: dict[str, Any], today: dt.date, base: str, by_account: dict[str, list[str]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    number = inv["number"]
    due = dt.date.fromisoformat(day(inv["due_date"], today))  # type: ignore[arg-type]
    issue = day(inv.get("issue_date"), today) or (due - dt.timedelta(days=30)).isoformat()
    record = {
        "id": inv.get("id") or number,
        "number": number,
        "account_id": inv["account_id"],
        "deal_id": inv.get("deal_id"),
        "contact_ids": list(inv["contact_ids"]) if "contact_ids" in inv else list(by_account.get(inv["account_id"], [])),
        "issue_date": issue,
        "due_date": due.isoformat(),
        "amount": money(inv["amount"]),
        "currency": inv.get("currency", base),
        "status": inv.get("status", "sent"),
        "status_updated_at": moment(inv.get("status_updated_at"), today) or f"{issue}T09:00:00+00:00",
        "promise_to_pay_date": day(inv.get("promise_to_pay_date"), today),
        "dispute_reason": inv.get("dispute_reason"),
        "payment_url": inv.get("payment_url"),
    }
    payments = []
    if inv.get("paid") is not None:
        paid_at = dt.datetime.combine(dt.date.fromisoformat(issue) + dt.timedelta(days=5), dt.time(10), dt.UTC)
        payments.append({"invoice_id": record["id"], "amount": money(inv["paid"]), "paid_at": paid_at.isoformat()})
    return record, payments


# --- databases ---------------------------------------------------------------------------------------


class Databases:
    """One migrated template database, copied for every case run; demo seeds cached by their parameters."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.template = root / "template.db"
        upgrade(f"sqlite:///{self.template}")
        self._demo: dict[tuple[int, int, int, dt.date], dict[str, Any]] = {}
        self._count = 0

    def fresh(self, label: str) -> tuple[str, Path]:
        self._count += 1
        path = self.root / f"{self._count:04d}-{label[:40]}.db"
        shutil.copy(self.template, path)
        return f"sqlite:///{path}", path

    def demo(self, invoices: int, reps: int, seed: int, today: dt.date) -> dict[str, Any]:
        key = (invoices, reps, seed, today)
        if key not in self._demo:
            url, path = self.fresh("demo-seed")
            engine = make_engine(url)
            try:
                seed_demo(engine, invoices=invoices, reps=reps, seed=seed, today=today)
                with make_sessionmaker(engine)() as session:
                    self._demo[key] = export_snapshot(session)
            finally:
                engine.dispose()
                remove_db(path)
        return copy.deepcopy(self._demo[key])

    def snapshot_for(self, case: Case) -> dict[str, Any]:
        return case_snapshot(case.data, case.date, self)


def case_snapshot(spec: DataSpec, today: dt.date, dbs: Databases | None = None) -> dict[str, Any]:
    """The case's data in the import format: its source, the overrides merged, compact forms expanded."""
    if spec.scenario is not None:
        base = load_scenario(spec.scenario)
    elif spec.snapshot is not None:
        base = spec.snapshot
    else:
        if dbs is None:
            raise DataError("a demo seed needs a database to seed")
        assert spec.demo is not None
        base = dbs.demo(spec.demo.invoices, spec.demo.reps, spec.demo.seed, today)
    return expand(merge(base, spec.overrides, spec.remove), today)


def load_into(engine: Engine, snapshot: dict[str, Any]) -> None:
    with make_sessionmaker(engine)() as session:
        import_snapshot(session, snapshot)
        session.commit()


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    checkpoints = path.with_name(f"{path.stem}.checkpoints{path.suffix}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{checkpoints}{suffix}").unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as plain JSON values, in primary-key order."""
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            keys = list(table.primary_key.columns)
            rows = conn.execute(select(table).order_by(*keys)).mappings().all()
            out[table.name] = [{k: _plain(v) for k, v in row.items()} for row in rows]
    return out


def primary_keys() -> dict[str, list[str]]:
    return {t.name: [c.name for c in t.primary_key.columns] for t in Base.metadata.sorted_tables}
