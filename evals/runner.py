"""Running cases: each run loads the case's data into a fresh SQLite database, plays its turns through the real
agent (graph, tools, checkpointer) and records a transcript that the graders read.

The database comes from one migrated template file copied per run, so a run costs a file copy, an import and
the turns themselves. Runs are sequential by default (the offline model is CPU-bound); `concurrency` > 1 helps
with a real model, whose latency dominates.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals import graders
from evals.cases import Case
from evals.data import Databases, dump, load_into, primary_keys, remove_db
from lumo.agent.checkpoint import open_checkpointer
from lumo.agent.context import Model
from lumo.agent.service import Lumo
from lumo.crm import health
from lumo.crm.errors import LumoError
from lumo.crm.lifecycle import AsOf
from lumo.crm.priorities import compute_priorities
from lumo.crm.scope import Scope, scope_for_email
from lumo.db.session import make_engine, make_sessionmaker

SCHEMA = 1
OFFLINE = "offline"
# guard_catches: answers and emails the grounding guard caught misstating facts (rewritten or replaced).
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "model_calls", "guard_catches")


def _now(case: Case, scope: Scope) -> dt.datetime:
    if case.now is not None:
        return case.now if case.now.tzinfo else case.now.replace(tzinfo=dt.UTC)
    return dt.datetime.combine(case.date, dt.time(12), scope.tz).astimezone(dt.UTC)


def reference(session: Any, scope: Scope, as_of: AsOf) -> dict[str, Any]:
    """The engine's figures for this book and day: the graders compare answers with them."""
    healths = health.account_health(session, scope, as_of)
    return {
        "scope": {
            "user_id": scope.user_id,
            "email": scope.email,
            "role": scope.role,
            "timezone": scope.timezone,
            "owner_ids": sorted(scope.owner_ids) if scope.owner_ids is not None else None,
        },
        "priorities": [i.as_json() for i in compute_priorities(session, scope, as_of, limit=None)],
        "health": [h.as_json() for h in healths],
        "risk": health.revenue_at_risk(healths),
    }


async def _state_messages(lumo: Lumo, scope: Scope, thread_id: str) -> list[dict[str, Any]]:
    snapshot = await lumo.graph.aget_state({"configurable": {"thread_id": lumo.thread_key(scope, thread_id)}})
    return list((snapshot.values or {}).get("messages", []))


def _action_id(spec: Any, waiting: list[dict[str, Any]]) -> str | None:
    if spec is None:
        return None
    if isinstance(spec, int):
        return waiting[spec]["id"] if 0 <= spec < len(waiting) else f"missing-{spec}"
    found = [a for a in waiting if a["tool"] == spec or a["id"] == spec]
    return found[0]["id"] if found else f"missing-{spec}"


def _usage_delta(now: dict[str, int], before: dict[str, int] | None) -> dict[str, int]:
    keys = USAGE_KEYS
    before = before or {}
    return {k: max(0, int(now.get(k, 0)) - int(before.get(k, 0))) for k in keys}


