"""`lumo payments ...` (bank statements in, lines to match, unmatched for finance) and `lumo forecast`.

Applying a suggested line is proposed like any action and decided with `lumo approve`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lumo.cli.app import DateOpt, JsonOpt, RepOpt, app, as_of_for, emit_json, open_session
from lumo.cli.record import ThreadOpt, _propose
from lumo.crm.errors import InvalidInput

if TYPE_CHECKING:
    from lumo.crm.scope import Scope

payments_app = typer.Typer(no_args_is_help=True, help="Payments in: bank statements, lines to match, unmatched.")
app.add_typer(payments_app, name="payments")


@payments_app.command("import")
def import_statement(
    file: Annotated[
        Path,
        typer.Argument(help="The bank statement: CSV (date,amount,currency,reference[,counterparty,bank_id]) or CAMT.053 XML."),
    ],
    rep: RepOpt,
    fmt: Annotated[str, typer.Option("--format", help="csv or camt053 (default: from the file's extension).")] = "",
    date: DateOpt = None,
    json: JsonOpt = False,
) -> None:
    """Import a statement: exact matches are applied, the rest suggested; re-importing adds nothing twice."""
    from lumo.crm.bank_files import FORMATS, parse_statement
    from lumo.crm.reconcile import import_lines
    from lumo.crm.scope import scope_for_email

    chosen = fmt.strip().lower() or ("camt053" if file.suffix.lower() == ".xml" else "csv")
    if chosen not in FORMATS:
        raise InvalidInput(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}") from None
    lines = parse_statement(data, chosen)
    now = dt.datetime.now(dt.UTC)
    with open_session() as session:
        scope = scope_for_email(session, rep)
        report = import_lines(session, scope, lines, source_file=file.name, as_of=as_of_for(scope, date, now), now=now)
        session.commit()
    if json:
        emit_json(report.as_json())
        return
    typer.echo(
        f"{report.lines} lines: {report.new} new ({report.matched} matched and applied, {report.suggested} suggested, "
        f"{report.unmatched} unmatched), {report.already} already imported"
    )
    if report.suggested:
        typer.echo("See them with `lumo payments to-match`; apply one with `lumo payments apply LINE`.")


def _show_lines(lines: list[dict[str, Any]], title: str) -> None:
    from lumo.cli.reads import _money, _table

    rows = [[str(ln["id"]), ln["booked_on"], _money(ln["amount"], ln["currency"]), ln["reference"], ln["reason"]] for ln in lines]
    _table(title, ["line", "booked", "amount", "reference", "why"], rows, right=("amount",))


@payments_app.command("to-match")
def to_match(rep: RepOpt, json: JsonOpt = False) -> None:
    """Bank lines waiting for a decision: suggestions in your book (managers: also unmatched lines)."""
    from lumo.crm.reconcile import lines_to_match
    from lumo.crm.scope import scope_for_email

    with open_session() as session:
        found = lines_to_match(session, scope_for_email(session, rep))
    if json:
        emit_json(found)
        return
    if not found["suggested"] and not found["unmatched"]:
        typer.echo("No bank payments need matching.")
        return
    if found["suggested"]:
        _show_lines(found["suggested"], "Suggested (approve with `lumo payments apply LINE`)")
    if found["unmatched"]:
        _show_lines(found["unmatched"], "Unmatched")


@payments_app.command("unmatched")
def unmatched(rep: RepOpt, json: JsonOpt = False) -> None:
    """Finance's list: bank lines and Stripe events no invoice was found for (managers and admins)."""
    from lumo.crm.provider_events import unmatched_events
    from lumo.crm.reconcile import lines_to_match
    from lumo.crm.scope import scope_for_email

    with open_session() as session:
        scope = scope_for_email(session, rep)
        if scope.role == "rep":
            raise InvalidInput("unmatched payments are for managers and finance: ask your manager")
        found = {"bank_lines": lines_to_match(session, scope)["unmatched"], "provider_events": unmatched_events(session)}
    if json:
        emit_json(found)
        return
    if not found["bank_lines"] and not found["provider_events"]:
        typer.echo("Nothing unmatched.")
        return
    if found["bank_lines"]:
        _show_lines(found["bank_lines"], "Unmatched bank lines")
    for ev in found["provider_events"]:
        typer.echo(f"{ev['provider']} {ev['event_id']} {ev['type']} ({ev['created_at']}): {ev['detail']}")
    if any(ev["action"] for ev in found["provider_events"]):
        typer.echo("Link one to its invoice with `lumo payments link EVENT_ID INVOICE`.")


