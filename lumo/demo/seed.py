"""Demo data of any size: realistic, deterministic per seed, bulk-inserted in bounded memory.

Every rep's book opens with one invoice of each scenario (every status, every stale kind, every
aging bucket, a pending promise, a recent contact), so even a tiny seed shows all of
ARCHITECTURE.md section 3; the rest are drawn by weight. Rows are produced account by account by generators and
written with Core `executemany` in batches, so a million invoices never sit in memory at once.
The derived columns (amount_paid, last_activity_at, last_contacted_at) are computed here from the
very payments and activities written, the way `lumo.crm.ledger` would set them.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from faker import Faker
from sqlalchemy import Connection, Engine, Table, func, inspect, select

from lumo.crm.errors import InvalidInput
from lumo.crm.ledger import CONTACT_KINDS
from lumo.db.models import (
    Account,
    Activity,
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

DEMO_REP_ID = "u-rep-0001"
DEMO_REP_EMAIL = "demo@lumenbase.test"
DEMO_REP_NAME = "Dana Reyes"
ADMIN_EMAIL = "admin@lumenbase.test"
BASE_CURRENCY = "USD"
# Units of USD per unit of currency, and how often an account bills in it.
FX_RATES: dict[str, Decimal] = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "CAD": Decimal("0.73"),
    "JPY": Decimal("0.0067"),
    "AUD": Decimal("0.66"),
    "CHF": Decimal("1.13"),
}
CURRENCY_WEIGHTS = {"USD": 55, "EUR": 15, "GBP": 10, "CAD": 8, "JPY": 5, "AUD": 4, "CHF": 3}
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY"})
TIME_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Madrid",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)
REPS_PER_MANAGER = 8
BATCH_INVOICES = 10_000
PAYMENT_TERMS = (15, 30, 30, 30, 45, 60)
DISPUTE_REASONS = (
    "Quantity billed does not match the delivery note",
    "Customer says the services were not delivered in full",
    "Wrong unit price: contract rate not applied",
    "Duplicate of an invoice already paid",
    "PO number missing; AP cannot match the invoice",
    "Discount agreed at renewal not applied",
)
INDUSTRY_WORDS = (
    "Logistics",
    "Analytics",
    "Foods",
    "Systems",
    "Labs",
    "Energy",
    "Health",
    "Media",
    "Robotics",
    "Software",
    "Partners",
    "Freight",
    "Textiles",
    "Pharma",
    "Retail",
    "Capital",
    "Design",
    "Motors",
    "Networks",
    "Solar",
    "Biotech",
    "Consulting",
    "Marine",
    "Aerospace",
    "Studios",
    "Farms",
    "Security",
    "Telecom",
    "Outdoor",
    "Materials",
)
COMPANY_SUFFIXES = ("Inc", "LLC", "Ltd", "GmbH", "Group", "Co", "Corp", "Holdings", "SA", "PLC", "")
CONTACT_ROLES = ("finance", "accounts_payable", "executive", "champion")

# Scenario name -> weight for invoices past each rep's opening set.
SCENARIO_WEIGHTS: dict[str, float] = {
    "paid": 38,
    "sent_current": 8,
    "viewed_current": 5,
    "due_soon": 3,
    "partially_paid_current": 3,
    "overdue_marked": 10,
    "overdue_not_marked": 5,
    "partially_paid_overdue": 3,
    "paid_not_marked": 2,
    "no_recent_activity": 4,
    "promise_pending": 2,
    "promise_broken": 2,
    "disputed_active": 1.5,
    "disputed_stalled": 1.5,
    "draft_fresh": 3,
    "draft_stale": 1.5,
    "void": 2,
    "written_off": 1.5,
    "cooldown": 2,
}
# (scenario, aging bucket index or None): the first invoices of every rep, so each book shows all.
OPENING_SET: tuple[tuple[str, int | None], ...] = (
    ("overdue_marked", 1),
    ("overdue_not_marked", 2),
    ("promise_broken", None),
    ("paid_not_marked", None),
    ("due_soon", None),
    ("no_recent_activity", None),
    ("disputed_stalled", None),
    ("draft_stale", None),
    ("promise_pending", None),
    ("cooldown", 1),
    ("overdue_marked", 2),
    ("overdue_marked", 3),
    ("overdue_marked", 4),
    ("disputed_active", None),
    ("partially_paid_overdue", 3),
    ("sent_current", None),
    ("viewed_current", None),
    ("partially_paid_current", None),
    ("paid", None),
    ("draft_fresh", None),
    ("void", None),
    ("written_off", None),
)
# Days overdue per bucket (1-30, 31-60, 61-90, 90+) and the weights of random draws among them.
BUCKET_DAYS = {1: (1, 30), 2: (31, 60), 3: (61, 90), 4: (91, 300)}
BUCKET_WEIGHTS = (45, 25, 15, 15)


@dataclass(frozen=True)
class SeedSummary:
    users: int
    accounts: int
    contacts: int
    deals: int
    invoices: int
    payments: int
    activities: int
    tasks: int
    demo_rep_id: str
    demo_rep_email: str
    seconds: float


def database_is_empty(engine: Engine) -> bool:
    """True when no workspace, user or invoice exists (or the schema is not there yet)."""
    tables = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        for model in (Workspace, User, Invoice):
            table = cast(Table, model.__table__)
            if table.name in tables and conn.execute(select(func.count()).select_from(table)).scalar():
                return False
    return True


def seed_demo(
    engine: Engine,
    *,
    invoices: int = 2000,
    reps: int = 8,
    seed: int = 7,
    today: dt.date,
    accounts: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedSummary:
    """Fill an empty, migrated database with a demo workspace; `progress` gets invoices written so far.

    `accounts` defaults to one per ten invoices.
    """
    n_accounts = accounts if accounts is not None else max(1, invoices // 10)
    if invoices < 0 or reps < 1 or n_accounts < 1:
        raise InvalidInput("seed needs invoices >= 0, reps >= 1 and accounts >= 1")
    if not database_is_empty(engine):
        raise InvalidInput("the database is not empty: seed only into a fresh database")
    started = time.perf_counter()
    gen = _Generator(random.Random(seed), _faker(seed), today)
    counts = _Counts()
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            _fast_sqlite(conn)
        try:
            users = gen.users(reps)
            _insert(conn, cast(Table, Workspace.__table__), [gen.workspace()])
            _insert(conn, cast(Table, FxRate.__table__), gen.fx_rows())
            _insert(conn, cast(Table, User.__table__), users)
            counts.users = len(users)
            rep_ids = [u["id"] for u in users if u["role"] == "rep"]
            plan = gen.plan_accounts(n_accounts, rep_ids, invoices)
            for batch in _batches(gen.account_rows(plan, rep_ids)):
                _write_batch(conn, batch, counts)
                if progress is not None:
                    progress(counts.invoices)
            _analyze(conn, sqlite)
            conn.commit()
        finally:
            if sqlite:
                # The speed pragmas must not outlive the seed in the pool: drop this connection.
                conn.invalidate()
    return counts.summary(time.perf_counter() - started)


def _faker(seed: int) -> Faker:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    return fake


def _fast_sqlite(conn: Connection) -> None:
    # A seed into a fresh file can be rerun if the machine dies, so durability can wait till the end.
    conn.exec_driver_sql("PRAGMA synchronous=OFF")
    conn.exec_driver_sql("PRAGMA cache_size=-262144")
    conn.exec_driver_sql("PRAGMA temp_store=MEMORY")
    # Rows are generated parent first and checked by tests; per-row FK lookups only slow the load.
    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")


def _analyze(conn: Connection, sqlite: bool) -> None:
    # Planner statistics, so scoped queries use the indexes from the first request on.
    if sqlite:
        conn.commit()
        conn.exec_driver_sql("PRAGMA analysis_limit=2000")
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        conn.exec_driver_sql("ANALYZE")


# ---------------------------------------------------------------------------------------------------
# Batching and writing


TABLE_ORDER: tuple[Table, ...] = tuple(
    cast(Table, m.__table__) for m in (Account, Contact, Deal, Invoice, InvoiceContact, Payment, Activity, Task)
)


@dataclass
class _Batch:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t.name: [] for t in TABLE_ORDER})

    @property
    def invoices(self) -> int:
        return len(self.rows["invoices"])


@dataclass
class _Counts:
    users: int = 0
    accounts: int = 0
    contacts: int = 0
    deals: int = 0
    invoices: int = 0
    payments: int = 0
    activities: int = 0
    tasks: int = 0

    def add(self, batch: _Batch) -> None:
        for name, rows in batch.rows.items():
            if hasattr(self, name):
                setattr(self, name, getattr(self, name) + len(rows))

    def summary(self, seconds: float) -> SeedSummary:
        return SeedSummary(
            users=self.users,
            accounts=self.accounts,
            contacts=self.contacts,
            deals=self.deals,
            invoices=self.invoices,
            payments=self.payments,
            activities=self.activities,
            tasks=self.tasks,
            demo_rep_id=DEMO_REP_ID,
            demo_rep_email=DEMO_REP_EMAIL,
            seconds=round(seconds, 3),
        )


def _batches(rows: Iterator[tuple[str, dict[str, Any]]], size: int = BATCH_INVOICES) -> Iterator[_Batch]:
    """Group (table, row) pairs into batches of about `size` invoices, cut only between accounts."""
    batch = _Batch()
    for table, row in rows:
        if table == "accounts" and batch.invoices >= size:
            yield batch
            batch = _Batch()
        batch.rows[table].append(row)
    if any(batch.rows.values()):
        yield batch


def _write_batch(conn: Connection, batch: _Batch, counts: _Counts) -> None:
    for table in TABLE_ORDER:
        _insert(conn, table, batch.rows[table.name])
    conn.commit()
    counts.add(batch)


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(table.insert(), rows)


# ---------------------------------------------------------------------------------------------------
# Generation


@dataclass(slots=True)
class _Inv:
    """One invoice while its story is being written; amounts in minor units (cents, yen)."""

    amount: int
    currency: str
    issue: dt.date = dt.date.min
    due: dt.date = dt.date.min
    status: str = "draft"
    status_at: dt.datetime = dt.datetime.min.replace(tzinfo=dt.UTC)
    promise: dt.date | None = None
    dispute: str | None = None
    clock: dt.datetime | None = None
    payments: list[tuple[int, dt.datetime]] = field(default_factory=list)
    events: list[tuple[str, dt.datetime, str, str | None, str | None]] = field(default_factory=list)
    task: tuple[str, dt.date, bool] | None = None

    @property
    def paid(self) -> int:
        return sum(p for p, _ in self.payments)


@dataclass(frozen=True)
class _AccountPlan:
    owner: int
    tier: str
    currency: str
    invoices: int


class _Generator:
    """Deterministic rows from one random stream; Faker only fills small name pools (it is slow)."""

    def __init__(self, rng: random.Random, fake: Faker, today: dt.date) -> None:
        self.rng = rng
        self.today = today
        self.yesterday = today - dt.timedelta(days=1)
        self.first_names = sorted({_ascii(fake.first_name()) for _ in range(1500)} - {""})
        self.last_names = sorted({_ascii(fake.last_name()) for _ in range(3000)} - {""})
        self.companies = [fake.company() for _ in range(300)]
        self.used_names: set[str] = set()
        self.midnights: dict[dt.date, dt.datetime] = {}
        self.seq = {"contact": 0, "deal": 0, "invoice": 0, "task": 0}
        self.opening: dict[str, int] = {}
        self.scenarios = list(SCENARIO_WEIGHTS)
        self.scenario_cum = _cumulative(SCENARIO_WEIGHTS.values())
        self.currencies = list(CURRENCY_WEIGHTS)
        self.currency_cum = _cumulative(CURRENCY_WEIGHTS.values())

    # -- workspace and users

    def workspace(self) -> dict[str, Any]:
        return {"id": 1, "name": "Lumenbase Demo", "base_currency": BASE_CURRENCY}

    def fx_rows(self) -> list[dict[str, Any]]:
        return [{"currency": c, "rate": r} for c, r in FX_RATES.items()]

    def users(self, reps: int) -> list[dict[str, Any]]:
        """Admin, then managers (one per ~8 reps), then reps: parents before children."""
        managers = max(1, math.ceil(reps / REPS_PER_MANAGER))
        taken = {ADMIN_EMAIL, DEMO_REP_EMAIL}
        rows = [self._user("u-admin-0001", ADMIN_EMAIL, "Avery Admin", "admin", None, "UTC", 9_000_001)]
        for m in range(1, managers + 1):
            name = self._person()
            rows.append(
                self._user(
                    f"u-mgr-{m:04d}",
                    _unique_email(name, taken),
                    name,
                    "manager",
                    "u-admin-0001",
                    self.rng.choice(TIME_ZONES),
                    8_000_000 + m,
                )
            )
        for r in range(1, reps + 1):
            manager = f"u-mgr-{(r - 1) // REPS_PER_MANAGER + 1:04d}"
            if r == 1:
                name, email, tz = DEMO_REP_NAME, DEMO_REP_EMAIL, "America/New_York"
            else:
                name = self._person()
                email, tz = _unique_email(name, taken), self.rng.choice(TIME_ZONES)
            rows.append(self._user(f"u-rep-{r:04d}", email, name, "rep", manager, tz, r))
        return rows

    @staticmethod
    def _user(uid: str, email: str, name: str, role: str, manager: str | None, tz: str, slack: int) -> dict[str, Any]:
        return {
            "id": uid,
            "email": email,
            "name": name,
            "role": role,
            "manager_id": manager,
            "timezone": tz,
            "slack_user_id": f"U{slack:07d}",
        }

    # -- accounts

    def plan_accounts(self, n: int, rep_ids: list[str], invoices: int) -> list[_AccountPlan]:
        """Owner, tier, currency and invoice count of every account (small: one tuple per account)."""
        rep_cum = _cumulative(self.rng.uniform(0.6, 1.4) for _ in rep_ids)
        owners = [i if i < len(rep_ids) else self._pick(rep_cum) for i in range(n)]
        tiers = ["key" if self.rng.random() < 0.1 else "standard" for _ in range(n)]
        weights = [self.rng.lognormvariate(0, 0.6) * (2.5 if t == "key" else 1) for t in tiers]
        counts = _apportion(invoices, weights, self.rng)
        return [_AccountPlan(owners[i], tiers[i], self.currencies[self._pick(self.currency_cum)], counts[i]) for i in range(n)]

    def account_rows(self, plan: list[_AccountPlan], rep_ids: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(table, row) pairs, account by account, each account's rows before the next account's."""
        for index, acct in enumerate(plan, start=1):
            account_id = f"a-{index:06d}"
            name = self._company_name()
            domain = _slug(name) + ".test"
            owner = rep_ids[acct.owner]
            yield (
                "accounts",
                {
                    "id": account_id,
                    "name": name,
                    "owner_id": owner,
                    "tier": acct.tier,
                    "renewal_date": self._renewal_date(acct.tier),
                },
            )
            contacts = list(self._contacts(account_id, domain))
            for row in contacts:
                yield "contacts", row
            deals = list(self._deals(account_id, name, acct.currency))
            for row in deals:
                yield "deals", row
            for _ in range(acct.invoices):
                yield from self._invoice_rows(account_id, name, owner, acct, contacts, deals)

    def _company_name(self) -> str:
        for _ in range(50):
            name = self._company_candidate()
            if name not in self.used_names:
                self.used_names.add(name)
                return name
        name = f"{self._company_candidate()} {len(self.used_names) + 1}"
        self.used_names.add(name)
        return name

    def _company_candidate(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return rng.choice(self.companies)
        last = rng.choice(self.last_names)
        if roll < 0.3:
            return f"{last} & {rng.choice(self.last_names)}"
        return f"{last} {rng.choice(INDUSTRY_WORDS)} {rng.choice(COMPANY_SUFFIXES)}".strip()

    def _renewal_date(self, tier: str) -> dt.date | None:
        if self.rng.random() < (0.8 if tier == "key" else 0.35):
            return self.today + dt.timedelta(days=self._ri(-20, 365))
        return None

    def _contacts(self, account_id: str, domain: str) -> Iterator[dict[str, Any]]:
        for position in range(self.rng.choice((1, 1, 2, 2, 2, 3))):
            self.seq["contact"] += 1
            name = self._person()
            yield {
                "id": f"c-{self.seq['contact']:07d}",
                "account_id": account_id,
                "name": name,
                "email": _email(name, "", domain),
                "role": "billing" if position == 0 else self.rng.choice(CONTACT_ROLES),
                "do_not_contact": self.rng.random() < 0.05,
            }

    def _deals(self, account_id: str, account_name: str, currency: str) -> Iterator[dict[str, Any]]:
        for n in range(self.rng.choice((0, 1, 1, 2))):
            self.seq["deal"] += 1
            stage = "closed_won" if n == 0 else self.rng.choice(("closed_won", "negotiation", "proposal"))
            yield {
                "id": f"d-{self.seq['deal']:07d}",
                "account_id": account_id,
                "name": f"{account_name} {self.rng.choice(('subscription', 'expansion', 'renewal', 'pilot'))}",
                "stage": stage,
                "amount": _money(self._amount(currency) * 6, currency),
                "currency": currency,
            }

    def _person(self) -> str:
        return f"{self.rng.choice(self.first_names)} {self.rng.choice(self.last_names)}"

    # -- invoices

    def _invoice_rows(
        self,
        account_id: str,
        account_name: str,
        owner: str,
        acct: _AccountPlan,
        contacts: list[dict[str, Any]],
        deals: list[dict[str, Any]],
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        scenario, bucket = self._next_scenario(owner)
        amount = self._amount(acct.currency) * (3 if acct.tier == "key" else 1)
        inv = _Inv(amount=amount, currency=acct.currency)
        getattr(self, f"_sc_{scenario}")(inv, bucket)
        self.seq["invoice"] += 1
        n = self.seq["invoice"]
        invoice_id, number = f"inv-{n:07d}", f"INV-{100000 + n}"
        yield "invoices", self._invoice_row(inv, invoice_id, number, account_id, contacts, deals)
        for position, contact in enumerate(self._invoice_contacts(contacts)):
            yield "invoice_contacts", {"invoice_id": invoice_id, "contact_id": contact, "position": position}
        for cents, at in inv.payments:
            yield "payments", {"invoice_id": invoice_id, "amount": _money(cents, inv.currency), "paid_at": at}
        for kind, at, text, from_status, to_status in inv.events:
            yield (
                "activities",
                {
                    # The customer opening the invoice is nobody's action in the CRM.
                    "invoice_id": invoice_id,
                    "kind": kind,
                    "at": at,
                    "by_id": None if to_status == "viewed" else owner,
                    "text": text.replace("{number}", number),
                    "from_status": from_status,
                    "to_status": to_status,
                },
            )
        if inv.task is not None:
            title, due, done = inv.task
            self.seq["task"] += 1
            yield (
                "tasks",
                {
                    "id": f"t-{self.seq['task']:07d}",
                    "owner_id": owner,
                    "account_id": account_id,
                    "invoice_id": invoice_id,
                    "title": title.replace("{number}", number).replace("{account}", account_name),
                    "due_date": due,
                    "done": done,
                },
            )

    def _invoice_row(
        self,
        inv: _Inv,
        invoice_id: str,
        number: str,
        account_id: str,
        contacts: list[dict[str, Any]],
        deals: list[dict[str, Any]],
    ) -> dict[str, Any]:
        won = [d["id"] for d in deals if d["stage"] == "closed_won"]
        at_any = max((e[1] for e in inv.events), default=None)
        at_contact = max((e[1] for e in inv.events if e[0] in CONTACT_KINDS), default=None)
        return {
            "id": invoice_id,
            "number": number,
            "account_id": account_id,
            "deal_id": self.rng.choice(won) if won and self.rng.random() < 0.6 else None,
            "issue_date": inv.issue,
            "due_date": inv.due,
            "amount": _money(inv.amount, inv.currency),
            "currency": inv.currency,
            "amount_paid": _money(inv.paid, inv.currency),
            "status": inv.status,
            "status_updated_at": inv.status_at,
            "promise_to_pay_date": inv.promise,
            "dispute_reason": inv.dispute,
            "payment_url": f"https://pay.lumenbase.test/{number}" if self.rng.random() < 0.85 else None,
            "last_activity_at": at_any,
            "last_contacted_at": at_contact,
        }

    def _invoice_contacts(self, contacts: list[dict[str, Any]]) -> list[str]:
        ids = [c["id"] for c in contacts]
        if len(ids) > 1 and self.rng.random() < 0.3:
            return ids[:2]
        return ids[:1]

    def _next_scenario(self, owner: str) -> tuple[str, int | None]:
        seen = self.opening.get(owner, 0)
        if seen < len(OPENING_SET):
            self.opening[owner] = seen + 1
            return OPENING_SET[seen]
        return self.scenarios[self._pick(self.scenario_cum)], None

    def _amount(self, currency: str) -> int:
        """A log-uniform invoice amount of about USD 300-60,000, in minor units of `currency`."""
        # A random draw, not arithmetic on stored money: the result is an integer of minor units.
        usd = math.exp(self.rng.uniform(math.log(300), math.log(60_000)))
        units = usd / float(FX_RATES[currency])
        if currency in ZERO_DECIMAL_CURRENCIES:
            return max(100, int(round(units, -2)))
        return max(100, round(units * 100))

    # -- time
    # Moments fall in 08:00-16:59 UTC, so in every zone from UTC-8 to UTC+13 they are at most one
    # calendar day later; "stale" events are >= 16 days old and "fresh" ones <= 12, clear of 14.

    def _at(self, day: dt.date) -> dt.datetime:
        """A working-hours moment on `day`, never later than yesterday (so never in the future)."""
        day = min(day, self.yesterday)
        midnight = self.midnights.get(day)
        if midnight is None:
            midnight = self.midnights[day] = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        return midnight + dt.timedelta(seconds=8 * 3600 + self._ri(0, 9 * 3600 - 1))

    def _ri(self, low: int, high: int) -> int:
        # randint's argument checks cost more than the rest of a row's generation.
        return low + int(self.rng.random() * (high - low + 1))

    def _moment(self, inv: _Inv, day: dt.date) -> dt.datetime:
        """The next moment of this invoice's story: on `day`, but never before the previous one."""
        at = self._at(day)
        if inv.clock is not None and at <= inv.clock:
            at = inv.clock + dt.timedelta(minutes=self._ri(1, 20))
        inv.clock = at
        return at

    def _days_ago(self, low: int, high: int) -> dt.date:
        return self.today - dt.timedelta(days=self._ri(low, high))

    def _overdue_days(self, bucket: int | None) -> int:
        if bucket is None:
            bucket = self.rng.choices((1, 2, 3, 4), BUCKET_WEIGHTS)[0]
        low, high = BUCKET_DAYS[bucket]
        return self._ri(low, high)

    @staticmethod
    def _day(inv: _Inv) -> dt.date:
        assert inv.clock is not None
        return inv.clock.date()

    # -- the story of an invoice

    def _event(self, inv: _Inv, kind: str, day: dt.date, text: str, to: str | None = None) -> dt.datetime:
        at = self._moment(inv, day)
        if kind == "status_change":
            inv.events.append((kind, at, text, inv.status, to))
            inv.status, inv.status_at = str(to), at
        else:
            inv.events.append((kind, at, text, None, None))
        return at

    def _issue(self, inv: _Inv, due: dt.date, terms: int | None = None, draft: bool = False) -> None:
        """Set the dates; an invoice that will be sent is issued yesterday at the latest."""
        terms = terms or self.rng.choice(PAYMENT_TERMS)
        if not draft:
            terms = max(terms, (due - self.yesterday).days)
        inv.due = due
        inv.issue = due - dt.timedelta(days=terms)
        inv.clock = None
        inv.status_at = self._moment(inv, inv.issue)

    def _send(self, inv: _Inv, viewed: float = 0.5) -> None:
        self._event(inv, "status_change", inv.issue, "Invoice {number} sent", "sent")
        if self.rng.random() < viewed:
            seen = inv.issue + dt.timedelta(days=self._ri(0, 4))
            self._event(inv, "status_change", seen, "Customer opened the invoice", "viewed")

    def _pay(self, inv: _Inv, minor: int, day: dt.date) -> None:
        # Payments are not activities (crm.ledger.add_payment logs none); they still follow the story.
        inv.payments.append((minor, self._moment(inv, day)))

    def _pay_part(self, inv: _Inv, day: dt.date, low: float = 0.2, high: float = 0.7) -> None:
        self._pay(inv, self._part(inv, low, high), day)
        self._event(inv, "status_change", self._day(inv), "Partial payment received", "partially_paid")

    def _part(self, inv: _Inv, low: float, high: float) -> int:
        unit = 1 if inv.currency in ZERO_DECIMAL_CURRENCIES else 100
        part = int(inv.amount * self.rng.uniform(low, high)) // unit * unit
        return min(max(unit, part), inv.amount - unit)

    def _reminders(self, inv: _Inv, start: dt.date, end: dt.date) -> None:
        """Emails and calls chasing payment between two days (inclusive)."""
        if start > end:
            return
        span = (end - start).days
        count = self._ri(1, 3) if span > 2 else 1
        for day in sorted(start + dt.timedelta(days=self._ri(0, span)) for _ in range(count)):
            if self.rng.random() < 0.7:
                self._event(inv, "email", day, "Payment reminder for {number} sent")
            else:
                self._event(inv, "call", day, "Called accounts payable about {number}")

    def _touch(self, inv: _Inv) -> None:
        """A recent, non-urgent touch (5-12 days ago) so the invoice does not look abandoned."""
        day = self._days_ago(5, 12)
        if inv.clock is not None and inv.clock.date() >= day:
            return
        kind = self.rng.choice(("email", "call", "note"))
        text = {
            "email": "Checked in on {number}",
            "call": "Call: AP confirmed {number} is in the run",
            "note": "Reviewed {number} with the account team",
        }[kind]
        self._event(inv, kind, day, text)

    def _task(self, inv: _Inv, title: str, due: dt.date | None = None, done: bool | None = None) -> None:
        due = due or self._days_ago(-5, 6)
        if done is None:
            done = due < self.today and self.rng.random() < 0.35
        inv.task = (title, due, done)

    def _maybe_task(self, inv: _Inv, title: str, chance: float) -> None:
        if self.rng.random() < chance:
            self._task(inv, title)

    def _overdue_base(self, inv: _Inv, days: int, *, mark: bool, until: dt.date | None = None, fresh: bool = True) -> None:
        """Issued, sent, chased until `until`; status marked overdue after the due date when `mark`."""
        self._issue(inv, self.today - dt.timedelta(days=days))
        self._send(inv)
        if mark:
            self._event(inv, "status_change", inv.due + dt.timedelta(days=self._ri(1, 4)), "Past due: marked overdue", "overdue")
        self._reminders(inv, inv.due + dt.timedelta(days=3), until or self._days_ago(5, 10))
        if fresh:
            self._touch(inv)

    # One method per scenario; `bucket` forces the aging bucket of the overdue ones.

    def _sc_paid(self, inv: _Inv, bucket: int | None) -> None:
        self._issue(inv, self._days_ago(-20, 380))
        self._send(inv)
        paid_on = min(max(inv.due + dt.timedelta(days=self._ri(-15, 25)), inv.issue + dt.timedelta(days=1)), self.yesterday)
        if paid_on > inv.due + dt.timedelta(days=5):
            self._reminders(inv, inv.due + dt.timedelta(days=2), paid_on - dt.timedelta(days=1))
        if self.rng.random() < 0.25 and (paid_on - self._day(inv)).days > 2:
            self._pay_part(inv, paid_on - dt.timedelta(days=self._ri(1, (paid_on - self._day(inv)).days)))
        self._pay(inv, inv.amount - inv.paid, paid_on)
        self._event(inv, "status_change", paid_on, "Paid in full", "paid")

    def _sc_sent_current(self, inv: _Inv, bucket: int | None, viewed: float = 0.0) -> None:
        terms = self.rng.choice(PAYMENT_TERMS)
        self._issue(inv, self._days_ago(1, terms) + dt.timedelta(days=terms), terms)
        self._send(inv, viewed)
        self._touch(inv)

    def _sc_viewed_current(self, inv: _Inv, bucket: int | None) -> None:
        self._sc_sent_current(inv, bucket, viewed=1.0)

    def _sc_due_soon(self, inv: _Inv, bucket: int | None) -> None:
        self._issue(inv, self._days_ago(-3, 0))
        self._send(inv)
        self._touch(inv)
        self._maybe_task(inv, "Confirm {number} is scheduled for payment", 0.3)

    def _sc_partially_paid_current(self, inv: _Inv, bucket: int | None) -> None:
        self._sc_sent_current(inv, bucket)
        self._pay_part(inv, self._day(inv))

    def _sc_overdue_marked(self, inv: _Inv, bucket: int | None) -> None:
        self._overdue_base(inv, self._overdue_days(bucket), mark=True)
        if bucket == 1:
            self._task(inv, "Call {account} about overdue {number}", self.today, False)
        else:
            self._maybe_task(inv, "Follow up on overdue {number}", 0.2)

    def _sc_overdue_not_marked(self, inv: _Inv, bucket: int | None) -> None:
        self._overdue_base(inv, self._overdue_days(bucket), mark=False)
        self._maybe_task(inv, "Chase {number}", 0.1)

    def _sc_partially_paid_overdue(self, inv: _Inv, bucket: int | None) -> None:
        self._overdue_base(inv, self._overdue_days(bucket), mark=False)
        self._pay_part(inv, self._day(inv))

    def _sc_paid_not_marked(self, inv: _Inv, bucket: int | None) -> None:
        self._issue(inv, self._days_ago(-10, 60))
        self._send(inv)
        roll = self.rng.random()
        if roll < 0.3 and inv.due < self._days_ago(2, 2):
            self._event(inv, "status_change", inv.due + dt.timedelta(days=1), "Past due: marked overdue", "overdue")
        elif roll < 0.6:
            self._pay_part(inv, self._days_ago(10, 20))
        # The rest arrived by bank transfer and nobody updated the status.
        self._pay(inv, inv.amount - inv.paid, self._days_ago(1, 9))

    def _sc_no_recent_activity(self, inv: _Inv, bucket: int | None) -> None:
        roll = self.rng.random()
        if roll < 0.6:
            self._issue(inv, self._days_ago(40, 120))
            self._send(inv, viewed=0.0)
            self._event(inv, "status_change", inv.due + dt.timedelta(days=2), "Past due: marked overdue", "overdue")
        elif roll < 0.8:
            self._issue(inv, self._days_ago(16, 50) + dt.timedelta(days=60), 60)
            self._send(inv, viewed=0.0)
        else:
            self._issue(inv, self._days_ago(40, 80) + dt.timedelta(days=60), 60)
            self._send(inv, viewed=0.0)
            self._pay_part(inv, self._days_ago(16, 30))

    def _sc_promise_pending(self, inv: _Inv, bucket: int | None) -> None:
        self._overdue_base(inv, self._overdue_days(bucket), mark=True, until=self._days_ago(9, 14))
        inv.promise = self._days_ago(-14, -1)
        self._event(
            inv, "call", self._days_ago(4, 8), f"Spoke with AP: they promised to pay {{number}} by {inv.promise.isoformat()}"
        )

    def _sc_promise_broken(self, inv: _Inv, bucket: int | None) -> None:
        inv.promise = self._days_ago(1, 12)
        call = inv.promise - dt.timedelta(days=self._ri(3, 10))
        # Due (and marked overdue) well before the call that produced the promise.
        days = max(self._overdue_days(bucket), (self.today - call).days + 5)
        self._overdue_base(inv, days, mark=True, until=call - dt.timedelta(days=1), fresh=False)
        self._event(inv, "call", call, f"Promise to pay {{number}} by {inv.promise.isoformat()}")
        self._task(inv, "Promise on {number} was broken: call {account}", self._days_ago(0, 3), False)

    def _dispute(self, inv: _Inv, opened: dt.date) -> None:
        inv.dispute = self.rng.choice(DISPUTE_REASONS)
        self._event(inv, "status_change", opened, f"Customer disputes {{number}}: {inv.dispute}", "disputed")

    def _sc_disputed_active(self, inv: _Inv, bucket: int | None) -> None:
        self._issue(inv, self._days_ago(-10, 60))
        self._send(inv)
        self._dispute(inv, max(inv.issue + dt.timedelta(days=3), self._days_ago(14, 40)))
        self._event(inv, "note", self._days_ago(1, 12), "Sent the signed delivery note to their AP team")
        self._task(inv, "Send {account} the signed delivery note for {number}", self._days_ago(1, 10), True)

    def _sc_disputed_stalled(self, inv: _Inv, bucket: int | None) -> None:
        self._issue(inv, self._days_ago(50, 150))
        self._send(inv)
        self._dispute(inv, self._days_ago(30, 90))
        self._event(inv, "email", self._days_ago(16, 29), "Asked for the customer's evidence on {number}")

    def _sc_draft_fresh(self, inv: _Inv, bucket: int | None) -> None:
        terms = self.rng.choice(PAYMENT_TERMS)
        self._issue(inv, self._days_ago(-3, 6) + dt.timedelta(days=terms), terms, draft=True)
        if self.rng.random() < 0.3:
            self._event(inv, "note", inv.issue, "Draft prepared; waiting for the PO number")

    def _sc_draft_stale(self, inv: _Inv, bucket: int | None) -> None:
        terms = self.rng.choice(PAYMENT_TERMS)
        self._issue(inv, self._days_ago(8, 45) + dt.timedelta(days=terms), terms, draft=True)

    def _sc_void(self, inv: _Inv, bucket: int | None) -> None:
        self._issue(inv, self._days_ago(-20, 200))
        self._send(inv, viewed=0.2)
        self._event(inv, "status_change", inv.issue + dt.timedelta(days=self._ri(1, 10)), "Issued in error; replaced", "void")

    def _sc_written_off(self, inv: _Inv, bucket: int | None) -> None:
        self._overdue_base(inv, self._ri(200, 400), mark=True, until=self._days_ago(90, 150), fresh=False)
        if self.rng.random() < 0.3:
            self._pay_part(inv, self._days_ago(60, 90), 0.1, 0.4)
        self._event(inv, "status_change", self._days_ago(16, 45), "Uncollectable: written off", "written_off")

    def _sc_cooldown(self, inv: _Inv, bucket: int | None) -> None:
        self._overdue_base(inv, self._overdue_days(bucket), mark=True)
        self._event(inv, "email", self._days_ago(1, 2), "Payment reminder for {number} sent")

    # -- helpers

    def _pick(self, cum: list[float]) -> int:
        return _bisect(cum, self.rng.random() * cum[-1])


def _cumulative(weights: Any) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _bisect(cum: list[float], x: float) -> int:
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _apportion(total: int, weights: list[float], rng: random.Random) -> list[int]:
    """Split `total` into integer shares proportional to `weights` (at least 1 each while it lasts)."""
    n = len(weights)
    base = 1 if total >= n else 0
    rest = total - base * n
    scale = rest / sum(weights)
    counts = [base + int(w * scale) for w in weights]
    for i in rng.sample(range(n), total - sum(counts)):
        counts[i] += 1
    return counts


def _money(minor: int, currency: str) -> Decimal:
    if currency in ZERO_DECIMAL_CURRENCIES:
        return Decimal(minor)
    return Decimal(minor).scaleb(-2)


def _ascii(text: str) -> str:
    return re.sub(r"[^A-Za-z-]", "", text)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "company"


def _email(name: str, tag: str, domain: str) -> str:
    return f"{_slug(name).replace('-', '.')}{tag}@{domain}"


def _unique_email(name: str, taken: set[str], domain: str = "lumenbase.test") -> str:
    """first.last@domain, numbered when a colleague already has it (user emails are unique)."""
    email, n = _email(name, "", domain), 1
    while email in taken:
        n += 1
        email = _email(name, str(n), domain)
    taken.add(email)
    return email


__all__ = ["DEMO_REP_EMAIL", "DEMO_REP_ID", "SeedSummary", "database_is_empty", "seed_demo"]
