"""Request and response bodies of the HTTP API (the shapes of `lumo ask --json` and the read commands)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lumo.agent.contracts import DecisionType, TurnResult
from lumo.api.openapi import DATE_HELP, DateText
from lumo.crm.drafts import DraftJson
from lumo.crm.lifecycle import Bucket, InvoiceStatus

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


class ChatResponse(TurnResult):
    """One chat turn: Lumo's reply, or the actions it waits on (decide them with POST /v1/threads/{id}/decision)."""


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: DecisionType = "approve"
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


class InvoiceSummary(BaseModel):
    """An invoice as the searches list it (the items of GET /v1/invoices and `lumo invoices --json`)."""

    invoice_number: str
    account: str
    status: InvoiceStatus
    amount: str = Field(description="Decimal as a string, e.g. '1250.00'; the currency is `currency`.")
    amount_paid: str
    balance: str
    currency: str = Field(description="ISO-4217 code.")
    issue_date: str
    due_date: str
    days_overdue: int
    bucket: Bucket
    promise_to_pay_date: str | None
    dispute_reason: str | None


class InvoicePageResponse(BaseModel):
    items: list[InvoiceSummary]
    total: int
    page: int
    page_size: int


class InvoiceContactOut(BaseModel):
    name: str
    email: str
    do_not_contact: bool


class PaymentOut(BaseModel):
    amount: str
    paid_at: str


class HistoryEvent(BaseModel):
    kind: str
    at: str
    by: str | None
    text: str | None
    from_status: str | None = Field(alias="from")  # the status before a status change
    to: str | None


class InvoiceDetail(InvoiceSummary):
    """One invoice with its contacts, payments, every event in order, and its stale findings."""

    payment_url: str | None
    contacts: list[InvoiceContactOut]
    payments: list[PaymentOut]
    history: list[HistoryEvent]
    stale: list[dict[str, Any]]


class DraftResponse(DraftJson):
    """The reminder the tone ladder calls for, never sent; `skipped_reason` says why no email should go out."""
