"""The phrasing suite: how well the offline understanding reads what reps type (evals/phrasings/*.yaml).

Each phrasing is read by `lumo.agent.understand` against the names of a real book (the eval book, or a demo
seed) as its user, with the thread's focus it gives; the intent and the slots of the calls are compared with
the expected ones. No model and no tool runs, so the whole suite takes seconds.

    .venv/bin/python -m evals phrasings [--min 0.95]

Figures: intent accuracy, slot accuracy (each expected or produced slot right), phrasings fully right, and
help-text answers to a question the tools can serve (the target is none).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from evals.data import expand, load_into, load_scenario
from lumo.agent.classify import READ_INTENTS
from lumo.agent.focus import Focus
from lumo.agent.understand import understand
from lumo.crm.book import BookNames, book_names
from lumo.crm.scope import scope_for_email
from lumo.db.models import Base
from lumo.db.session import make_engine, make_sessionmaker
from lumo.demo.seed import seed_demo

PHRASINGS_DIR = Path(__file__).parent / "phrasings"
SLOT_KEYS = (
    "account",
    "bucket",
    "currency",
    "min_days_overdue",
    "in_base_currency",
    "min_balance",
    "invoice_number",
    "status",
    "rep",
    "due_by",
    "since",
    "kind",
    "due_date",
    "line_id",
)
HELP_TEXT = frozenset({"help", "unknown"})


@dataclass(frozen=True)
class Phrasing:
    file: str
    say: str
    intent: str
    slots: dict[str, Any]
    user: str
    today: dt.date
    calls: int | None = None
    focus: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    phrasing: Phrasing
    intent: str
    slots: dict[str, Any]
    calls: int

    @property
    def intent_ok(self) -> bool:
        return self.intent == self.phrasing.intent

    def slot_marks(self) -> tuple[int, int]:
        """(right, counted) over the union of expected and produced slots, and the number of calls if given."""
        keys = set(self.phrasing.slots) | set(self.slots)
        right = sum(1 for k in keys if self.phrasing.slots.get(k) == self.slots.get(k))
        if self.phrasing.calls is not None:
            return right + (self.calls == self.phrasing.calls), len(keys) + 1
        return right, len(keys)

    @property
    def ok(self) -> bool:
        right, counted = self.slot_marks()
        return self.intent_ok and right == counted

    @property
    def help_text_for_a_servable_question(self) -> bool:
        return self.intent in HELP_TEXT and self.phrasing.intent not in HELP_TEXT


@dataclass
class Figures:
    outcomes: list[Outcome]

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def intent_accuracy(self) -> float:
        return sum(o.intent_ok for o in self.outcomes) / max(self.total, 1)

    @property
    def slot_accuracy(self) -> float:
        marks = [o.slot_marks() for o in self.outcomes]
        return sum(r for r, _ in marks) / max(sum(c for _, c in marks), 1)

    @property
    def exact(self) -> float:
        return sum(o.ok for o in self.outcomes) / max(self.total, 1)

    @property
    def help_answers(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.help_text_for_a_servable_question]

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def summary(self) -> str:
        return (
            f"{self.total} phrasings: intent {self.intent_accuracy:.1%}, slots {self.slot_accuracy:.1%}, "
            f"fully right {self.exact:.1%}, help-text answers to servable questions {len(self.help_answers)}"
        )


def load_phrasings(directory: Path = PHRASINGS_DIR) -> tuple[list[Phrasing], dict[str, str]]:
    """Every phrasing, and the book each file is read against."""
    out: list[Phrasing] = []
    books: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        books[path.name] = str(raw["book"])
        today = dt.date.fromisoformat(str(raw["date"]))
        for entry in raw["phrasings"]:
            if isinstance(entry, list):
                say, intent, slots = entry
                entry = {"say": say, "intent": intent, "slots": slots}
            out.append(
                Phrasing(
                    file=path.name,
                    say=str(entry["say"]),
                    intent=str(entry["intent"]),
                    slots=dict(entry.get("slots") or {}),
                    user=str(entry.get("user") or raw["user"]),
                    today=today,
                    calls=entry.get("calls"),
                    focus=dict(entry.get("focus") or {}),
                )
            )
    return out, books


def _engine(directory: Path, name: str) -> Engine:
    engine = make_engine(f"sqlite:///{directory / name}.db")
    Base.metadata.create_all(engine)
    return engine


def _book_engine(directory: Path, book: str, today: dt.date) -> Engine:
    engine = _engine(directory, book)
    if book == "demo":
        seed_demo(engine, today=today)
    else:
        load_into(engine, expand(load_scenario(book), today))
    return engine


def run(directory: Path = PHRASINGS_DIR) -> Figures:
    phrasings, books = load_phrasings(directory)
    names: dict[tuple[str, str], BookNames] = {}
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        engines: dict[str, Engine] = {}
        for p in phrasings:
            book = books[p.file]
            if book not in engines:
                engines[book] = _book_engine(Path(tmp), book, p.today)
            key = (book, p.user)
            if key not in names:
                with make_sessionmaker(engines[book])() as session:
                    names[key] = book_names(session, scope_for_email(session, p.user))
            intent = understand(p.say, p.today, names[key], Focus.of(p.focus))
            first = intent.calls[0][1] if intent.calls else {}
            slots = {k: first[k] for k in SLOT_KEYS if k in first and first[k] not in (None, False)}
            outcomes.append(Outcome(p, intent.name, slots, len(intent.calls)))
        for engine in engines.values():
            engine.dispose()
    return Figures(outcomes)


def report(figures: Figures) -> str:
    lines = [figures.summary()]
    for o in figures.failures():
        lines.append(
            f"  {o.phrasing.file}: {o.phrasing.say!r}: got {o.intent} {o.slots} ({o.calls} calls), "
            f"expected {o.phrasing.intent} {o.phrasing.slots}" + (f" ({o.phrasing.calls} calls)" if o.phrasing.calls else "")
        )
    return "\n".join(lines)


def examples(directory: Path = PHRASINGS_DIR) -> str:
    """The training file of the fallback classifier (lumo/agent/intent_examples.tsv): the read phrasings of
    every file but the held-out ones, without thread context, as `intent<TAB>phrasing` lines."""
    phrasings, _ = load_phrasings(directory)
    lines = [
        f"{p.intent}\t{p.say}"
        for p in phrasings
        if not p.file.startswith("heldout") and not p.focus and p.intent in READ_INTENTS and "\t" not in p.say
    ]
    return "\n".join(lines) + "\n"