@payments_app.command("apply")
def apply(
    line: Annotated[int, typer.Argument(help="The bank line's id (from `lumo payments to-match`).")],
    rep: RepOpt,
    invoice: Annotated[
        str | None, typer.Option("--invoice", help="The invoice(s) it pays, comma-separated (default: suggested).")
    ] = None,
    date: DateOpt = None,
    json: JsonOpt = False,
    thread: ThreadOpt = None,
) -> None:
    """Propose applying a bank line (approve with `lumo approve`)."""
    if line < 1:
        raise InvalidInput("the line id must be at least 1")
    args: dict[str, Any] = {"line_id": line}
    if invoice:
        args["invoice_numbers"] = [n.strip() for n in invoice.split(",") if n.strip()]
    _propose(
        [("apply_bank_line", args)], f"(lumo payments apply) bank line {line}", rep=rep, date=date, as_json=json, thread=thread
    )


@payments_app.command("link")
def link(
    event: Annotated[str, typer.Argument(help="The Stripe event's id (evt_..., from `lumo payments unmatched`).")],
    invoice: Annotated[str, typer.Argument(help="The Lumo invoice it pays.")],
    rep: RepOpt,
    date: DateOpt = None,
    json: JsonOpt = False,
    thread: ThreadOpt = None,
) -> None:
    """Propose linking an unmatched Stripe event to an invoice, applying it (managers; approve with `lumo approve`)."""
    args = {"event_id": event.strip(), "invoice_number": invoice.strip()}
    if not args["event_id"] or not args["invoice_number"]:
        raise InvalidInput("give the event id and the invoice number")
    message = f"(lumo payments link) {event} to {invoice}"
    _propose([("link_payment_event", args)], message, rep=rep, date=date, as_json=json, thread=thread)


def _narrowed(scope: Scope, team: bool, everyone: bool) -> Scope:
    if team and everyone:
        raise InvalidInput("give --team or --all, not both")
    if everyone:
        if scope.role != "admin":
            raise InvalidInput("--all is the whole workspace: admins only")
        return scope
    if team:
        if scope.role == "rep":
            raise InvalidInput("--team is a manager's team: you are a rep (leave it out for your book)")
        return scope
    return dataclasses.replace(scope, owner_ids=frozenset({scope.user_id}))


@app.command("forecast")
def forecast_cmd(
    rep: RepOpt,
    weeks: Annotated[int, typer.Option("--weeks", help="Weeks ahead (1-52).")] = 13,
    team: Annotated[bool, typer.Option("--team", help="Your team's book (managers).")] = False,
    everyone: Annotated[bool, typer.Option("--all", help="The whole workspace (admins).")] = False,
    date: DateOpt = None,
    json: JsonOpt = False,
) -> None:
    """Expected vs collected cash per week and currency, with DSO and the share at risk (each with its reasons)."""
    from lumo.crm.forecast import cash_forecast
    from lumo.crm.scope import scope_for_email

    with open_session() as session:
        scope = _narrowed(scope_for_email(session, rep), team, everyone)
        result = cash_forecast(session, scope, as_of_for(scope, date), weeks=weeks)
    if json:
        emit_json(result)
        return
    _show_forecast(result)


def _show_forecast(result: dict[str, Any]) -> None:
    from lumo.cli.reads import _money, _table

    def words(totals: dict[str, str]) -> str:
        return ", ".join(_money(a, c) for c, a in totals.items()) or "-"

    rows = [[w["week_start"], words(w["totals"]), str(w["invoices"]), (w["reasons"] or [""])[0]] for w in result["expected"]]
    _table(f"Expected cash from {result['today']}", ["week of", "expected", "invoices", "e.g."], rows)
    rows = [[w["week_start"], words(w["totals"])] for w in result["collected"]]
    _table("Collected", ["week of", "collected"], rows)
    typer.echo(f"Later: {words(result['later']['totals'])}")
    typer.echo(f"At risk: {result['at_risk']['reasons'][0]}")
    d = result["dso"]
    typer.echo(
        f"DSO: {d['simple_days'] if d['simple_days'] is not None else 'n/a'} days simple, "
        f"{d['countback_days'] if d['countback_days'] is not None else 'n/a'} days countback"
    )