async def run_case(
    case: Case,
    run: int,
    dbs: Databases,
    model: Model | None,
    model_label: str,
    judge_model: Model | None = None,
    lumo_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run of a case; never raises: a failure is recorded in the transcript for the graders."""
    transcript: dict[str, Any] = {
        "schema": SCHEMA,
        "case": case.model_dump(mode="json"),
        "run": run,
        "model": model_label,
        "data": None,
        "reference": None,
        "turns": [],
        "threads": {},
        "db_before": None,
        "db_after": None,
        "primary_keys": primary_keys(),
        "usage": dict.fromkeys(USAGE_KEYS, 0),
        "latency_s": 0.0,
        "setup_s": 0.0,
        "judge": None,
        "error": None,
    }
    started = time.perf_counter()
    url, path = dbs.fresh(f"{case.name}-{run}")
    engine = make_engine(url)
    try:
        snapshot = dbs.snapshot_for(case)
        transcript["data"] = snapshot
        load_into(engine, snapshot)
        session_factory = make_sessionmaker(engine)
        with session_factory() as session:
            scope = scope_for_email(session, case.user)
            as_of = AsOf(case.date, scope.tz)
            transcript["reference"] = reference(session, scope, as_of)
        transcript["db_before"] = dump(engine)
        now = _now(case, scope)
        transcript["now"] = now.isoformat()
        transcript["setup_s"] = round(time.perf_counter() - started, 4)
        async with open_checkpointer(url) as checkpointer:
            lumo = Lumo.create(checkpointer, session_factory, model, **(lumo_options or {}))
            await _play(case, lumo, engine, scope, as_of, now, transcript)
        health = getattr(model, "health", None)
        if health is not None:  # the live model's last known state: why answers fell back, if they did
            transcript["model_state"] = health.as_json()
        if judge_model is not None:
            transcript["judge"] = await _judge(judge_model, transcript)
        transcript["db_after"] = dump(engine)
    except Exception as exc:  # noqa: BLE001  (a broken case or agent is a failed run, not a stopped suite)
        problems = "".join(f"\n  {line}" for line in getattr(exc, "problems", []))  # a rejected import says why
        transcript["error"] = f"{type(exc).__name__}: {exc}{problems}\n{traceback.format_exc(limit=6)}"
        if transcript["db_before"] is not None and transcript["db_after"] is None:
            try:
                transcript["db_after"] = dump(engine)
            except Exception:  # noqa: BLE001
                transcript["db_after"] = transcript["db_before"]
    finally:
        engine.dispose()
        remove_db(path)
    transcript["grades"] = (
        [g.as_json() for g in graders.grade(transcript)]
        if transcript["data"]
        else [
            {
                "grader": "run",
                "passed": False,
                "applicable": True,
                "failures": [transcript["error"]],
                "violations": [],
                "metrics": {},
            }
        ]
    )
    transcript["passed"] = graders.passed(transcript["grades"])
    return transcript


async def _play(
    case: Case, lumo: Lumo, engine: Any, scope: Scope, as_of: AsOf, now: dt.datetime, transcript: dict[str, Any]
) -> None:
    before, keys = transcript["db_before"], transcript["primary_keys"]
    thread_ids: dict[str, str] = {}
    waiting: dict[str, list[dict[str, Any]]] = {}
    usage_seen: dict[str, dict[str, int]] = {}
    total_latency = 0.0
    for index, turn in enumerate(case.turns):
        label = turn.thread
        thread_id = thread_ids.setdefault(label, f"{case.name}-{label}-{uuid.uuid4().hex[:6]}")
        start = len(await _state_messages(lumo, scope, thread_id))
        record: dict[str, Any] = {
            "index": index,
            "kind": turn.kind,
            "thread": label,
            "result": None,
            "error": None,
            "crashed": False,
        }
        at = now + dt.timedelta(minutes=index)  # each turn a minute after the last, so effects can be ordered
        record["at"] = at.isoformat()
        began = time.perf_counter()
        try:
            if turn.ask is not None:
                record["message"] = turn.ask
                result = await lumo.ask(scope, turn.ask, as_of=as_of, now=at, thread_id=thread_id, start_if_new=True)
                usage = _usage_delta(result.get("usage") or {}, None)
            else:
                spec = turn.approve
                assert spec is not None
                action_id = _action_id(spec.action, waiting.get(label, []))
                record["approve"] = {**spec.model_dump(mode="json"), "action_id": action_id}
                result = await lumo.approve(
                    scope, thread_id, as_of=as_of, now=at, action_id=action_id, edit=spec.edit, reject=spec.reject
                )
                usage = _usage_delta(result.get("usage") or {}, usage_seen.get(label))
            record["result"] = result
            usage_seen[label] = dict(result.get("usage") or {})
            waiting[label] = result.get("pending_actions") or []
        except LumoError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            usage = dict.fromkeys(USAGE_KEYS, 0)
        except Exception as exc:  # noqa: BLE001
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["crashed"] = True
            record["traceback"] = traceback.format_exc(limit=8)
            usage = dict.fromkeys(USAGE_KEYS, 0)
        record["latency_s"] = round(time.perf_counter() - began, 4)
        total_latency += record["latency_s"]
        record["usage"] = usage
        for key, value in usage.items():
            transcript["usage"][key] = transcript["usage"].get(key, 0) + value
        after = dump(engine)
        record["db_changes"] = graders.db_diff(before, after, keys)  # what this turn changed
        before = after
        messages = await _state_messages(lumo, scope, thread_id)
        record["messages"] = [start, len(messages)]
        transcript["threads"][label] = messages
        transcript["turns"].append(record)
    transcript["latency_s"] = round(total_latency, 4)


async def _judge(model: Model, transcript: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts = []
    for turn in transcript["turns"]:
        if turn["kind"] != "ask" or not turn.get("result"):
            continue
        try:
            verdict = await graders.judge_turn(model, turn["message"], turn["result"].get("reply") or "")
        except Exception as exc:  # noqa: BLE001  (a judge that cannot answer fails its verdict, not the run)
            verdict = {"scores": None, "passed": False, "reason": f"the judge failed: {type(exc).__name__}: {exc}"}
        verdicts.append({"turn": turn["index"] + 1, **verdict})
    return verdicts


async def run_suite(
    cases: list[Case],
    *,
    k: int,
    model: Model | None,
    model_label: str,
    concurrency: int = 1,
    judge_model: Model | None = None,
    workdir: Path | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    lumo_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every case k times; transcripts in case order, then run order."""
    # Case databases are scratch: in memory-backed /dev/shm when there is one, so commits cost no disk sync.
    shm = Path("/dev/shm")
    scratch = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="lumo-evals-", dir=scratch) as tmp:
        dbs = Databases(workdir or Path(tmp))
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(order: int, case: Case, run: int) -> dict[str, Any]:
            async with gate:
                transcript = await run_case(case, run, dbs, model, model_label, judge_model, lumo_options)
            transcript["order"] = order
            if on_done is not None:
                on_done(transcript)
            return transcript

        jobs = [one(order, case, run) for order, case in enumerate(cases) for run in range(1, k + 1)]
        return list(await asyncio.gather(*jobs))


def save_transcripts(transcripts: list[dict[str, Any]], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for transcript in transcripts:
        name = f"{transcript['case']['name']}__{transcript['run']}.json"
        (directory / name).write_text(json.dumps(transcript, indent=1, default=str), encoding="utf-8")


def load_transcripts(directory: Path) -> list[dict[str, Any]]:
    paths = sorted(directory.glob("*.json"))
    transcripts = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    return sorted(transcripts, key=lambda t: (int(t.get("order", 0)), t["case"]["name"], t["run"]))


def regrade(transcripts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grade saved transcripts again (with the graders as they are now), without any model call."""
    for transcript in transcripts:
        if transcript.get("data"):
            transcript["grades"] = [g.as_json() for g in graders.grade(transcript)]
        transcript["passed"] = graders.passed(transcript["grades"])
    return transcripts
