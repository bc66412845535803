"""Chat from the command line: `lumo ask` runs a turn, `lumo approve` resumes one paused for approval."""

from __future__ import annotations

import datetime as dt
import json as jsonlib
from typing import TYPE_CHECKING, Annotated

import typer

from lumo.cli.app import DateOpt, JsonOpt, RepOpt, app, as_of_for, emit_json, settings
from lumo.crm.errors import InvalidInput

if TYPE_CHECKING:
    from lumo.agent.contracts import TurnResult
    from lumo.crm.scope import Scope


def _scope(email: str) -> Scope:
    from lumo.crm.scope import scope_for_email
    from lumo.db.session import make_engine, make_sessionmaker

    engine = make_engine(settings().database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return scope_for_email(session, email)
    finally:
        engine.dispose()


def _show(result: TurnResult, rep: str, as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    typer.echo(result["reply"])
    for note in result.get("notes", []):
        if note not in result["reply"]:
            typer.echo(f"\nnote: {note}")
    if result["pending_actions"]:
        thread = result["thread_id"]
        typer.echo(
            f"\nTo approve: lumo approve {thread} --rep {rep}"
            f'\nTo reject:  lumo approve {thread} --rep {rep} --reject "why"'
            f'\nTo edit:    lumo approve {thread} --rep {rep} --action ID --edit \'{{"field": "value"}}\''
        )
    typer.echo(f"\n[thread {result['thread_id']} · {result['model']}]")


@app.command()
def ask(
    message: Annotated[str, typer.Argument(help="What to ask Lumo.")],
    rep: RepOpt,
    date: DateOpt = None,
    json: JsonOpt = False,
    thread: Annotated[str | None, typer.Option("--thread", help="Continue this thread.")] = None,
) -> None:
    """Run one chat turn (offline model unless OPENAI_API_KEY is set)."""
    import asyncio

    from lumo.compose import open_lumo  # here, not at the top: the agent stack is slow to import

    scope = _scope(rep)
    now = dt.datetime.now(dt.UTC)
    as_of = as_of_for(scope, date, now)

    async def run() -> TurnResult:
        async with open_lumo(settings().database_url) as lumo:
            return await lumo.ask(scope, message, as_of=as_of, now=now, thread_id=thread)

    _show(asyncio.run(run()), rep, json)


@app.command()
def approve(
    thread: Annotated[str, typer.Argument(help="The thread waiting for approval.")],
    rep: RepOpt,
    date: DateOpt = None,
    json: JsonOpt = False,
    action: Annotated[
        str | None, typer.Option("--action", help="One action id, or several comma-separated (default: all waiting).")
    ] = None,
    edit: Annotated[str | None, typer.Option("--edit", help="JSON object of changed arguments.")] = None,
    reject: Annotated[str | None, typer.Option("--reject", help="Reject, with this feedback.")] = None,
    approve_anyway: Annotated[
        bool, typer.Option("--approve-anyway", help="Send an edited email although the guard found facts it could not match.")
    ] = False,
) -> None:
    """Approve, edit or reject the actions a thread is waiting on, and continue it."""
    import asyncio

    from lumo.compose import open_lumo

    changes = None
    if edit is not None:
        try:
            changes = jsonlib.loads(edit)
        except jsonlib.JSONDecodeError as exc:
            raise InvalidInput(f"--edit is not valid JSON: {exc.msg}") from None
        if not isinstance(changes, dict):
            raise InvalidInput("--edit must be a JSON object of changed arguments")
    scope = _scope(rep)
    now = dt.datetime.now(dt.UTC)
    as_of = as_of_for(scope, date, now)

    async def run() -> TurnResult:
        async with open_lumo(settings().database_url) as lumo:
            return await lumo.approve(
                scope, thread, as_of=as_of, now=now, action_id=action, edit=changes, reject=reject, approve_anyway=approve_anyway
            )

    _show(asyncio.run(run()), rep, json)
