"""`python -m evals run|regrade|list`: run the suite, grade saved transcripts again, list the cases.

Exit codes: 0 when every threshold holds, 1 when a figure is below its threshold, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from evals import report, runner
from evals.cases import CaseError, load_cases
from lumo.config import settings_from

REPORTS = Path(__file__).parent / "reports"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evals", description="Lumo's evaluation suite.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the cases and write a report")
    run.add_argument("--model", default="offline", help="'offline' (default) or a model name for OPENAI_API_KEY's server")
    run.add_argument("--k", type=int, default=1, help="runs per case (pass^k is reported for k = 1..N)")
    run.add_argument("--cases", default=None, help="glob over case names, groups or files; commas for several")
    run.add_argument("--report", type=Path, default=None, help="report directory (default evals/reports/<timestamp>)")
    run.add_argument("--concurrency", type=int, default=None, help="runs at once (default 1 offline, 4 live)")
    run.add_argument("--judge", action="store_true", help="add the LLM-as-judge rubric (live models only)")
    run.add_argument("--judge-model", default=None, help="model for the judge (default: --model)")
    run.add_argument("--thresholds", type=Path, default=report.THRESHOLDS)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    regrade = sub.add_parser("regrade", help="grade a report's saved transcripts again, without a model")
    regrade.add_argument("directory", type=Path)
    regrade.add_argument("--report", type=Path, default=None, help="write the new report here (default: DIRECTORY)")
    regrade.add_argument("--thresholds", type=Path, default=report.THRESHOLDS)
    listing = sub.add_parser("list", help="list the cases per group")
    listing.add_argument("--cases", default=None)
    phrasings = sub.add_parser("phrasings", help="the phrasing suite: intent and slot accuracy of the offline understanding")
    phrasings.add_argument("--min", type=float, default=0.95, help="the intent and slot accuracy a run must reach")
    phrasings.add_argument("--export", action="store_true", help="write the fallback classifier's examples file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.getLogger("lumo").setLevel(logging.ERROR)
    console = Console(stderr=True)
    try:
        if args.command == "list":
            return _list(args)
        if args.command == "regrade":
            return _regrade(args, console)
        if args.command == "phrasings":
            return _phrasings(args)
        return asyncio.run(_run(args, console))
    except (CaseError, ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2


def _phrasings(args: argparse.Namespace) -> int:
    from evals import phrasings

    if args.export:
        from lumo.agent.classify import EXAMPLES

        EXAMPLES.write_text(phrasings.examples())
        print(f"wrote {EXAMPLES}")
        return 0
    figures = phrasings.run()
    print(phrasings.report(figures))
    ok = min(figures.intent_accuracy, figures.slot_accuracy) >= args.min and not figures.help_answers
    return 0 if ok else 1


def _list(args: argparse.Namespace) -> int:
    cases = load_cases(args.cases)
    groups: dict[str, list[str]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case.name)
    for group, names in groups.items():
        print(f"{group} ({len(names)}): {', '.join(names)}")
    print(f"{len(cases)} cases in {len(groups)} groups")
    return 0


def _model(name: str) -> Any:
    from lumo.config import model_settings
    from lumo.llm import LLMSettings, ModelClient

    found = model_settings()
    if not found.api_key:
        raise ValueError(f"--model {name} needs OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server)")
    return ModelClient(LLMSettings(api_key=found.api_key, base_url=found.base_url, model=name))


async def _run(args: argparse.Namespace, console: Console) -> int:
    if args.k < 1:
        raise ValueError("--k must be at least 1")
    cases = load_cases(args.cases)
    if not cases:
        raise ValueError(f"no cases match {args.cases!r}")
    offline = args.model == runner.OFFLINE
    if args.judge and offline:
        raise ValueError("--judge needs a live model: the offline model cannot judge")
    model = None if offline else _model(args.model)
    judge = None
    if args.judge:
        judge = model if not args.judge_model else _model(args.judge_model)
    label = "lumo-offline" if offline else args.model
    concurrency = args.concurrency or (1 if offline else 4)
    directory = args.report or REPORTS / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    started = time.perf_counter()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console,
        disable=args.no_progress,
        transient=False,
    )
    try:
        with progress:
            task = progress.add_task(f"evals · {label}", total=len(cases) * args.k, failed=0)
            failed = 0

            def done(transcript: dict[str, Any]) -> None:
                nonlocal failed
                failed += not transcript["passed"]
                progress.update(task, advance=1, failed=failed, description=f"evals · {transcript['case']['name']}")

            settings = settings_from()  # the turn deadline and strict schemas, as `lumo serve` has them
            transcripts = await runner.run_suite(
                cases,
                k=args.k,
                model=model,
                model_label=label,
                concurrency=concurrency,
                judge_model=judge,
                on_done=done,
                lumo_options={"turn_deadline_s": settings.turn_deadline_s, "strict_tools": settings.strict_tools},
            )
    finally:
        for client in {id(m): m for m in (model, judge) if m is not None}.values():
            await client.aclose()
    runtime = time.perf_counter() - started
    runner.save_transcripts(transcripts, directory / "transcripts")
    command = "python -m evals " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
    return _finish(transcripts, directory, args.thresholds, label, console, runtime=runtime, command=command)


def _regrade(args: argparse.Namespace, console: Console) -> int:
    source = args.directory / "transcripts"
    if not source.is_dir():
        raise FileNotFoundError(f"{source} does not exist: give a report directory written by `python -m evals run`")
    transcripts = runner.regrade(runner.load_transcripts(source))
    if not transcripts:
        raise ValueError(f"no transcripts in {source}")
    previous = args.directory / "report.json"
    runtime = None
    if previous.exists():
        import json

        runtime = json.loads(previous.read_text(encoding="utf-8")).get("runtime_s")
    label = transcripts[0].get("model", "")
    return _finish(
        transcripts,
        args.report or args.directory,
        args.thresholds,
        label,
        console,
        runtime=runtime,
        command=f"python -m evals regrade {args.directory}",
    )


def _finish(
    transcripts: list[dict[str, Any]],
    directory: Path,
    thresholds: Path,
    label: str,
    console: Console,
    *,
    runtime: float | None,
    command: str,
) -> int:
    summary = report.summarize(transcripts, runtime_s=runtime)
    section, limits = report.load_thresholds(label, thresholds)
    checks = report.check_thresholds(summary, limits)
    report.write_report(directory, summary, checks, section=section, command=command)
    g = summary["grounding"]
    console.print(
        f"{summary['cases']} cases x {summary['runs_per_case']}: pass rate {summary['pass_rate'] * 100:.1f}%, "
        f"pass^1 {summary['pass_hat_k'].get('1', 0):.3f}, grounding {g['precision'] * 100:.1f}% "
        f"({g['grounded']}/{g['facts']}), policy violations {len(summary['policy_violations'])}, "
        f"priorities P@k {report._num(summary['priorities']['precision_at_k'])} "
        f"nDCG@k {report._num(summary['priorities']['ndcg_at_k'])}" + (f", {runtime:.1f} s" if runtime is not None else "")
    )
    console.print(f"report: {directory / 'report.md'}")
    broken = [row for row in checks if not row["ok"]]
    for row in broken:
        console.print(f"[red]below threshold:[/red] {row['figure']} = {report._figure(row)} (limit {row['kind']} {row['limit']})")
    if reason := report.offline_reason(summary):
        console.print(f"[yellow]{reason}[/yellow]", markup=True, highlight=False)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
