"""`lumo doctor`: call the configured model once for a plain answer and once for a tool call, and say what works."""

from __future__ import annotations

import typer

from lumo.cli.app import JsonOpt, app, emit_json


@app.command()
def doctor(json: JsonOpt = False) -> None:
    """Call the configured model once (an answer, a tool call) and say what works; exit 1 when something does not."""
    import dataclasses

    from lumo.agent.doctor import run_doctor  # here: it imports the model client

    checks, heading = run_doctor()
    if json:
        emit_json({"model": heading, "checks": [dataclasses.asdict(c) for c in checks]})
    else:
        typer.echo(heading)
        for check in checks:
            typer.echo(check.line())
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
