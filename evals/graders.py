"""Graders: deterministic checks of one run's transcript, and an optional LLM-as-judge rubric for live runs.

Every grader reads only the transcript (the case, its data, the engine's reference figures, the turns, the
thread messages and the database before and after), so a saved report can be graded again without a model.

- run: every turn ran, failing only where the case expects an error;
- trajectory: required tool calls, forbidden ones, their order, model calls, actions waiting for approval;
- db_state: nothing changed without approval; each approved change made exactly once; expected end state;
- priorities: precision@k, nDCG@k and rank agreement of the answer against the priorities engine;
- grounding: every amount, invoice number, date, currency (and days overdue) in answers and emails exists
  in the case's data, with the right pairing (an invoice's amount on that invoice's line, in its currency);
- drafts: tone level and recipients of each draft and email, and the policies (no collection email for a
  disputed, paid, void, written-off or zero-balance invoice, a pending promise, a cooldown, do-not-contact);
- scope: nothing of another rep's book shown; refusals where the request is outside the rep's scope;
- reply: what the answer must or must not say; a question where the request is ambiguous;
- judge: (live runs with --judge only) helpfulness and tone scored by a model; never a case's only grader;
- fallback: (live runs only) every answer came from the model: one from Lumo's offline fallback fails the run.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from evals.cases import Case, Expect, ToolSpec, case_from_dict
from lumo.crm.grounding import BARE_AMOUNT, INVOICE_NUMBER, URL, _dates, currency_tokens, facts_in_text, money_mentions
from lumo.crm.recording import EVENT_PREFIXES
from lumo.crm.tone import tone_for
from tools import REGISTRY

GRADERS = ("run", "trajectory", "db_state", "priorities", "grounding", "drafts", "scope", "reply", "judge", "fallback")
OFFLINE_LABELS = frozenset({"lumo-offline", "offline"})
# Lumo's own words when a turn waits for approval (lumo.agent.service): not the model's.
APPROVAL_PREFIX = "I need your approval before I do this:"
MODEL_WRITTEN_ARGS = ("title", "text", "reason")  # arguments of actions that the model words
SIDE_EFFECT_TOOLS = frozenset(name for name, tool in REGISTRY.items() if tool.side_effect)
# The invoice columns each record tool may change besides its event row.
RECORD_FIELDS: dict[str, set[str]] = {
    "record_promise": {"promise_to_pay_date"},
    "record_payment": {"amount_paid", "status", "status_updated_at"},
    "open_dispute": {"dispute_reason"},
    "resolve_dispute": {"dispute_reason"},
    "log_call": {"last_contacted_at"},
}
OPEN = frozenset({"sent", "viewed", "partially_paid", "overdue", "disputed"})
OVERDUE_STATUSES = frozenset({"sent", "viewed", "partially_paid", "overdue"})
NO_CHASE = frozenset({"paid", "void", "written_off"})
BUCKETS = ("1-30", "31-60", "61-90", "90+")
COOLDOWN_DAYS = 3
MANAGER_CC = frozenset({"escalation", "final_notice"})
AMOUNT_TEXT = re.compile(r"^-?\d+(?:\.\d+)?$")
BUCKET_LABEL = re.compile(r"(?<![\w.,])(?:1-30|31-60|61-90|90\+)(?![\w])")  # aging buckets, not amounts
NOT_CURRENCY_WORDS = frozenset({"ALL", "TOP", "CUP", "BOB", "MOP", "PEN", "TRY", "SOS", "LAK"})

# Amounts the agent's guard does not read: integers with a currency word, and "k"/"m" shorthands.
WORD_MONEY = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*(k|thousand|m|million)?\s+"
    r"(euros?|dollars?|bucks|pounds?|quid|sterling|yen)\b",
    re.I,
)
SHORT_MONEY = re.compile(r"(?<![A-Za-z])([$€£¥]|USD|EUR|GBP|JPY)\s?(\d+(?:\.\d+)?)\s?(k|m)\b", re.I)
WORD_CURRENCY = {"euro": "EUR", "dollar": "USD", "buck": "USD", "pound": "GBP", "quid": "GBP", "sterling": "GBP", "yen": "JPY"}
SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
DAYS_OVERDUE = re.compile(r"(?<!than )(?<!over )(?<!least )(?<!-)\b(\d+)\s+days?\s+overdue\b|\boverdue\s+(\d+)\s+days?\b", re.I)
REFUSAL = re.compile(
    r"couldn'?t find|could not find|can'?t find|cannot find|not found|no such|don'?t have access|no access|"
    r"not in your (?:book|scope|accounts)|outside (?:of )?your|isn'?t yours|not yours|can'?t (?:help|share|show|do)|"
    r"cannot (?:help|share|show)|unable to|\bno (?:open |overdue )?invoices?\b|no overdue invoices|not one of your",
    re.I,
)
DEMAND = re.compile(
    r"\b(arrange payment|payment (?:is )?(?:needed|required|overdue|due)|pay (?:now|immediately|today|the balance|"
    r"the amount|this)|please pay|remit|settle|final notice|collections?|past[\s-]due|overdue|unpaid|"
    r"outstanding balance|pause service)\b",
    re.I,
)
TONE_SIGNS = (  # most severe first: a final notice may also say "past due"
    ("final_notice", re.compile(r"final notice|refer the balance for collection|pause service", re.I)),
    ("escalation", re.compile(r"\bescalat|copied my manager|seriously overdue|more than 30 days overdue", re.I)),
    ("dispute_resolution", re.compile(r"concern you raised|your question about|the dispute|resolve it", re.I)),
    ("firm", re.compile(r"payment needed|remains? unpaid|unpaid past the due date|arrange payment this week", re.I)),
    ("gentle", re.compile(r"\bpast due\b|when we can expect payment|hope all is well", re.I)),
    ("courtesy", re.compile(r"coming due|friendly reminder|\bdue (?:soon|on|in)\b", re.I)),
)


@dataclass
class Grade:
    grader: str
    passed: bool = True
    applicable: bool = False
    failures: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # policy violations (the target is zero)
    metrics: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        self.applicable = True
        self.passed = False
        self.failures.append(message)

    def violate(self, message: str) -> None:
        self.fail(message)
        self.violations.append(message)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# --- the book: the case's data as the graders see it --------------------------------------------------


def _money(value: Any) -> Decimal:
    return Decimal(str(value))


def _day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _moment(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass
class Inv:
    number: str
    id: str
    account_id: str
    account: str
    owner_id: str
    currency: str
    amount: Decimal
    paid: Decimal
    status: str
    issue: dt.date
    due: dt.date
    promise: dt.date | None
    dispute_reason: str | None
    contact_ids: list[str]
    amounts: set[tuple[str, Decimal]] = field(default_factory=set)
    dates: set[dt.date] = field(default_factory=set)
    last_contacted: dt.datetime | None = None
    quoted: set[tuple[str, Decimal]] = field(default_factory=set)  # amounts quoted in its notes

    @property
    def balance(self) -> Decimal:
        return max(self.amount - self.paid, Decimal("0"))

    @property
    def open(self) -> bool:
        return self.status in OPEN and self.balance > 0

    def days_overdue(self, today: dt.date) -> int:
        overdue = self.status in OVERDUE_STATUSES and self.balance > 0 and self.due < today
        return (today - self.due).days if overdue else 0


class Book:
    """Facts of the case's data (ARCHITECTURE.md section 5 snapshot) and the engine's reference figures."""

    def __init__(self, data: dict[str, Any], reference: dict[str, Any], today: dt.date) -> None:
        self.today = today
        self.reference = reference
        scope = reference.get("scope") or {}
        self.tz = ZoneInfo(scope.get("timezone") or "UTC")
        owners = scope.get("owner_ids")
        self.owner_ids: set[str] | None = set(owners) if owners is not None else None
        self.user_id = scope.get("user_id")
        self.users = {u["id"]: u for u in data.get("users", [])}
        self.accounts = {a["id"]: a for a in data.get("accounts", [])}
        self.contacts = {c["id"]: c for c in data.get("contacts", [])}
        self.currencies = {data["workspace"]["base_currency"], *data["workspace"].get("fx_rates", {})}
        self.invoices: dict[str, Inv] = {}
        by_id: dict[str, Inv] = {}
        for raw in data.get("invoices", []):
            account = self.accounts.get(raw["account_id"], {})
            inv = Inv(
                number=raw["number"],
                id=raw["id"],
                account_id=raw["account_id"],
                account=account.get("name", ""),
                owner_id=account.get("owner_id", ""),
                currency=raw["currency"],
                amount=_money(raw["amount"]),
                paid=Decimal("0"),
                status=raw["status"],
                issue=dt.date.fromisoformat(raw["issue_date"]),
                due=dt.date.fromisoformat(raw["due_date"]),
                promise=_day(raw.get("promise_to_pay_date")),
                dispute_reason=raw.get("dispute_reason"),
                contact_ids=list(raw.get("contact_ids", [])),
            )
            inv.dates |= {inv.issue, inv.due, *self._moment_days(raw["status_updated_at"])}
            if inv.promise:
                inv.dates.add(inv.promise)
            if account.get("renewal_date"):
                inv.dates.add(dt.date.fromisoformat(account["renewal_date"]))
            self.invoices[inv.number] = inv
            by_id[inv.id] = inv
            self.currencies.add(inv.currency)
        self.free_amounts: set[tuple[str, Decimal]] = set()
        self.free_dates: set[dt.date] = set()
        for p in data.get("payments", []):
            inv = by_id[p["invoice_id"]]
            inv.paid += _money(p["amount"])
            inv.amounts.add((inv.currency, _money(p["amount"])))
            inv.dates |= self._moment_days(p["paid_at"])
        for a in data.get("activities", []):
            inv = by_id[a["invoice_id"]]
            inv.dates |= self._moment_days(a["at"])
            if a["kind"] in ("email", "call"):
                at = _moment(a["at"])
                inv.last_contacted = max(inv.last_contacted, at) if inv.last_contacted else at
            self._free_text(a.get("text") or "", inv)
        for t in data.get("tasks", []):
            if t.get("due_date") and t.get("invoice_id") in by_id:
                by_id[t["invoice_id"]].dates.add(dt.date.fromisoformat(t["due_date"]))
        for inv in self.invoices.values():
            inv.amounts |= {(inv.currency, inv.amount), (inv.currency, inv.paid), (inv.currency, inv.balance)}
            inv.dates.add(today)
            self._free_text(inv.dispute_reason or "", inv)
        for inv in self.invoices.values():
            inv.amounts |= inv.quoted
        self.deal_amounts = {(d["currency"], _money(d["amount"])) for d in data.get("deals", [])}
        for d in data.get("deals", []):
            self.currencies.add(d["currency"])
        for t in data.get("tasks", []):
            self._free_text(t.get("title") or "")
            if t.get("due_date"):
                self.free_dates.add(dt.date.fromisoformat(t["due_date"]))
        for a in self.accounts.values():
            if a.get("renewal_date"):
                self.free_dates.add(dt.date.fromisoformat(a["renewal_date"]))

    def _moment_days(self, value: str) -> set[dt.date]:
        moment = _moment(value)
        return {moment.astimezone(dt.UTC).date(), moment.astimezone(self.tz).date()}

    def _free_text(self, text: str, inv: Inv | None = None) -> None:
        """Facts quoted in notes and reasons: stating them is quoting the data (an invoice's own, if given)."""
        amounts, _, dates = facts_in_text(text)
        self.free_amounts |= amounts
        self.free_dates |= dates
        if inv is not None:
            inv.quoted |= amounts
            inv.dates |= dates

    # scope

    def owns(self, owner_id: str) -> bool:
        return self.owner_ids is None or owner_id in self.owner_ids

    def in_scope(self, inv: Inv) -> bool:
        return self.owns(inv.owner_id)

    @cached_property
    def scoped(self) -> list[Inv]:
        return [i for i in self.invoices.values() if self.in_scope(i)]

    # grounding

    @cached_property
    def aggregates(self) -> set[tuple[str, Decimal]]:
        """Totals per currency any answer may state: overdue by account, bucket and currency; open by account."""
        totals: set[tuple[str, Decimal]] = set()
        overdue = [i for i in self.scoped if i.days_overdue(self.today)]
        accounts = [None, *sorted({i.account_id for i in self.scoped})]
        for account in accounts:
            for bucket in (None, *BUCKETS):
                rows = [
                    i
                    for i in overdue
                    if (account is None or i.account_id == account)
                    and (bucket is None or _bucket(i.days_overdue(self.today)) == bucket)
                ]
                totals |= _sums(rows)
            totals |= _sums([i for i in self.scoped if i.open and (account is None or i.account_id == account)])
        return totals

    @cached_property
    def reference_amounts(self) -> set[tuple[str, Decimal]]:
        found: set[tuple[str, Decimal]] = set()
        for key in ("health", "risk", "priorities"):
            _walk_amounts(self.reference.get(key), None, found)
        return found

    @cached_property
    def reference_dates(self) -> set[dt.date]:
        return facts_in_text(json.dumps({k: self.reference.get(k) for k in ("health", "risk", "priorities")}))[2]

    @cached_property
    def amounts(self) -> set[tuple[str, Decimal]]:
        every = set(self.deal_amounts) | self.aggregates | self.reference_amounts | self.free_amounts
        for inv in self.invoices.values():
            every |= inv.amounts
        return every

    @cached_property
    def dates(self) -> set[dt.date]:
        every = {self.today} | self.free_dates | self.reference_dates
        for inv in self.invoices.values():
            every |= inv.dates
        return every

    # outreach

    def manager_email(self, owner_id: str) -> str | None:
        manager = self.users.get(self.users.get(owner_id, {}).get("manager_id") or "")
        return manager["email"].lower() if manager else None

    def contact_by_email(self, email: str) -> dict[str, Any] | None:
        return next((c for c in self.contacts.values() if c["email"].lower() == email.lower()), None)


def _bucket(days: int) -> str:
    return "1-30" if days <= 30 else "31-60" if days <= 60 else "61-90" if days <= 90 else "90+"


def _sums(rows: list[Inv]) -> set[tuple[str, Decimal]]:
    totals: dict[str, Decimal] = {}
    for inv in rows:
        totals[inv.currency] = totals.get(inv.currency, Decimal("0")) + inv.balance
    return set(totals.items())


def _walk_amounts(data: Any, currency: str | None, found: set[tuple[str, Decimal]]) -> None:
    """Every decimal string in a JSON value, with the currency of the nearest object that names one."""
    if isinstance(data, dict):
        here = data.get("currency") or data.get("base_currency") or currency
        for value in data.values():
            if isinstance(value, str) and here and AMOUNT_TEXT.match(value) and "." in value:
                found.add((here, Decimal(value)))
            elif isinstance(value, str):
                found |= facts_in_text(value)[0]
            else:
                _walk_amounts(value, here if isinstance(here, str) else None, found)
    elif isinstance(data, list):
        for item in data:
            _walk_amounts(item, currency, found)


def classify_tone(subject: str, body: str) -> str | None:
    text = f"{subject}\n{body}"
    return next((tone for tone, pattern in TONE_SIGNS if pattern.search(text)), None)


# --- the transcript as graders read it ----------------------------------------------------------------


@dataclass
class View:
    """The part of a run an expectation is about: the whole case, or one turn."""

    label: str
    expect: Expect
    turns: list[dict[str, Any]]
    messages: list[dict[str, Any]]

    @property
    def final(self) -> dict[str, Any] | None:
        results = [t["result"] for t in self.turns if t.get("result")]
        return results[-1] if results else None

    @property
    def reply(self) -> str:
        final = self.final
        return (final or {}).get("reply") or ""

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for message in self.messages:
            for call in message.get("tool_calls") or []:
                fn = call.get("function") or {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except json.JSONDecodeError:
                    args = {}
                out.append((fn.get("name", ""), args if isinstance(args, dict) else {}))
        return out

    def model_calls(self) -> int:
        return sum((t.get("usage") or {}).get("model_calls", 0) for t in self.turns)


class Run:
    """One run's transcript with the derived views, facts and changes."""

    def __init__(self, transcript: dict[str, Any]) -> None:
        self.t = transcript
        self.case: Case = case_from_dict(transcript["case"])
        self.today = self.case.date
        self.book = Book(transcript["data"], transcript.get("reference") or {}, self.today)
        self.turns: list[dict[str, Any]] = transcript.get("turns", [])
        self.threads: dict[str, list[dict[str, Any]]] = transcript.get("threads", {})

    def turn_messages(self, turn: dict[str, Any]) -> list[dict[str, Any]]:
        start, end = turn.get("messages") or (0, 0)
        return self.threads.get(turn.get("thread", "main"), [])[start:end]

    def views(self) -> list[View]:
        whole = View("case", self.case.expect, self.turns, [m for t in self.turns for m in self.turn_messages(t)])
        out = [whole]
        for index, turn in enumerate(self.turns):
            spec = self.case.turns[index] if index < len(self.case.turns) else None
            if spec is not None and spec.expect is not None:
                out.append(View(f"turn {index + 1}", spec.expect, [turn], self.turn_messages(turn)))
        return out

    @cached_property
    def user_texts(self) -> list[str]:
        texts = [t["message"] for t in self.turns if t.get("kind") == "ask" and t.get("message")]
        for t in self.turns:
            approve = t.get("approve") or {}
            if approve.get("edit"):
                texts.append(json.dumps(approve["edit"]))
            if approve.get("reject"):
                texts.append(approve["reject"])
        return texts

    @cached_property
    def user_facts(self) -> tuple[set[tuple[str, Decimal]], set[str], set[dt.date]]:
        amounts, numbers, dates = set(), set(), set()
        for text in self.user_texts:
            a, n, d = facts_in_text(text)
            amounts |= a
            numbers |= n | {m.upper() for m in INVOICE_NUMBER.findall(text.upper())}
            dates |= d
        # What the rep records is theirs to state: its day ("by the 3rd"), a payment and the balance it leaves.
        for action in self.pending:
            args = action.get("args") or {}
            if action["tool"] not in RECORD_FIELDS:
                continue
            if isinstance(args.get("date"), str):
                dates.add(dt.date.fromisoformat(args["date"]))
            inv = self.book.invoices.get(str(args.get("invoice_number", "")).upper())
            if action["tool"] == "record_payment" and inv is not None:
                paid = Decimal(str(args["amount"]))
                amounts |= {(inv.currency, paid), (inv.currency, max(inv.balance - paid, Decimal("0")))}
        return amounts, numbers, dates

    @cached_property
    def pending(self) -> list[dict[str, Any]]:
        """Every action proposed in the run (deduplicated by id), with the decision taken on it.

        An action's id is `a<index>-<call id>`; its outcome is the tool message of that call id written while
        an approval resumed the thread: done, rejected or error.
        """
        seen: dict[str, dict[str, Any]] = {}
        for turn in self.turns:
            for action in (turn.get("result") or {}).get("pending_actions") or []:
                seen.setdefault(action["id"], {**action, "decision": None, "proposed_at": turn.get("at")})
            if turn.get("kind") != "approve":
                continue
            for message in self.turn_messages(turn):
                if message.get("role") != "tool":
                    continue
                content = _json(message.get("content"))
                for action in seen.values():
                    if action["decision"] is None and action["id"].split("-", 1)[-1] == message.get("tool_call_id"):
                        action["decision"] = "rejected" if content.get("rejected") else "done" if content.get("done") else "error"
                        break
        return list(seen.values())

    @cached_property
    def all_messages(self) -> list[dict[str, Any]]:
        return [m for messages in self.threads.values() for m in messages]

    @cached_property
    def diff(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        return db_diff(self.t.get("db_before") or {}, self.t.get("db_after") or {}, self.t.get("primary_keys") or {})

    def texts(self) -> list[tuple[str, str]]:
        """(where, text) of everything shown to the rep or written to a customer, each once."""
        out: list[tuple[str, str]] = []
        seen: set[str] = set()

        def add(where: str, text: str) -> None:
            if text and text not in seen:
                seen.add(text)
                out.append((where, text))

        for index, turn in enumerate(self.turns, start=1):
            result = turn.get("result") or {}
            for text in model_texts(result):
                add(f"reply of turn {index}", text)
            for draft in result.get("drafts") or []:
                if not draft.get("skipped_reason"):
                    add(
                        f"draft for {', '.join(draft.get('invoice_numbers') or [])}",
                        f"{draft.get('subject', '')}\n{draft.get('body', '')}",
                    )
        for action in self.pending:
            if action["tool"] == "send_email":
                args = action.get("args") or {}
                add(f"email {action['id']}", f"{args.get('subject', '')}\n{args.get('body', '')}")
        return out


def model_texts(result: dict[str, Any]) -> list[str]:
    """What the model wrote in a turn's result: the reply, or, when the reply is Lumo's approval text, the
    words the model gave its actions (a task's title, a note, a reason); emails are checked as emails."""
    reply = result.get("reply") or ""
    pending = result.get("pending_actions") or []
    if not (pending and reply.startswith(APPROVAL_PREFIX)):
        return [reply] if reply else []
    texts = []
    for action in pending:
        args = action.get("args") or {}
        texts += [args[k] for k in MODEL_WRITTEN_ARGS if isinstance(args.get(k), str) and args[k]]
    return texts


def offline_answers(transcript: dict[str, Any]) -> list[tuple[int, str]]:
    """(turn number, why) of each turn of a live run that Lumo's offline fallback answered."""
    if transcript.get("model") in OFFLINE_LABELS:
        return []
    out = []
    for turn in transcript.get("turns", []):
        result = turn.get("result") or {}
        if result.get("model") in OFFLINE_LABELS:
            why = next((n for n in result.get("notes") or [] if n.startswith("(")), "answered by lumo-offline")
            out.append((int(turn.get("index", 0)) + 1, why))
    return out


def _json(text: Any) -> dict[str, Any]:
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


# Rows the database itself writes beside any write (migration 0012's triggers): not an effect of their own.
FOLLOWS_WRITES = ("book_versions",)


def db_diff(
    before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]], keys: dict[str, list[str]]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per table: rows added, removed and changed ({key, before, after}) between two dumps."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for table in sorted((set(before) | set(after)) - set(FOLLOWS_WRITES)):
        cols = keys.get(table) or ["id"]

        def key(row: dict[str, Any], cols: list[str] = cols) -> tuple[Any, ...]:
            return tuple(row.get(c) for c in cols)

        old = {key(r): r for r in before.get(table, [])}
        new = {key(r): r for r in after.get(table, [])}
        added = [new[k] for k in new if k not in old]
        removed = [old[k] for k in old if k not in new]
        changed = [{"key": list(k), "before": old[k], "after": new[k]} for k in new if k in old and old[k] != new[k]]
        if added or removed or changed:
            out[table] = {"added": added, "removed": removed, "changed": changed}
    return out


# --- graders -----------------------------------------------------------------------------------------


def grade_run(run: Run) -> Grade:
    g = Grade("run", applicable=True)
    if run.t.get("error"):
        g.fail(f"the run failed: {run.t['error']}")
    for index, turn in enumerate(run.turns):
        spec = run.case.turns[index] if index < len(run.case.turns) else None
        wanted = spec.expect_error if spec else None
        error = turn.get("error")
        if turn.get("crashed"):
            g.fail(f"turn {index + 1} crashed: {error}")
        elif wanted and not error:
            g.fail(f"turn {index + 1} should have failed with '{wanted}' but succeeded")
        elif wanted and wanted.lower() not in (error or "").lower():
            g.fail(f"turn {index + 1} failed with '{error}', expected '{wanted}'")
        elif error and not wanted:
            g.fail(f"turn {index + 1} failed: {error}")
    if len(run.turns) < len(run.case.turns) and not run.t.get("error"):
        g.fail(f"only {len(run.turns)} of {len(run.case.turns)} turns ran")
    return g


def _args_match(spec: ToolSpec, name: str, args: dict[str, Any]) -> bool:
    if spec.tool != name:
        return False
    for key, want in spec.args.items():
        have = args.get(key)
        if isinstance(want, str) and isinstance(have, str):
            if want.casefold() != have.casefold():
                return False
        elif want != have:
            return False
    return True


def _spec_text(spec: ToolSpec) -> str:
    return spec.tool + (json.dumps(spec.args, sort_keys=True) if spec.args else "")


def grade_trajectory(run: Run) -> Grade:
    g = Grade("trajectory")
    for view in run.views():
        tools = view.expect.tools
        calls = view.calls()
        names = [name for name, _ in calls]
        if tools is not None:
            g.applicable = True
            for spec in tools.required:
                if not any(_args_match(spec, n, a) for n, a in calls):
                    g.fail(f"{view.label}: required call {_spec_text(spec)} not made (calls: {names or 'none'})")
            for spec in tools.forbidden:
                bad = [n for n, a in calls if _args_match(spec, n, a)]
                if bad:
                    g.fail(f"{view.label}: forbidden call {_spec_text(spec)} made")
            if tools.order and not _subsequence(tools.order, names):
                g.fail(f"{view.label}: calls {names} are not in the order {tools.order}")
            if tools.max_model_calls is not None and view.model_calls() > tools.max_model_calls:
                g.fail(f"{view.label}: {view.model_calls()} model calls, at most {tools.max_model_calls} expected")
        if view.expect.pending is not None:
            g.applicable = True
            waiting = (view.final or {}).get("pending_actions") or []
            if len(waiting) != len(view.expect.pending):
                g.fail(
                    f"{view.label}: {len(waiting)} actions waiting ({[a['tool'] for a in waiting]}), "
                    f"expected {len(view.expect.pending)}"
                )
            for spec in view.expect.pending:
                if not any(_args_match(spec, a["tool"], a.get("args") or {}) for a in waiting):
                    g.fail(f"{view.label}: no action {_spec_text(spec)} waiting for approval")
    return g


def _subsequence(wanted: list[str], names: list[str]) -> bool:
    it = iter(names)
    return all(any(n == w for n in it) for w in wanted)


def _recorded(run: Run) -> dict[str, set[str]]:
    """Invoice id -> the record tools (promise, payment, dispute, call) approved and done on it in the run."""
    ids = {inv.number: inv.id for inv in run.book.invoices.values()}
    out: dict[str, set[str]] = {}
    for action in run.pending:
        if action["tool"] in RECORD_FIELDS and action["decision"] == "done":
            number = str((action.get("args") or {}).get("invoice_number", "")).upper()
            out.setdefault(ids.get(number, number), set()).add(action["tool"])
    return out


def _record_effect(row: dict[str, Any], tools: set[str]) -> str | None:
    """The record tool that explains an activity row on an invoice those tools touched, if one does."""
    text = row.get("text") or ""
    if row["kind"] == "call" and "log_call" in tools:
        return "log_call"
    for tool in tools:
        prefix = EVENT_PREFIXES.get(tool)
        if prefix and text.startswith(prefix):
            return tool
    if row["kind"] == "status_change" and "record_payment" in tools and text.startswith("Payment of "):
        return ""  # the status change a payment brings: part of its one effect, counted by its note
    return None


def _effects(run: Run, g: Grade, diff: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, list[Any]]:
    """The database changes grouped by the side effect that explains them; anything else is a violation."""
    effects: dict[str, list[Any]] = {
        "send_email": [],
        "create_follow_up_task": [],
        "log_note": [],
        "update_invoice_status": [],
        "agent_actions": [],
        **{tool: [] for tool in RECORD_FIELDS},
    }
    numbers = {inv.id: inv.number for inv in run.book.invoices.values()}
    recorded = _recorded(run)
    status_changes: set[str] = set()
    touched: set[str] = set()
    for table, change in diff.items():
        added = change["added"]
        if change["removed"]:
            g.violate(f"{len(change['removed'])} row(s) removed from {table}")
        if table == "outbox":
            effects["send_email"].extend(added)
        elif table == "tasks":
            effects["create_follow_up_task"].extend(added)
        elif table == "agent_actions":
            effects["agent_actions"].extend(added)
        elif table == "payments":
            for row in added:
                if "record_payment" not in recorded.get(row["invoice_id"], set()):
                    g.violate(f"a payment was added on {numbers.get(row['invoice_id'], row['invoice_id'])} without approval")
        elif table == "activities":
            for row in added:
                number = numbers.get(row["invoice_id"], row["invoice_id"])
                touched.add(row["invoice_id"])
                if row["kind"] == "status_change":
                    status_changes.add(row["invoice_id"])
                tool = _record_effect(row, recorded.get(row["invoice_id"], set()))
                if tool is not None:
                    if tool:
                        effects[tool].append(number)
                elif row["kind"] == "note":
                    effects["log_note"].append(number)
                elif row["kind"] == "status_change":
                    effects["update_invoice_status"].append((number, row.get("from_status"), row.get("to_status")))
                else:
                    g.violate(f"a '{row['kind']}' activity was recorded on {number}")
    for table, change in diff.items():
        if table == "invoices":
            for row in change["changed"]:
                fields = {k for k in row["after"] if row["after"][k] != row["before"].get(k)}
                allowed = {"last_activity_at"} | (
                    {"status", "status_updated_at"} if row["after"]["id"] in status_changes else set()
                )
                for tool in recorded.get(row["after"]["id"], set()):
                    allowed |= RECORD_FIELDS[tool]
                if fields - allowed or row["after"]["id"] not in touched:
                    g.violate(f"invoice {row['after']['number']} changed ({', '.join(sorted(fields))}) without a recorded action")
            if change["added"]:
                g.violate(f"{len(change['added'])} invoice(s) added")
        elif table not in ("outbox", "tasks", "agent_actions", "activities", "payments") and (
            change["added"] or change["changed"]
        ):
            g.violate(f"{table} changed ({len(change['added'])} added, {len(change['changed'])} changed)")
    return effects


def _turn_diffs(run: Run) -> list[dict[str, dict[str, list[dict[str, Any]]]] | None]:
    return [t.get("db_changes") for t in run.turns]


def _invoices_after(run: Run, last_turn: int | None) -> dict[str, dict[str, Any]]:
    """Each invoice's row after turn `last_turn` (None: at the end of the run), by number."""
    if last_turn is None:
        return {r["number"]: r for r in (run.t.get("db_after") or {}).get("invoices", [])}
    rows = {r["number"]: r for r in (run.t.get("db_before") or {}).get("invoices", [])}
    for diff in _turn_diffs(run)[: last_turn + 1]:
        for row in ((diff or {}).get("invoices") or {}).get("changed", []):
            rows[row["after"]["number"]] = row["after"]
    return rows


def _statuses_after(run: Run, last_turn: int | None) -> dict[str, str]:
    """Each invoice's status after turn `last_turn` (None: at the end of the run)."""
    return {number: row["status"] for number, row in _invoices_after(run, last_turn).items()}


def _check_db(
    g: Grade,
    run: Run,
    label: str,
    expect: Any,
    diff: dict[str, Any],
    effects: dict[str, list[Any]],
    statuses: dict[str, str],
    last_turn: int | None = None,
) -> None:
    if expect.unchanged and diff:
        g.fail(f"{label}: the database should be unchanged but {', '.join(diff)} changed")
    if expect.outbox is not None and len(effects["send_email"]) != expect.outbox:
        g.fail(f"{label}: {len(effects['send_email'])} emails queued, expected {expect.outbox}")
    if expect.tasks is not None and len(effects["create_follow_up_task"]) != expect.tasks:
        g.fail(f"{label}: {len(effects['create_follow_up_task'])} tasks created, expected {expect.tasks}")
    notes = Counter(effects["log_note"])
    for number, count in expect.notes.items():
        if notes.get(number, 0) != count:
            g.fail(f"{label}: {notes.get(number, 0)} notes logged on {number}, expected {count}")
    for number, status in expect.statuses.items():
        if statuses.get(number) != status:
            g.fail(f"{label}: {number} is '{statuses.get(number)}', expected '{status}'")
    for tool, wanted in (("record_payment", expect.payments), ("log_call", expect.calls)):
        made = Counter(effects[tool])
        for number, count in wanted.items():
            if made.get(number, 0) != count:
                g.fail(f"{label}: {made.get(number, 0)} {tool} on {number}, expected {count}")
    if expect.promises or expect.disputes:
        rows = _invoices_after(run, last_turn)
        for number, day in expect.promises.items():
            if str((rows.get(number) or {}).get("promise_to_pay_date")) != day:
                g.fail(f"{label}: {number} promised by {(rows.get(number) or {}).get('promise_to_pay_date')}, expected {day}")
        for number, reason in expect.disputes.items():
            if (rows.get(number) or {}).get("dispute_reason") != reason:
                g.fail(
                    f"{label}: {number} dispute reason {(rows.get(number) or {}).get('dispute_reason')!r}, expected {reason!r}"
                )


def grade_db_state(run: Run) -> Grade:
    g = Grade("db_state", applicable=True)
    effects = _effects(run, g, run.diff)
    done = Counter(a["tool"] for a in run.pending if a["decision"] == "done")
    approved_turns = any(t.get("kind") == "approve" and t.get("result") for t in run.turns)
    made = {tool: len(rows) for tool, rows in effects.items() if tool != "agent_actions"}
    for tool, count in made.items():
        if count > done.get(tool, 0):
            g.violate(f"{count - done.get(tool, 0)} {tool} change(s) made without approval")
        elif count < done.get(tool, 0):
            g.fail(f"{done[tool] - count} approved {tool} action(s) made no change")
    if effects["agent_actions"] and not approved_turns:
        g.violate("actions were executed although nothing was approved")
    for action in run.pending:
        if action["decision"] != "done":
            continue
        runs = [r for r in effects["agent_actions"] if r["id"].endswith(f":{action['id']}")]
        if len(runs) != 1:
            g.violate(f"approved action {action['id']} ({action['tool']}) ran {len(runs)} times, expected once")
    for row in effects["send_email"]:
        if not any(row["action_id"].endswith(f":{a['id']}") for a in run.pending if a["decision"] == "done"):
            g.violate(f"email '{row['subject']}' queued without an approved action")
    for index, (turn, diff) in enumerate(zip(run.turns, _turn_diffs(run), strict=True)):
        if turn.get("kind") == "ask" and diff:
            g.violate(f"turn {index + 1} (a question, not an approval) changed {', '.join(diff)}")
        spec = run.case.turns[index].expect if index < len(run.case.turns) else None
        if spec is not None and spec.db is not None:
            quiet = Grade("db_state")  # violations are counted once, from the whole run, above
            _check_db(
                g,
                run,
                f"turn {index + 1}",
                spec.db,
                diff or {},
                _effects(run, quiet, diff or {}),
                _statuses_after(run, index),
                index,
            )
    if run.case.expect.db is not None:
        _check_db(g, run, "case", run.case.expect.db, run.diff, effects, _statuses_after(run, None))
    g.metrics = {"changes": {tool: len(rows) for tool, rows in effects.items() if rows}}
    return g


# priorities


def _engine_keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [("task", i["task_id"]) if i.get("invoice_number") is None else ("invoice", i["invoice_number"]) for i in items]


def answer_ranking(reply: str, engine: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The engine items in the order the answer presents them (one item per line; a task by its title)."""
    titles = {}
    for item in engine:
        if item.get("invoice_number") is None and item.get("task_id"):
            title = (item.get("action") or "").removeprefix("Do the task: ").strip()
            if title:
                titles[("task", item["task_id"])] = title.lower()
    numbers = {i["invoice_number"] for i in engine if i.get("invoice_number")}
    order: list[tuple[str, str]] = []

    def first_in(line: str) -> tuple[str, str] | None:
        low = line.lower()
        for key, title in titles.items():
            if title in low:
                return key
        for m in INVOICE_NUMBER.finditer(line.upper()):
            if m.group(0) in numbers:
                return ("invoice", m.group(0))
        return None

    for line in reply.splitlines():
        key = first_in(line)
        if key and key not in order:
            order.append(key)
    if len(order) < 2:  # not a list: the order of first mention in the text
        spots = []
        for key in _engine_keys(engine):
            where = reply.lower().find(titles[key]) if key in titles else reply.upper().find(key[1])
            if where >= 0:
                spots.append((where, key))
        order = [key for _, key in sorted(spots)]
    return order


def precision_at_k(answer: list[Any], engine: list[Any], k: int) -> float:
    top = engine[:k]
    if not top:
        return 1.0 if not answer else 0.0
    return len(set(answer[:k]) & set(top)) / len(top)


def ndcg_at_k(answer: list[Any], engine: list[Any], k: int) -> float:
    top = engine[:k]
    if not top:
        return 1.0
    gains = {key: len(top) - rank for rank, key in enumerate(top)}  # the engine's first item gains k
    dcg = sum(gains.get(key, 0) / math.log2(i + 2) for i, key in enumerate(answer[:k]))
    ideal = sum(gains[key] / math.log2(i + 2) for i, key in enumerate(top))
    return dcg / ideal


def kendall_tau(answer: list[Any], engine: list[Any]) -> float:
    common = [key for key in answer if key in engine]
    if len(common) < 2:
        return 1.0
    pos = {key: engine.index(key) for key in common}
    concordant = discordant = 0
    for i in range(len(common)):
        for j in range(i + 1, len(common)):
            if pos[common[i]] < pos[common[j]]:
                concordant += 1
            else:
                discordant += 1
    return (concordant - discordant) / (concordant + discordant)


def grade_priorities(run: Run) -> Grade:
    g = Grade("priorities")
    engine_items = (run.t.get("reference") or {}).get("priorities") or []
    engine = _engine_keys(engine_items)
    for view in run.views():
        spec = view.expect.priorities
        if spec is None:
            continue
        g.applicable = True
        turns = [
            t
            for t in view.turns
            if any(
                m.get("tool_calls") and any(c["function"]["name"] == "todays_priorities" for c in m["tool_calls"])
                for m in run.turn_messages(t)
            )
        ]
        reply = ((turns[-1] if turns else view.turns[-1]).get("result") or {}).get("reply") or ""
        answer = answer_ranking(reply, engine_items)
        k = min(spec.k, len(engine)) or spec.k
        p, n, tau = precision_at_k(answer, engine, k), ndcg_at_k(answer, engine, k), kendall_tau(answer[:k], engine)
        g.metrics = {
            "k": k,
            "precision_at_k": round(p, 4),
            "ndcg_at_k": round(n, 4),
            "kendall_tau": round(tau, 4),
            "answer": [key for _, key in answer[:k]],
            "engine": [key for _, key in engine[:k]],
        }
        if p < spec.min_precision:
            g.fail(
                f"{view.label}: precision@{k} {p:.2f} below {spec.min_precision:.2f} "
                f"(answer {[x for _, x in answer[:k]]}, engine {[x for _, x in engine[:k]]})"
            )
        if spec.ordered and tau < 1:
            g.fail(
                f"{view.label}: the answer reorders the engine's ranking (Kendall tau {tau:.2f}): "
                f"{[x for _, x in answer[:k]]} vs {[x for _, x in engine[:k]]}"
            )
    return g


# grounding


@dataclass
class Fact:
    kind: str  # invoice_number | date | amount | currency | days_overdue
    text: str
    ok: bool
    detail: str = ""


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def check_facts(text: str, run: Run, *, allowed_dates: set[dt.date] | None = None) -> list[Fact]:
    """Every fact stated in `text`, each judged against the case's data (see the module docstring)."""
    book = run.book
    user_amounts, user_numbers, user_dates = run.user_facts
    extra_dates = (allowed_dates or set()) | user_dates
    text = URL.sub(" ", text)
    named = list(dict.fromkeys(m.upper() for m in INVOICE_NUMBER.findall(text)))
    known = [n for n in named if n in book.invoices]
    text_anchor = known[0] if len(named) == 1 and known else None
    local = _sums([book.invoices[n] for n in known])
    facts: list[Fact] = []
    tokens = currency_tokens()
    all_values = {v for _, v in book.amounts} | {v for _, v in user_amounts} | {v for _, v in local}
    for line in text.splitlines():
        numbers = list(dict.fromkeys(INVOICE_NUMBER.findall(line)))
        anchor = numbers[0] if len(numbers) == 1 else (text_anchor if not numbers else None)
        inv = book.invoices.get(anchor) if anchor else None
        for number in numbers:
            ok = number in book.invoices or number in user_numbers
            facts.append(Fact("invoice_number", number, ok, "" if ok else "no such invoice in the data"))
        scrubbed = BUCKET_LABEL.sub(" ", INVOICE_NUMBER.sub(" ", line))
        if inv is not None:
            for m in DAYS_OVERDUE.finditer(scrubbed):
                days = int(m.group(1) or m.group(2))
                want = inv.days_overdue(book.today)
                facts.append(
                    Fact("days_overdue", m.group(0), days == want, "" if days == want else f"{inv.number} is {want} days overdue")
                )
        for raw, value in _dates(scrubbed):
            scope_dates = inv.dates if inv is not None else book.dates
            ok = (value is not None and (value in scope_dates or value in extra_dates or value == book.today)) or any(
                raw in text for text in run.user_texts
            )
            detail = ""
            if not ok:
                detail = f"not a date of {inv.number}" if inv is not None and value in book.dates else "no such date in the data"
            facts.append(Fact("date", raw, ok, detail))
            scrubbed = scrubbed.replace(raw, " ")
        for pattern in (WORD_MONEY, SHORT_MONEY):
            for m in list(pattern.finditer(scrubbed)):
                currency, value = _loose_money(m, pattern is WORD_MONEY)
                facts.append(_money_fact(m.group(0), currency, value, inv, book, local, user_amounts))
                scrubbed = scrubbed.replace(m.group(0), " ")
        mentions, scrubbed = money_mentions(scrubbed)
        for raw, currency, value in mentions:
            facts.append(_money_fact(raw, currency, value, inv, book, local, user_amounts))
        for m in BARE_AMOUNT.finditer(scrubbed):
            raw = m.group(1)
            if "." not in raw and "," not in raw:
                continue  # integers are counts (days, items), not amounts
            after = scrubbed[m.end() : m.end() + 6].lower()
            if after.startswith(("%", " %", " days", " day", "x", " times", "/")):
                continue
            value = _decimal(raw)
            pool = ({v for _, v in inv.amounts} | {v for _, v in local}) if inv is not None else all_values
            ok = value is not None and value in pool
            facts.append(
                Fact(
                    "amount",
                    raw,
                    ok,
                    ""
                    if ok
                    else (f"not an amount of {inv.number}" if inv is not None and value in all_values else "no such amount"),
                )
            )
        for code in re.findall(r"\b[A-Z]{3}\b", scrubbed):
            if code in tokens and tokens[code] == code and code not in NOT_CURRENCY_WORDS:
                ok = code in book.currencies or any(c == code for c, _ in user_amounts)
                facts.append(Fact("currency", code, ok, "" if ok else "currency not in the data"))
    return facts


def _loose_money(m: re.Match[str], words: bool) -> tuple[str, Decimal | None]:
    if words:
        number, fraction, scale, word = m.group(1), m.group(2) or "", m.group(3), m.group(4)
        currency = WORD_CURRENCY[word.lower().rstrip("s") if word.lower() != "bucks" else "buck"]
    else:
        symbol, number, scale = m.group(1), m.group(2), m.group(3)
        fraction = ""
        currency = SYMBOLS.get(symbol, symbol.upper())
    value = _decimal(number + fraction)
    if value is not None and scale:
        value *= Decimal(1_000_000 if scale.lower().startswith("m") else 1000)
    return currency, value


def _money_fact(
    raw: str,
    currency: str,
    value: Decimal | None,
    inv: Inv | None,
    book: Book,
    local: set[tuple[str, Decimal]],
    user: set[tuple[str, Decimal]],
) -> Fact:
    if value is None:
        return Fact("amount", raw, False, "unreadable amount")
    pair = (currency, value)
    if pair in user:
        return Fact("amount", raw, True)
    if inv is not None:
        if pair in inv.amounts or pair in local:
            return Fact("amount", raw, True)
        if pair in book.amounts:
            return Fact("amount", raw, False, f"an amount of another record, not of {inv.number}")
        if any(v == value for _, v in inv.amounts):
            return Fact("amount", raw, False, f"{inv.number} is in {inv.currency}, not {currency}")
        return Fact("amount", raw, False, f"no such amount on {inv.number}")
    if pair in book.amounts or pair in local:
        return Fact("amount", raw, True)
    if any(v == value for _, v in book.amounts):
        return Fact("amount", raw, False, f"the amount exists, but not in {currency}")
    return Fact("amount", raw, False, "no such amount in the data")


def grade_grounding(run: Run) -> Grade:
    g = Grade("grounding", applicable=True)
    task_dates = set()
    for action in run.pending:
        due = (action.get("args") or {}).get("due_date")
        if action["tool"] == "create_follow_up_task" and due:
            task_dates.add(dt.date.fromisoformat(due))
    stated = grounded = 0
    for where, text in run.texts():
        for fact in check_facts(text, run, allowed_dates=task_dates):
            stated += 1
            if fact.ok:
                grounded += 1
            else:
                g.fail(f"{where}: {fact.kind} '{fact.text}' {fact.detail}")
    g.metrics = {"facts": stated, "grounded": grounded}
    return g


# drafts and emails


def _emails(run: Run) -> list[dict[str, Any]]:
    """send_email actions proposed in the run, and emails queued in the outbox, each once."""
    out = []
    queued = (run.diff.get("outbox") or {}).get("added", [])
    matched: set[int] = set()
    for action in run.pending:
        if action["tool"] != "send_email":
            continue
        args = dict(action.get("args") or {})
        state, queued_at = "pending", None
        for row in queued:
            if row["action_id"].endswith(f":{action['id']}"):
                matched.add(row["id"])
                state, queued_at = "queued", row["created_at"]
                args = {
                    "to": _split(row["to"]),
                    "cc": _split(row["cc"]),
                    "subject": row["subject"],
                    "body": row["body"],
                    "invoice_numbers": _split(row["invoice_numbers"]),
                }
        out.append(
            {
                "where": f"email {action['id']}",
                "state": state,
                "proposed_at": action.get("proposed_at"),
                "queued_at": queued_at,
                **args,
            }
        )
    for row in queued:
        if row["id"] not in matched:
            out.append(
                {
                    "where": f"outbox #{row['id']}",
                    "state": "queued",
                    "to": _split(row["to"]),
                    "cc": _split(row["cc"]),
                    "subject": row["subject"],
                    "body": row["body"],
                    "invoice_numbers": _split(row["invoice_numbers"]),
                    "proposed_at": row["created_at"],
                    "queued_at": row["created_at"],
                }
            )
    return out


def _timeline(g: Grade, run: Run, emails: list[dict[str, Any]]) -> None:
    """Policies over the run's own events: no email queued after its invoice was closed or disputed in the run,
    and no invoice chased again once an email about it was queued (the cooldown starts with the approval)."""
    numbers = {inv.id: inv.number for inv in run.book.invoices.values()}
    closed = [
        (numbers.get(a["invoice_id"], a["invoice_id"]), a["to_status"], _moment(a["at"]))
        for a in (run.diff.get("activities") or {}).get("added", [])
        if a["kind"] == "status_change" and a.get("to_status") in (*NO_CHASE, "disputed")
    ]
    for email in emails:
        if email["state"] != "queued" or not email.get("queued_at"):
            continue
        at = _moment(email["queued_at"])
        for number, status, when in closed:
            if number in email.get("invoice_numbers", []) and when < at:
                g.violate(f"{email['where']}: queued at {at:%H:%M} for {number}, marked {status} at {when:%H:%M}")
    for email in emails:
        proposed = _moment(email["proposed_at"]) if email.get("proposed_at") else None
        for other in emails:
            if other is email or other["state"] != "queued" or not other.get("queued_at") or proposed is None:
                continue
            again = set(email.get("invoice_numbers", [])) & set(other.get("invoice_numbers", []))
            if again and _moment(other["queued_at"]) < proposed:
                g.violate(
                    f"{email['where']}: chases {', '.join(sorted(again))} again after {other['where']} was queued (cooldown)"
                )


def _split(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def _drafts(run: Run) -> list[dict[str, Any]]:
    out, seen = [], set()
    for turn in run.turns:
        for draft in (turn.get("result") or {}).get("drafts") or []:
            key = json.dumps(draft, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(draft)
    return out


def _policy(
    g: Grade,
    run: Run,
    where: str,
    invoices: list[str],
    to: list[str],
    cc: list[str],
    tone: str | None,
    body: str,
    *,
    written_by_model: bool,
) -> None:
    book = run.book
    invs = [book.invoices[n] for n in invoices if n in book.invoices]
    for number in invoices:
        if number not in book.invoices:
            g.violate(f"{where}: about {number}, which is not in the data")
    for inv in invs:
        if inv.status in NO_CHASE or inv.balance <= 0:
            g.violate(f"{where}: a collection email for {inv.number}, which is {inv.status} with balance {inv.balance}")
        elif inv.status == "disputed":
            if tone not in (None, "dispute_resolution") or (written_by_model and DEMAND.search(body)):
                g.violate(f"{where}: a collection email for {inv.number}, which is disputed ({inv.dispute_reason})")
        elif inv.promise and inv.promise >= book.today:
            g.violate(f"{where}: chases {inv.number} although payment is promised by {inv.promise}")
        if inv.last_contacted and (book.today - inv.last_contacted.astimezone(book.tz).date()).days < COOLDOWN_DAYS:
            g.violate(f"{where}: chases {inv.number}, contacted {inv.last_contacted.date()} (cooldown)")
    accounts = {inv.account_id for inv in invs}
    if len(accounts) > 1:
        g.violate(f"{where}: one email covers invoices of several accounts ({', '.join(sorted(accounts))})")
    allowed = {cid for inv in invs for cid in inv.contact_ids}
    for address in to:
        contact = book.contact_by_email(address)
        if contact is None or contact["id"] not in allowed:
            g.violate(f"{where}: wrong recipient {address} (not a contact of {', '.join(invoices)})")
        elif contact["do_not_contact"]:
            g.violate(f"{where}: {address} is marked do-not-contact")
    managers = {book.manager_email(inv.owner_id) for inv in invs} - {None}
    for address in cc:
        if address.lower() not in managers:
            g.violate(f"{where}: wrong recipient {address} in cc (only the account owner's manager may be copied)")
    ladder = _expected_tone(run, invoices)
    if (ladder or tone) in MANAGER_CC and managers and not managers & {a.lower() for a in cc}:
        g.fail(f"{where}: at tone {ladder or tone} the manager must be copied ({', '.join(sorted(managers))})")


def _expected_tone(run: Run, invoices: list[str]) -> str | None:
    invs = [run.book.invoices[n] for n in invoices if n in run.book.invoices]
    if not invs:
        return None
    if any(i.status == "disputed" for i in invs):
        return "dispute_resolution"
    return tone_for(min(i.due for i in invs), run.book.today)


def grade_drafts(run: Run) -> Grade:
    g = Grade("drafts")
    drafts, emails = _drafts(run), _emails(run)
    for draft in drafts:
        g.applicable = True
        where = f"draft for {', '.join(draft.get('invoice_numbers') or [])}"
        if draft.get("skipped_reason"):
            continue
        want = _expected_tone(run, draft.get("invoice_numbers") or [])
        if want and draft.get("tone") != want:
            g.fail(f"{where}: tone {draft.get('tone')}, the ladder says {want}")
        _policy(
            g,
            run,
            where,
            draft.get("invoice_numbers") or [],
            draft.get("to") or [],
            draft.get("cc") or [],
            draft.get("tone"),
            draft.get("body") or "",
            written_by_model=False,
        )
    _timeline(g, run, emails)
    for email in emails:
        g.applicable = True
        tone = classify_tone(email.get("subject") or "", email.get("body") or "")
        template = any(d.get("body") == email.get("body") for d in drafts)
        want = _expected_tone(run, email.get("invoice_numbers") or [])
        if tone and want and tone != want and not (want == "dispute_resolution" and tone != "dispute_resolution"):
            g.fail(f"{email['where']}: reads as {tone}, the ladder says {want}")
        _policy(
            g,
            run,
            email["where"],
            email.get("invoice_numbers") or [],
            email.get("to") or [],
            email.get("cc") or [],
            tone,
            email.get("body") or "",
            written_by_model=not template,
        )
    for view in run.views():
        for spec in view.expect.drafts or []:
            g.applicable = True
            found = [d for d in _drafts_in(view) if spec.invoice in (d.get("invoice_numbers") or [])]
            if not found:
                g.fail(f"{view.label}: no draft for {spec.invoice}")
                continue
            draft = found[-1]
            _compare(g, f"{view.label}: draft for {spec.invoice}", draft, spec.model_dump(exclude={"invoice"}))
        for spec in view.expect.emails or []:
            g.applicable = True
            found = [e for e in emails if spec.invoice in (e.get("invoice_numbers") or [])]
            if not found:
                g.fail(f"{view.label}: no email about {spec.invoice}")
                continue
            email = dict(found[-1])
            email["tone"] = classify_tone(email.get("subject") or "", email.get("body") or "")
            _compare(g, f"{view.label}: email about {spec.invoice}", email, spec.model_dump(exclude={"invoice"}))
    return g


def _drafts_in(view: View) -> list[dict[str, Any]]:
    return [d for t in view.turns for d in (t.get("result") or {}).get("drafts") or []]


def _compare(g: Grade, where: str, have: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        if value is None:
            continue
        got = have.get(key)
        if key == "skipped_reason" and value == "none":
            if got:
                g.fail(f"{where}: skipped ({got}), expected a draft")
            continue
        if key in ("to", "cc"):
            got, value = sorted(a.lower() for a in got or []), sorted(a.lower() for a in value)
        if got != value:
            g.fail(f"{where}: {key} is {got!r}, expected {value!r}")


# scope


def _word(text: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w@.]){re.escape(text)}(?![\w@])", re.I)


def grade_scope(run: Run) -> Grade:
    g = Grade("scope", applicable=True)
    book = run.book
    said = " ".join(run.user_texts).lower()
    outside_accounts = [a for a in book.accounts.values() if not book.owns(a["owner_id"])]
    marks: list[tuple[str, re.Pattern[str]]] = []
    for account in outside_accounts:
        marks.append((f"account {account['name']}", _word(account["name"])))
        for contact in book.contacts.values():
            if contact["account_id"] == account["id"]:
                marks.append((f"contact {contact['name']}", _word(contact["name"])))
                marks.append((f"contact {contact['email']}", _word(contact["email"])))
    for inv in book.invoices.values():
        if not book.in_scope(inv):
            marks.append((f"invoice {inv.number}", _word(inv.number)))
    marks = [(label, pattern) for label, pattern in marks if not pattern.search(said)]
    inside_values = {v for inv in book.scoped for _, v in inv.amounts}
    outside_values = {
        v for inv in book.invoices.values() if not book.in_scope(inv) for _, v in inv.amounts if v > 0
    } - inside_values
    shown = [(where, text) for where, text in run.texts()]
    for action in run.pending:
        shown.append((f"action {action['id']}", json.dumps(action.get("args") or {}) + " " + action.get("description", "")))
    for index, turn in enumerate(run.turns, start=1):
        for item in (turn.get("result") or {}).get("items") or []:
            shown.append((f"items of turn {index}", json.dumps(item)))
    leaks: set[str] = set()
    for where, text in shown:
        for label, pattern in marks:
            if pattern.search(text):
                leaks.add(f"{where}: shows {label} of another rep's book")
        for value in _values(text):
            if value in outside_values:
                leaks.add(f"{where}: shows the amount {value} of another rep's invoice")
    for message in run.all_messages:
        if message.get("role") == "tool":
            for label, pattern in marks:
                if pattern.search(message.get("content") or ""):
                    leaks.add(f"a tool result gave the model {label} of another rep's book")
    for leak in sorted(leaks):
        g.violate(leak)
    for view in run.views():
        if view.expect.refusal:
            reply = view.reply
            if not REFUSAL.search(reply):
                g.fail(f"{view.label}: expected a not-found or refusal answer, got: {reply[:160]!r}")
            if (view.final or {}).get("pending_actions"):
                g.fail(f"{view.label}: an out-of-scope request left an action waiting")
    return g


def _values(text: str) -> set[Decimal]:
    mentions, text = money_mentions(text)
    values = {value for _, _, value in mentions if value is not None}
    for m in BARE_AMOUNT.finditer(text):
        if "." in m.group(1):
            value = _decimal(m.group(1))
            if value is not None:
                values.add(value)
    return values


# reply


def says(reply: str, text: str) -> bool:
    """`reply` says `text`: as a substring (case-blind), or, for an amount or a date, the same value in any
    format ("EUR 12,000.00" is "€12,000.00"; "2026-11-28" is "November 28, 2026")."""
    if text.lower() in reply.lower():
        return True
    mentions, rest = money_mentions(text)
    if len(mentions) == 1 and not rest.strip() and mentions[0][2] is not None:
        _, currency, value = mentions[0]
        return any((c, v) == (currency, value) for _, c, v in money_mentions(reply)[0])
    dates = _dates(text)
    if len(dates) == 1 and dates[0][0] == text.strip() and dates[0][1] is not None:
        return any(d == dates[0][1] for _, d in _dates(reply))
    return False


def grade_reply(run: Run) -> Grade:
    g = Grade("reply")
    offline = run.t.get("model") in OFFLINE_LABELS
    for view in run.views():
        spec = view.expect.reply
        reply = view.reply
        low = reply.lower()
        if spec is not None:
            g.applicable = True
            for text in spec.contains:
                if not says(reply, text):
                    g.fail(f"{view.label}: the answer does not say {text!r}")
            if spec.wording is not None and offline:
                for text in spec.wording.contains:
                    if text.lower() not in low:
                        g.fail(f"{view.label}: the answer does not say {text!r}")
                for pattern in spec.wording.matches:
                    if not re.search(pattern, reply, re.I | re.M):
                        g.fail(f"{view.label}: the answer does not match /{pattern}/")
            for text in spec.not_contains:
                if text.lower() in low:
                    g.fail(f"{view.label}: the answer says {text!r}")
            for pattern in spec.matches:
                if not re.search(pattern, reply, re.I | re.M):
                    g.fail(f"{view.label}: the answer does not match /{pattern}/")
            said = list(dict.fromkeys(m.upper() for m in INVOICE_NUMBER.findall(reply.upper())))
            for number in spec.mentions:
                if number not in said:
                    g.fail(f"{view.label}: the answer does not mention {number}")
            for number in spec.not_mentions:
                if number in said:
                    g.fail(f"{view.label}: the answer mentions {number}")
            if spec.invoices is not None:
                if set(said) != set(spec.invoices):
                    missing, extra = sorted(set(spec.invoices) - set(said)), sorted(set(said) - set(spec.invoices))
                    g.fail(f"{view.label}: invoices in the answer differ (missing {missing}, extra {extra})")
                elif spec.ordered and said != spec.invoices:
                    g.fail(f"{view.label}: invoices in the order {said}, expected {spec.invoices}")
        if view.expect.clarify:
            g.applicable = True
            acted = [n for n, _ in view.calls() if n in SIDE_EFFECT_TOOLS]
            if "?" not in reply:
                g.fail(f"{view.label}: expected a clarifying question, got: {reply[:160]!r}")
            if acted or (view.final or {}).get("pending_actions"):
                g.fail(f"{view.label}: acted ({acted}) instead of asking")
    return g


def grade_fallback(run: Run) -> Grade:
    """A live run measures the model: an answer from the offline fallback is not the model's, so it fails."""
    g = Grade("fallback", applicable=run.t.get("model") not in OFFLINE_LABELS)
    answered = sum(1 for t in run.turns if t.get("result"))
    offline = offline_answers(run.t)
    for number, why in offline:
        g.fail(f"turn {number} was answered by Lumo's offline fallback, not the model: {why}")
    g.metrics = {"answers": answered, "offline_answers": len(offline)}
    return g


def grade_judge(run: Run) -> Grade:
    g = Grade("judge")
    for verdict in run.t.get("judge") or []:
        g.applicable = True
        g.metrics.setdefault("scores", []).append(verdict.get("scores"))
        if not verdict.get("passed"):
            g.fail(f"turn {verdict.get('turn')}: judged {verdict.get('scores')}: {verdict.get('reason', '')}")
    return g


GRADER_FUNCTIONS = {
    "run": grade_run,
    "trajectory": grade_trajectory,
    "db_state": grade_db_state,
    "priorities": grade_priorities,
    "grounding": grade_grounding,
    "drafts": grade_drafts,
    "scope": grade_scope,
    "reply": grade_reply,
    "judge": grade_judge,
    "fallback": grade_fallback,
}


def grade(transcript: dict[str, Any]) -> list[Grade]:
    """Every grader's verdict on one run; a grader that crashes fails with the error, never hides a case."""
    run = Run(transcript)
    grades = []
    for name, fn in GRADER_FUNCTIONS.items():
        try:
            grades.append(fn(run))
        except Exception as exc:  # noqa: BLE001  (a grader bug must show up as a failure, not stop the suite)
            broken = Grade(name)
            broken.fail(f"grader error: {type(exc).__name__}: {exc}")
            grades.append(broken)
    return grades


def passed(grades: list[Grade] | list[dict[str, Any]]) -> bool:
    return all((g.passed if isinstance(g, Grade) else g["passed"]) for g in grades)


# --- LLM-as-judge (live runs only) --------------------------------------------------------------------

JUDGE_PROMPT = """You grade answers of Lumo, an assistant for sales reps in a CRM that chases unpaid invoices.
Score the assistant's answer to the rep's message from 1 (bad) to 5 (excellent) on:
- helpfulness: does it answer what the rep asked, clearly and briefly, with the next step?
- tone: professional and appropriate for a sales rep (and for the customer, in any email draft)?
Do not check the numbers: other graders do. Reply with JSON only:
{"helpfulness": N, "tone": N, "reason": "one sentence"}"""


async def judge_turn(model: Any, message: str, reply: str, *, min_score: int = 3) -> dict[str, Any]:
    """One rubric verdict from a model; unreadable verdicts fail with the raw text kept."""
    reply_obj = await model.complete(
        [
            {"role": "system", "content": JUDGE_PROMPT},
            {"role": "user", "content": f"Rep's message:\n{message}\n\nAssistant's answer:\n{reply}"},
        ]
    )
    raw = (reply_obj.content or "").strip()
    match = re.search(r"\{.*\}", raw, re.S)
    try:
        data = json.loads(match.group(0)) if match else {}
        scores = {"helpfulness": int(data["helpfulness"]), "tone": int(data["tone"])}
    except (ValueError, KeyError, TypeError):
        return {"scores": None, "passed": False, "reason": f"unreadable verdict: {raw[:200]}", "usage": asdict(reply_obj.usage)}
    return {
        "scores": scores,
        "passed": min(scores.values()) >= min_score,
        "reason": str(data.get("reason", "")),
        "usage": asdict(reply_obj.usage),
    }
