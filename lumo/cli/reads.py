"""Read commands: priorities, invoices, stale, draft, accounts. A table by default, --json for machines.

Tables fit the terminal (80 columns when it is not one) and say amounts as everywhere else: 'USD 1,628.82'.
With --json, a list comes as `{"items": [...]}` (plus paging or totals), the shape of the HTTP reads.
The domain is imported in each command, not at the top: `lumo --help` starts fast.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer

from lumo.cli.app import DateOpt, JsonOpt, RepOpt, app, as_of_for, emit_json, open_session
from lumo.crm.errors import InvalidInput

LimitOpt = Annotated[int, typer.Option(help="How many (at least 1).")]


def _table(title: str, columns: list[str], rows: list[list[str]], *, right: tuple[str, ...] = ()) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", justify="right" if column in right else "left")
    for row in rows:
        table.add_row(*row)
    Console(soft_wrap=False).print(table)


def _money(amount: str | None, currency: str | None) -> str:
    from lumo.crm.money import format_code

    return format_code(Decimal(amount), currency) if amount is not None and currency else "-"


def _at_least_one(limit: int) -> int:
    if limit < 1:
        raise InvalidInput(f"--limit must be at least 1, not {limit}")
    return limit


@app.command()
def priorities(rep: RepOpt, date: DateOpt = None, json: JsonOpt = False, limit: LimitOpt = 20) -> None:
    """Today's ranked work, with reasons and the next action."""
    from lumo.crm.priorities import priorities_json
    from lumo.crm.scope import scope_for_email

    _at_least_one(limit)
    with open_session() as session:
        scope = scope_for_email(session, rep)
        as_of = as_of_for(scope, date)
        items = priorities_json(session, scope, as_of, limit=limit)
    if json:
        emit_json({"items": items})
        return
    _table(
        f"Priorities for {scope.name} on {as_of.today}",
        ["#", "item", "why, and next"],
        [[str(i["rank"]), _item_cell(i), "; ".join(i["reasons"]) + f"\nNext: {i['action']}"] for i in items],
        right=("#",),
    )


def _item_cell(item: dict[str, Any]) -> str:
    lines = [item["invoice_number"] or "task", item["account"] or ""]
    if item["amount"] is not None:
        lines.append(_money(item["amount"], item["currency"]))
    lines.append(item["kind"].replace("_", " "))
    return "\n".join(line for line in lines if line)


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
    from lumo.crm.invoices import invoice_filter, search_invoices
    from lumo.crm.scope import scope_for_email

    # Validated before the database opens: a bad filter is the same error everywhere.
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
    with open_session() as session:
        scope = scope_for_email(session, rep)
        as_of = as_of_for(scope, date)
        result = search_invoices(session, scope, flt, as_of).as_json(as_of)
    if json:
        emit_json(result)
        return
    _table(
        f"Invoices ({result['total']} in all, page {result['page']})",
        ["invoice", "account", "status", "balance", "due", "late"],
        [
            [
                i["invoice_number"],
                i["account"],
                i["status"],
                _money(i["balance"], i["currency"]),
                i["due_date"],
                str(i["days_overdue"]),
            ]
            for i in result["items"]
        ],
        right=("balance", "late"),
    )


@app.command()
def stale(rep: RepOpt, date: DateOpt = None, json: JsonOpt = False) -> None:
    """Invoices whose recorded status no longer tells the truth, with evidence and the fix."""
    from lumo.crm.invoices import actionable_rows
    from lumo.crm.scope import scope_for_email
    from lumo.crm.stale import stale_findings

    with open_session() as session:
        scope = scope_for_email(session, rep)
        as_of = as_of_for(scope, date)
        findings = [f.as_json() for f in stale_findings(actionable_rows(session, scope), as_of)]
    if json:
        emit_json({"items": findings})
        return
    _table(
        f"Stale statuses ({len(findings)})",
        ["invoice", "kind", "evidence, and fix"],
        [[f["invoice_number"], f["kind"].replace("_", " "), f"{f['evidence']}\nFix: {f['fix']}"] for f in findings],
    )


@app.command()
def draft(
    invoice_number: Annotated[str, typer.Argument(help="Invoice number, e.g. INV-1042 (any letter case).")],
    rep: RepOpt,
    date: DateOpt = None,
    json: JsonOpt = False,
) -> None:
    """Draft the reminder email for an invoice (saved nowhere, sent never)."""
    from lumo.crm.drafts import draft_for_invoice
    from lumo.crm.scope import scope_for_email

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
    limit: Annotated[int, typer.Option(help="How many accounts (worst first; at least 1).")] = 20,
) -> None:
    """Account health (worst first) and revenue at risk."""
    from lumo.crm.dso import dso_report
    from lumo.crm.health import account_health, revenue_at_risk
    from lumo.crm.scope import scope_for_email

    _at_least_one(limit)
    with open_session() as session:
        scope = scope_for_email(session, rep)
        as_of = as_of_for(scope, date)
        healths = account_health(session, scope, as_of, account=account)
        dso = dso_report(session, scope, as_of)
    risk = revenue_at_risk(healths)
    shown = [h.as_json() for h in healths[:limit]]
    if json:
        emit_json({"accounts": shown, "revenue_at_risk": risk, "dso": dso})
        return
    total = _money(risk["total"], risk["base_currency"]) if risk["base_currency"] else "-"
    _table(
        f"Account health ({len(healths)} accounts; revenue at risk {total})",
        ["account", "open", "overdue", "DSO", "health, and why"],
        [
            [
                h["account"],
                _money(h["open_base"], h["base_currency"]),
                _money(h["overdue_base"], h["base_currency"]),
                "-" if h["dso_days"] is None else str(h["dso_days"]),
                f"{h['score']}/100 {h['grade']}: " + "; ".join(h["reasons"]),
            ]
            for h in shown
        ],
        right=("open", "overdue", "DSO"),
    )
    _table(
        "DSO per rep and team (days)",
        ["rep", "DSO", "open", f"billed in {dso['window_days']} days"],
        [
            [
                r["rep"],
                "-" if r["dso_days"] is None else str(r["dso_days"]),
                _money(r["open_base"], dso["base_currency"]),
                _money(r["billed_base"], dso["base_currency"]),
            ]
            for r in [*dso["reps"], {"rep": "team", **dso["team"]}]
        ],
        right=("DSO", "open", f"billed in {dso['window_days']} days"),
    )
    import shutil
    import textwrap

    typer.echo(textwrap.fill(dso["definition"], width=min(shutil.get_terminal_size().columns, 100)))
