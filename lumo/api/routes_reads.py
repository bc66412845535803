"""Reads that mirror the CLI's --json output, under the caller's scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from lumo.api.deps import AsOfDep, SessionDep
from lumo.api.openapi import ERRORS
from lumo.api.schemas import AccountsResponse, DraftResponse, InvoiceDetail, InvoicePageResponse, ItemsResponse
from lumo.api.view import ViewScope
from lumo.crm.drafts import DraftJson, draft_for_invoice
from lumo.crm.dso import dso_report
from lumo.crm.health import account_health, revenue_at_risk
from lumo.crm.invoices import MAX_PAGE_SIZE, actionable_rows, invoice_filter, invoice_history, search_invoices
from lumo.crm.lifecycle import Bucket
from lumo.crm.lifecycle import InvoiceStatus as Status
from lumo.crm.priorities import priorities_json
from lumo.crm.stale import stale_findings

router = APIRouter(prefix="/v1", tags=["reads"], responses=ERRORS)


@router.get("/priorities", response_model=ItemsResponse, summary="Today's ranked work")
def priorities(
    session: SessionDep, scope: ViewScope, as_of: AsOfDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> dict[str, Any]:
    return {"items": priorities_json(session, scope, as_of, limit=limit)}


@router.get("/invoices", response_model=InvoicePageResponse, summary="Search invoices (paged)")
def invoices(
    session: SessionDep,
    scope: ViewScope,
    as_of: AsOfDep,
    status: Annotated[list[Status] | None, Query()] = None,
    overdue: bool = False,
    stale: bool = False,
    account: Annotated[str | None, Query(max_length=200)] = None,
    bucket: Bucket | None = None,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> dict[str, Any]:
    flt = invoice_filter(
        status=status,
        overdue=overdue,
        stale=stale,
        account=account,
        bucket=bucket,
        currency=currency,
        page=page,
        page_size=page_size,
    )
    return search_invoices(session, scope, flt, as_of).as_json(as_of)


@router.get("/invoices/{number}", response_model=InvoiceDetail, summary="One invoice with its history")
def invoice(number: str, session: SessionDep, scope: ViewScope, as_of: AsOfDep) -> dict[str, Any]:
    return invoice_history(session, scope, number, as_of)


@router.get(
    "/invoices/{number}/draft", response_model=DraftResponse, summary="The reminder email the tone ladder calls for (not sent)"
)
def draft(number: str, session: SessionDep, scope: ViewScope, as_of: AsOfDep) -> DraftJson:
    return draft_for_invoice(session, scope, number, as_of).as_json()


@router.get("/stale", response_model=ItemsResponse, summary="Stale statuses with evidence and fix")
def stale(session: SessionDep, scope: ViewScope, as_of: AsOfDep) -> dict[str, Any]:
    return {"items": [f.as_json() for f in stale_findings(actionable_rows(session, scope), as_of)]}


@router.get("/accounts", response_model=AccountsResponse, summary="Account health and revenue at risk")
def accounts(
    session: SessionDep,
    scope: ViewScope,
    as_of: AsOfDep,
    account: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    healths = account_health(session, scope, as_of, account=account)
    return {
        "accounts": [h.as_json() for h in healths[:limit]],
        "revenue_at_risk": revenue_at_risk(healths),
        "dso": dso_report(session, scope, as_of),
    }
