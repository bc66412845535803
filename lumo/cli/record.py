"""`lumo record ...`: what a customer said, proposed as an action that waits for `lumo approve` like any other.

`lumo fix-stale` is here too: every stale finding's fix, proposed together for one approval (approve all,
or some with `--action`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lumo.cli.agent import _scope, _show
from lumo.cli.app import DateOpt, JsonOpt, RepOpt, app, as_of_for, open_session, settings
from lumo.crm.lifecycle import parse_day

if TYPE_CHECKING:
    from lumo.agent.contracts import TurnResult

record_app = typer.Typer(no_args_is_help=True, help="Record what a customer told you (proposed; approve with `lumo approve`).")
app.add_typer(record_app, name="record")

Invoice = Annotated[str, typer.Argument(help="Invoice number, e.g. INV-1042.")]
ThreadOpt = Annotated[str | None, typer.Option("--thread", help="Propose it in this thread.")]


def propose(tool: str, args: dict[str, Any], *, rep: str, date: str | None, as_json: bool, thread: str | None) -> None:
    """Propose one side effect in a thread and print it the way `lumo ask` prints pending actions."""
    message = f"(lumo record) {tool} {args.get('invoice_number', '')}".strip()
    _propose([(tool, args)], message, rep=rep, date=date, as_json=as_json, thread=thread)


def _propose(
    calls: list[tuple[str, dict[str, Any]]], message: str, *, rep: str, date: str | None, as_json: bool, thread: str | None
) -> None:
    import asyncio

    from lumo.compose import open_lumo  # here: the agent stack is slow to import

    scope = _scope(rep)
    now = dt.datetime.now(dt.UTC)
    as_of = as_of_for(scope, date, now)

    async def run() -> TurnResult:
        async with open_lumo(settings().database_url) as lumo:
            return await lumo.propose(scope, calls, message=message, as_of=as_of, now=now, thread_id=thread)

    _show(asyncio.run(run()), rep, as_json)


def _day(value: str | None, name: str) -> str | None:
    return parse_day(value, name).isoformat() if value is not None else None


@record_app.command("promise")
def promise(
    invoice: Invoice,
    by: Annotated[str, typer.Option("--by", help="YYYY-MM-DD the customer promised to pay by.")],
    rep: RepOpt,
    amount: Annotated[str | None, typer.Option("--amount", help="Promised amount (default: the balance).")] = None,
    note: Annotated[str, typer.Option("--note", help="Who promised, in their words.")] = "",
    date: DateOpt = None,
    json: JsonOpt = False,
    thread: ThreadOpt = None,
) -> None:
    """A promise to pay by a date (optionally an amount)."""
    args: dict[str, Any] = {"invoice_number": invoice, "date": _day(by, "--by"), "note": note}
    if amount is not None:
        args["amount"] = amount
    propose("record_promise", args, rep=rep, date=date, as_json=json, thread=thread)


@record_app.command("payment")
def payment(
    invoice: Invoice,
    amount: Annotated[str, typer.Option("--amount", help="Amount received, e.g. 500.00 (partial is fine).")],
    rep: RepOpt,
    on: Annotated[str | None, typer.Option("--on", help="YYYY-MM-DD received (default: today).")] = None,
    method: Annotated[str, typer.Option("--method", help="bank_transfer, card, check, cash, direct_debit, other.")] = (
        "bank_transfer"
    ),
    reference: Annotated[str, typer.Option("--reference", help="Remittance reference.")] = "",
    date: DateOpt = None,
    json: JsonOpt = False,
    thread: ThreadOpt = None,
) -> None:
    """A payment received, in full or partial."""
    args: dict[str, Any] = {"invoice_number": invoice, "amount": amount, "method": method, "reference": reference}
    if on is not None:
        args["date"] = _day(on, "--on")
    propose("record_payment", args, rep=rep, date=date, as_json=json, thread=thread)


@record_app.command("dispute")
def dispute(
    invoice: Invoice,
    reason: Annotated[str, typer.Option("--reason", help="What the customer disputes.")],
    rep: RepOpt,
    date: DateOpt = None,
    json: JsonOpt = False,
    thread: ThreadOpt = None,
) -> None:
    """Open a dispute with the customer's reason."""
    propose("open_dispute", {"invoice_number": invoice, "reason": reason}, rep=rep, date=date, as_json=json, thread=thread)


@record_app.command("resolve")
def resolve(
    invoice: Invoice,
    resolution: Annotated[str, typer.Option("--resolution", help="How the dispute was settled.")],
    rep: RepOpt,
    status: Annotated[str | None, typer.Option("--status", help="Status after it (default: what the facts say).")] = None,
    date: DateOpt = None,
    json: JsonOpt = False,
    thread: ThreadOpt = None,
) -> None:
    """Resolve an invoice's dispute."""
    args: dict[str, Any] = {"invoice_number": invoice, "resolution": resolution}
    if status is not None:
        args["status"] = status
    propose("resolve_dispute", args, rep=rep, date=date, as_json=json, thread=thread)


@record_app.command("call")
def call(
    invoice: Invoice,
    outcome: Annotated[str, typer.Option("--outcome", help="What was said and agreed.")],
    rep: RepOpt,
    on: Annotated[str | None, typer.Option("--on", help="YYYY-MM-DD of the call (default: today).")] = None,
    date: DateOpt = None,
    json: JsonOpt = False,
    thread: ThreadOpt = None,
) -> None:
    """A call with the customer and its outcome."""
    args: dict[str, Any] = {"invoice_number": invoice, "outcome": outcome}
    if on is not None:
        args["date"] = _day(on, "--on")
    propose("log_call", args, rep=rep, date=date, as_json=json, thread=thread)


@app.command("fix-stale")
def fix_stale(
    rep: RepOpt,
    date: DateOpt = None,
    json: JsonOpt = False,
    thread: ThreadOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many fixes.")] = 50,
) -> None:
    """Propose the fix of every stale status together, for one approval (all, or some with --action)."""
    from lumo.crm.invoices import actionable_rows
    from lumo.crm.scope import scope_for_email
    from lumo.crm.stale import fix_calls, stale_findings

    with open_session() as session:
        scope = scope_for_email(session, rep)
        findings = [f.as_json() for f in stale_findings(actionable_rows(session, scope), as_of_for(scope, date))]
    calls = fix_calls(findings, limit=max(limit, 1))
    if not calls:
        typer.echo("No stale statuses: nothing to fix.")
        return
    _propose(calls, "(lumo fix-stale) fix all my stale statuses", rep=rep, date=date, as_json=json, thread=thread)
