"""Request and response bodies of the HTTP API (the shapes of `lumo ask --json` and the read commands)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lumo.api.openapi import DATE_HELP, DateText

ThreadId = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Continue this thread.")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=4000)
    thread_id: str | None = ThreadId
    date: DateText | None = Field(
        default=None,
        description=f"The day Lumo believes it is, {DATE_HELP}. Reads use it; emails and status changes are always "
        "checked and worded against the server's real today, so a day ahead of it never changes what is sent.",
    )


class PendingAction(BaseModel):
    id: str
    tool: str
    args: dict[str, Any]
    description: str


class ChatResponse(BaseModel):
    thread_id: str
    reply: str
    model: str
    items: list[dict[str, Any]]
    drafts: list[dict[str, Any]]
    pending_actions: list[PendingAction]
    usage: dict[str, int] = {}
    notes: list[str] = []


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "edit", "reject"] = "approve"
    action_id: str | None = Field(
        default=None, max_length=300, description="One action, or several comma-separated (default: all waiting)."
    )
    args: dict[str, Any] | None = Field(default=None, description="For edit: the changed arguments.")
    reason: str | None = Field(default=None, max_length=2000, description="For reject: feedback for Lumo.")
    approve_anyway: bool = Field(
        default=False, description="Send an edited email although the guard found facts it could not match (logged)."
    )
    date: DateText | None = Field(default=None, description=f"The day it is, {DATE_HELP}.")


class ItemsResponse(BaseModel):
    items: list[dict[str, Any]]


class InvoicePageResponse(BaseModel):
    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int


class AccountsResponse(BaseModel):
    accounts: list[dict[str, Any]]
    revenue_at_risk: dict[str, Any]
    dso: dict[str, Any] | None = Field(default=None, description="DSO per rep and team, with its definition.")


class ModelStatus(BaseModel):
    state: str  # unchecked | ok | misconfigured | unavailable (as of the last model call)
    model: str
    base_url: str | None = None
    problem: str | None = None  # what is wrong, in words an operator can act on
    kind: str | None = None
    since: str | None = None


class Health(BaseModel):
    status: str


class Readiness(Health):
    model: ModelStatus | None = None  # when a real model is configured: its last known state
