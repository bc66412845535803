"""Read commands: priorities, invoices, stale, draft, accounts. A table by default, --json for machines."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lumo.cli.app import DateOpt, JsonOpt, RepOpt, app, as_of_for, emit_json, open_session
from lumo.crm.drafts import draft_for_invoice
from lumo.crm.dso import dso_report
from lumo.crm.health import account_health, revenue_at_risk
from lumo.crm.invoices import InvoiceFilter, actionable_rows, invoice_json, search_invoices
from lumo.crm.priorities import compute_priorities
from lumo.crm.scope import scope_for_email
from lumo.crm.stale import stale_findings

console = Console(soft_wrap=False, width=160)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command()
def priorities(
    rep: RepOpt,
    date: DateOpt = None,
    json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="How many items.")] = 20,
) -> None:
    """Today's ranked work, with reasons and the next action."""
    with open_session() as session:
        scope = scope_for_email(session, rep)
        as_of = as_of_for(scope, date)
        items = [i.as_json() for i in compute_priorities(session, scope, as_of, limit=max(limit, 1))]
    if json:
        emit_json(items)
        return
    _table(
        f"Priorities for {scope.name} on {as_of.today}",
        ["#", "kind", "invoice", "account", "amount", "days", "reasons", "next action"],
        [
            [
                str(i["rank"]),
                i["kind"],
                i["invoice_number"] or "-",
                i["account"] or "-",
                f"{i['currency']} {i['amount']}" if i["amount"] else "-",
                str(i["days_overdue"]),
                "; ".join(i["reasons"]),
                i["action"],
            ]
            for i in items
        ],
    )


@app.command()
def invoices(
    rep: RepOpt,
    date: DateOpt = None,
    json: JsonOpt = False,
    status: Annotated[list[str] | None, typer.Option(help="Status filter; repeat for several.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue invoices.")] = False,
    stale: Annotated[bool, typer.Option("--stale", help="Only invoices with a stale status.")] = False,
    account: Annotated[str | None, typer.Option(help="Account id or part of its name.")] = None,
    bucket: Annotated[str | None, typer.Option(help="Aging bucket: current, 1-30, 31-60, 61-90, 90+.")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO currency code.")] = None,
    page: int = 1,
    page_size: int = 50,
) -> None:
    """Search invoices (paged)."""
    flt = InvoiceFilter(
        status=status or (),
        overdue=overdue,
        stale=stale,
        account=account,
        bucket=bucket,
        currency=currency,
        page=page,
        page_size=page_size,
    )
    with open_session() as session:
        scope = scope_for_email(session, rep)
        as_of = as_of_for(scope, date)
        result = search_invoices(session, scope, flt, as_of)
    items = [invoice_json(r, as_of) for r in result.items]
    if json:
        emit_json({"items": items, "total": result.total, "page": result.page, "page_size": result.page_size})
        return
    _table(
        f"Invoices ({result.total} in all, page {result.page})",
        ["invoice", "account", "status", "balance", "due", "days overdue"],
        [
            [
                i["invoice_number"],
                i["account"],
                i["status"],
                f"{i['currency']} {i['balance']}",
                i["due_date"],
                str(i["days_overdue"]),
            ]
            for i in items
        ],
    )


@app.command()
def stale(rep: RepOpt, date: DateOpt = None, json: JsonOpt = False) -> None:
    """Invoices whose recorded status no longer tells the truth, with evidence and the fix."""
    with open_session() as session:
        scope = scope_for_email(session, rep)
        as_of = as_of_for(scope, date)
        findings = [f.as_json() for f in stale_findings(actionable_rows(session, scope), as_of)]
    if json:
        emit_json(findings)
        return
    _table(
        f"Stale statuses ({len(findings)})",
        ["invoice", "kind", "evidence", "fix"],
        [[f["invoice_number"], f["kind"], f["evidence"], f["fix"]] for f in findings],
    )


@app.command()
def draft(
    invoice_number: Annotated[str, typer.Argument(help="Invoice number, e.g. INV-1042.")],
    rep: RepOpt,
    date: DateOpt = None,
    json: JsonOpt = False,
) -> None:
    """Draft the reminder email for an invoice (saved nowhere, sent never)."""
    with open_session() as session:
        scope = scope_for_email(session, rep)
        result = draft_for_invoice(session, scope, invoice_number, as_of_for(scope, date)).as_json()
    if json:
        emit_json(result)
        return
    if result["skipped_reason"]:
        typer.echo(f"No email for {invoice_number}: {result['skipped_reason']}")
        return
    typer.echo(f"To: {', '.join(result['to'])}")
    if result["cc"]:
        typer.echo(f"Cc: {', '.join(result['cc'])}")
    typer.echo(f"Subject: {result['subject']}\nTone: {result['tone']}\n\n{result['body']}")


@app.command()
def accounts(
    rep: RepOpt,
    date: DateOpt = None,
    json: JsonOpt = False,
    account: Annotated[str | None, typer.Option(help="One account, by id or name.")] = None,
    limit: Annotated[int, typer.Option(help="How many accounts (worst first).")] = 20,
) -> None:
    """Account health (worst first) and revenue at risk."""
    with open_session() as session:
        scope = scope_for_email(session, rep)
        as_of = as_of_for(scope, date)
        healths = account_health(session, scope, as_of, account=account)
        dso = dso_report(session, scope, as_of)
    risk = revenue_at_risk(healths)
    shown = [h.as_json() for h in healths[: max(limit, 1)]]
    if json:
        emit_json({"accounts": shown, "revenue_at_risk": risk, "dso": dso})
        return
    _table(
        f"Account health ({len(healths)} accounts; revenue at risk {risk['base_currency']} {risk['total']})",
        ["account", "score", "grade", "open", "overdue", "reasons", "DSO"],
        [
            [
                h["account"],
                str(h["score"]),
                h["grade"],
                f"{h['base_currency']} {h['open_base']}",
                f"{h['base_currency']} {h['overdue_base']}",
                "; ".join(h["reasons"]),
                "-" if h["dso_days"] is None else str(h["dso_days"]),
            ]
            for h in shown
        ],
    )
    _table(
        f"DSO per rep and team (days, {dso['base_currency']})",
        ["rep", "DSO", "open", f"billed in {dso['window_days']} days"],
        [
            [r["rep"], "-" if r["dso_days"] is None else str(r["dso_days"]), r["open_base"], r["billed_base"]]
            for r in [*dso["reps"], {"rep": "team", **dso["team"]}]
        ],
    )
    typer.echo(dso["definition"])
