"""Eval cases: what each one loads, says and expects, read from `evals/cases/*.yaml` and validated.

A case file holds one group of cases:

    group: drafting
    description: what the group tests
    defaults: {data: {scenario: book}, date: 2026-11-25, user: dana@acme.test}
    cases:
      - name: draft-firm
        turns:
          - ask: Draft a reminder for INV-1042
        expect:
          drafts: [{invoice: INV-1042, tone: firm, to: [hank@globex.test], cc: []}]

Unknown keys are errors, so a typo in an expectation never silently checks nothing.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

EVALS_DIR = Path(__file__).parent
CASES_DIR = EVALS_DIR / "cases"
SCENARIOS_DIR = EVALS_DIR / "scenarios"
TONES = ("courtesy", "gentle", "firm", "escalation", "final_notice", "dispute_resolution")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolSpec(Model):
    """A tool call: its name and, optionally, arguments it must have (a subset, strings compared case-blind)."""

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"tool": value} if isinstance(value, str) else value


class ToolsExpect(Model):
    required: list[ToolSpec] = Field(default_factory=list)
    forbidden: list[ToolSpec] = Field(default_factory=list)
    order: list[str] = Field(default_factory=list)  # these tools called in this order (a subsequence)
    max_model_calls: int | None = None


class DbExpect(Model):
    """The database after the run. Unset counts are not checked; unapproved changes always fail."""

    unchanged: bool = False
    outbox: int | None = None  # emails queued
    tasks: int | None = None  # tasks created
    notes: dict[str, int] = Field(default_factory=dict)  # invoice number -> notes added
    statuses: dict[str, str] = Field(default_factory=dict)  # invoice number -> status at the end
    promises: dict[str, str] = Field(default_factory=dict)  # invoice number -> promise-to-pay date at the end
    disputes: dict[str, str | None] = Field(default_factory=dict)  # invoice number -> dispute reason at the end
    payments: dict[str, int] = Field(default_factory=dict)  # invoice number -> payments recorded
    calls: dict[str, int] = Field(default_factory=dict)  # invoice number -> calls logged

    @field_validator("promises", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        """YAML reads 2026-12-20 as a date: compare it as text."""
        return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="before")
    @classmethod
    def _from_word(cls, value: Any) -> Any:
        return {"unchanged": True} if value == "unchanged" else value


class PrioritiesExpect(Model):
    k: int = Field(default=5, ge=1)
    min_precision: float = Field(default=1.0, ge=0, le=1)
    ordered: bool = True  # the answer keeps the engine's order


class DraftExpect(Model):
    """The draft (from draft_followup_email) whose invoice_numbers include `invoice`."""

    invoice: str
    invoice_numbers: list[str] | None = None
    tone: str | None = None
    to: list[str] | None = None
    cc: list[str] | None = None
    skipped_reason: str | None = None  # the reason, or "none" for a draft that must not be skipped

    @field_validator("tone")
    @classmethod
    def _known_tone(cls, tone: str | None) -> str | None:
        if tone is not None and tone not in TONES:
            raise ValueError(f"unknown tone {tone!r}: use one of {', '.join(TONES)}")
        return tone


class EmailExpect(Model):
    """A send_email action (proposed or queued) whose invoice_numbers include `invoice`."""

    invoice: str
    invoice_numbers: list[str] | None = None
    tone: str | None = None
    to: list[str] | None = None
    cc: list[str] | None = None
    state: Literal["pending", "queued"] | None = None


class WordingExpect(Model):
    """The offline model's exact phrasing: checked when the offline model answers, not when a live one does."""

    contains: list[str] = Field(default_factory=list)
    matches: list[str] = Field(default_factory=list)

    @field_validator("contains", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [v.isoformat() if isinstance(v, dt.date) else v if isinstance(v, str) else str(v) for v in value]
        return value


class ReplyExpect(Model):
    contains: list[str] = Field(default_factory=list)  # substrings, case-blind (an amount or date: in any format)
    not_contains: list[str] = Field(default_factory=list)
    matches: list[str] = Field(default_factory=list)  # regular expressions, case-blind
    mentions: list[str] = Field(default_factory=list)  # invoice numbers that must appear
    not_mentions: list[str] = Field(default_factory=list)
    invoices: list[str] | None = None  # exactly these invoice numbers appear
    ordered: bool = False  # with `invoices`: first mentioned in this order
    wording: WordingExpect | None = None  # the offline model's phrasing (offline runs only)

    @field_validator("contains", "not_contains", "mentions", "not_mentions", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        """YAML reads 2026-11-28 as a date: every item is meant as text."""
        if isinstance(value, list):
            return [v.isoformat() if isinstance(v, dt.date) else v if isinstance(v, str) else str(v) for v in value]
        return value


class Expect(Model):
    tools: ToolsExpect | None = None
    db: DbExpect | None = None
    priorities: PrioritiesExpect | None = None
    drafts: list[DraftExpect] | None = None
    emails: list[EmailExpect] | None = None
    pending: list[ToolSpec] | None = None  # exactly these actions wait for approval at the end
    reply: ReplyExpect | None = None
    refusal: bool = False  # out of scope: answer "not found", show nothing of it
    clarify: bool = False  # ambiguous: ask a question, act on nothing


class ApproveSpec(Model):
    action: int | str | None = None  # index in the waiting list, or a tool name; None: every waiting action
    edit: dict[str, Any] | None = None
    reject: str | None = None


class Turn(Model):
    ask: str | None = None
    approve: ApproveSpec | None = None
    thread: str = "main"
    expect: Expect | None = None
    expect_error: str | None = None  # the turn must fail with an error containing this

    @model_validator(mode="after")
    def _one_kind(self) -> Turn:
        if (self.ask is None) == (self.approve is None):
            raise ValueError("a turn is either `ask: MESSAGE` or `approve: {...}`")
        return self

    @property
    def kind(self) -> str:
        return "ask" if self.ask is not None else "approve"


class DemoSpec(Model):
    invoices: int = Field(default=80, ge=1, le=2000)
    reps: int = Field(default=3, ge=1, le=20)
    seed: int = 7


class DataSpec(Model):
    """Where the case's workspace comes from: a named scenario, a demo seed or an inline snapshot, plus overrides."""

    scenario: str | None = None  # evals/scenarios/NAME.yaml
    demo: DemoSpec | None = None
    snapshot: dict[str, Any] | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)  # records merged by id (see evals/data.py)
    remove: dict[str, list[str]] = Field(default_factory=dict)  # list -> ids (invoices: ids or numbers)

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if sum(x is not None for x in (self.scenario, self.demo, self.snapshot)) != 1:
            raise ValueError("data needs exactly one of scenario, demo or snapshot")
        return self


class Case(Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    group: str
    description: str = ""
    data: DataSpec
    date: dt.date
    user: str
    now: dt.datetime | None = None  # default: noon of `date` in the user's time zone
    turns: list[Turn] = Field(min_length=1)
    expect: Expect = Field(default_factory=Expect)
    # A known agent bug this case exposes: the case still runs, fails and counts in the pass rate, but its
    # policy violations are reported as known ones, outside the max_policy_violations threshold, until fixed.
    known_issue: str | None = None
    file: str = ""

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        return dt.date.fromisoformat(value) if isinstance(value, str) else value


class CaseError(ValueError):
    """A case file that cannot be used: the message names the file and the case."""


def _merge(defaults: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in case.items():
        if key == "data" and isinstance(value, dict) and isinstance(out.get("data"), dict):
            if any(k in value for k in ("scenario", "demo", "snapshot")):
                out["data"] = value
            else:
                out["data"] = {**out["data"], **value}
        elif key == "expect" and isinstance(value, dict) and isinstance(out.get("expect"), dict):
            out["expect"] = {**out["expect"], **value}
        else:
            out[key] = value
    return out


def load_file(path: Path) -> list[Case]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CaseError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cases"), list) or not raw.get("group"):
        raise CaseError(f"{path}: needs `group:` and a list of `cases:`")
    unknown = set(raw) - {"group", "description", "defaults", "cases"}
    if unknown:
        raise CaseError(f"{path}: unknown top-level keys {sorted(unknown)}")
    defaults = {"group": raw["group"], **(raw.get("defaults") or {})}
    cases = []
    for index, item in enumerate(raw["cases"]):
        if not isinstance(item, dict):
            raise CaseError(f"{path}: case #{index + 1} is not a mapping")
        try:
            cases.append(Case.model_validate({**_merge(defaults, item), "file": path.name}))
        except ValidationError as exc:
            raise CaseError(f"{path}: case {item.get('name', f'#{index + 1}')}: {exc}") from None
    return cases


def case_files(directory: Path = CASES_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def matches(case: Case, pattern: str) -> bool:
    """A --cases pattern: a glob over case names, group names or case file names."""
    return any(fnmatch.fnmatch(value, pattern) for value in (case.name, case.group, case.file, Path(case.file).stem))


def load_cases(pattern: str | None = None, directory: Path = CASES_DIR) -> list[Case]:
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for path in case_files(directory):
        for case in load_file(path):
            if case.name in seen:
                raise CaseError(f"{path}: case name {case.name} is also used in {seen[case.name]}")
            seen[case.name] = path.name
            cases.append(case)
    if pattern:
        patterns = [p.strip() for p in pattern.split(",") if p.strip()]
        cases = [c for c in cases if any(matches(c, p) for p in patterns)]
    return cases


def case_from_dict(raw: dict[str, Any]) -> Case:
    return Case.model_validate(raw)
