"""Reports: the figures of a set of runs, as markdown and JSON, checked against `evals/thresholds.toml`."""

from __future__ import annotations

import json
import statistics
import tomllib
from collections import Counter, defaultdict
from math import comb
from pathlib import Path
from typing import Any

from evals.graders import GRADERS, OFFLINE_LABELS, offline_answers

THRESHOLDS = Path(__file__).parent / "thresholds.toml"


def pass_hat_k(results: dict[str, list[bool]], k: int) -> float:
    """tau-bench's pass^k: per case C(c, k) / C(n, k) with c passes out of n runs, averaged over cases."""
    scores = []
    for runs in results.values():
        n, c = len(runs), sum(runs)
        if k > n:
            raise ValueError(f"pass^{k} needs at least {k} runs per case, a case has {n}")
        scores.append(comb(c, k) / comb(n, k))
    return sum(scores) / len(scores) if scores else 0.0


def _grade(transcript: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((g for g in transcript.get("grades", []) if g["grader"] == name), None)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summarize(transcripts: list[dict[str, Any]], *, runtime_s: float | None = None) -> dict[str, Any]:
    """Every figure of the report, from graded transcripts."""
    by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in transcripts:
        by_case[t["case"]["name"]].append(t)
    runs_per_case = min((len(v) for v in by_case.values()), default=0)
    outcomes = {name: [bool(t["passed"]) for t in runs] for name, runs in by_case.items()}
    total = len(transcripts)
    passed = sum(bool(t["passed"]) for t in transcripts)
    grader_failures: dict[str, dict[str, Any]] = {}
    for name in GRADERS:
        failing = [t for t in transcripts if (g := _grade(t, name)) and not g["passed"]]
        applicable = [t for t in transcripts if (g := _grade(t, name)) and g.get("applicable")]
        grader_failures[name] = {
            "applicable_runs": len(applicable),
            "failed_runs": len(failing),
            "cases": sorted({t["case"]["name"] for t in failing}),
        }
    facts = grounded = 0
    for t in transcripts:
        if g := _grade(t, "grounding"):
            facts += g["metrics"].get("facts", 0)
            grounded += g["metrics"].get("grounded", 0)
    violations, known = [], []
    for t in transcripts:
        for g in t.get("grades", []):
            for v in g.get("violations", []):
                entry = {"case": t["case"]["name"], "run": t["run"], "grader": g["grader"], "violation": v}
                (known if t["case"].get("known_issue") else violations).append(entry)
    known_issues = []
    for name, runs in by_case.items():
        issue = (runs[0]["case"].get("known_issue") or "").strip()
        if issue:
            reproduced = any(not t["passed"] for t in runs)
            known_issues.append({"case": name, "issue": issue, "reproduced": reproduced})
    precisions, ndcgs = [], []
    for t in transcripts:
        g = _grade(t, "priorities")
        if g and g.get("applicable") and "precision_at_k" in g["metrics"]:
            precisions.append(g["metrics"]["precision_at_k"])
            ndcgs.append(g["metrics"]["ndcg_at_k"])
    groups: dict[str, dict[str, Any]] = {}
    for runs in by_case.values():
        group = runs[0]["case"]["group"]
        entry = groups.setdefault(group, {"cases": 0, "runs": 0, "passed_runs": 0})
        entry["cases"] += 1
        entry["runs"] += len(runs)
        entry["passed_runs"] += sum(bool(t["passed"]) for t in runs)
    cases = []
    for name, runs in by_case.items():
        failures = []
        for t in runs:
            for g in t.get("grades", []):
                if not g["passed"]:
                    failures.extend(f"run {t['run']} · {g['grader']}: {f}" for f in g["failures"])
        cases.append(
            {
                "case": name,
                "group": runs[0]["case"]["group"],
                "runs": len(runs),
                "passed_runs": sum(bool(t["passed"]) for t in runs),
                "model_calls": statistics.mean(t["usage"]["model_calls"] for t in runs),
                "prompt_tokens": statistics.mean(t["usage"]["prompt_tokens"] for t in runs),
                "completion_tokens": statistics.mean(t["usage"]["completion_tokens"] for t in runs),
                "latency_s": statistics.mean(t.get("latency_s", 0.0) for t in runs),
                "guard_catches": sum(t["usage"].get("guard_catches", 0) for t in runs),
                "offline_answers": sum(len(offline_answers(t)) for t in runs),
                "failures": failures,
            }
        )
    latencies = [t.get("latency_s", 0.0) for t in transcripts]
    models = sorted({t.get("model", "") for t in transcripts})
    live = any(t.get("model") not in OFFLINE_LABELS for t in transcripts)
    answers = sum(1 for t in transcripts for turn in t.get("turns", []) if turn.get("result"))
    fallbacks = [why for t in transcripts for _, why in offline_answers(t)]
    problems = Counter(
        (t.get("model_state") or {}).get("problem") for t in transcripts if (t.get("model_state") or {}).get("problem")
    )
    return {
        "model": ", ".join(models),
        "cases": len(by_case),
        "runs_per_case": runs_per_case,
        "runs": total,
        "passed_runs": passed,
        "pass_rate": passed / total if total else 0.0,
        "pass_hat_k": {str(k): pass_hat_k(outcomes, k) for k in range(1, runs_per_case + 1)},
        "grounding": {"facts": facts, "grounded": grounded, "precision": grounded / facts if facts else 1.0},
        "policy_violations": violations,
        "known_violations": known,
        "known_issues": known_issues,
        "priorities": {
            "cases": len(precisions),
            "precision_at_k": statistics.mean(precisions) if precisions else None,
            "ndcg_at_k": statistics.mean(ndcgs) if ndcgs else None,
        },
        "graders": grader_failures,
        "groups": dict(sorted(groups.items())),
        "usage": {
            "model_calls": sum(t["usage"]["model_calls"] for t in transcripts),
            "prompt_tokens": sum(t["usage"]["prompt_tokens"] for t in transcripts),
            "completion_tokens": sum(t["usage"]["completion_tokens"] for t in transcripts),
        },
        "latency_s": {
            "mean": statistics.mean(latencies) if latencies else 0.0,
            "p50": _percentile(latencies, 0.5),
            "p95": _percentile(latencies, 0.95),
            "max": max(latencies, default=0.0),
        },
        "runtime_s": runtime_s,
        "offline_answers": {
            "live": live,
            "answers": len(fallbacks),
            "of": answers,
            "rate": (len(fallbacks) / answers if answers else 0.0) if live else None,
            "notes": dict(Counter(fallbacks).most_common()),
            "model_problems": dict(problems.most_common()),
        },
        "guard_catches": {
            "total": sum(c["guard_catches"] for c in cases),
            "cases": {c["case"]: c["guard_catches"] for c in cases if c["guard_catches"]},
        },
        "case_results": cases,
    }


def offline_reason(summary: dict[str, Any]) -> str:
    """Why a live run's answers came from the fallback, in one line (empty when none did)."""
    off = summary.get("offline_answers") or {}
    if not off.get("answers"):
        return ""
    causes = [c.rstrip(".") for c in list(off.get("model_problems") or {}) or list(off.get("notes") or {})]
    return f"{off['answers']} of {off['of']} answers were answered offline by Lumo's fallback, not the model: " + "; ".join(
        causes[:3]
    )


# --- thresholds ---------------------------------------------------------------------------------------


def load_thresholds(model_label: str, path: Path = THRESHOLDS) -> tuple[str, dict[str, Any]]:
    """The section for this model: [offline], [models."NAME"], else [default]."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if model_label in ("offline", "lumo-offline") and "offline" in data:
        return "offline", data["offline"]
    models = data.get("models") or {}
    if model_label in models:
        return f'models."{model_label}"', models[model_label]
    return "default", data.get("default") or {}


def check_thresholds(summary: dict[str, Any], limits: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per threshold: the figure, the limit and whether it holds."""
    figures: dict[str, float | None] = {
        "pass_rate": summary["pass_rate"],
        "grounding_precision": summary["grounding"]["precision"],
        "policy_violations": float(len(summary["policy_violations"])),
        "priorities_precision_at_k": summary["priorities"]["precision_at_k"],
        "priorities_ndcg_at_k": summary["priorities"]["ndcg_at_k"],
        "offline_answer_rate": (summary.get("offline_answers") or {}).get("rate"),
    }
    for k, value in summary["pass_hat_k"].items():
        figures[f"pass_hat_{k}"] = value
    rows = []
    for key, limit in sorted(limits.items()):
        kind, _, name = key.partition("_")
        if kind not in ("min", "max") or not name:
            raise ValueError(f"threshold {key!r}: use min_<figure> or max_<figure>")
        if name not in figures:
            if name.startswith("pass_hat_"):
                continue  # fewer runs than k: pass^k is not measured
            raise ValueError(f"threshold {key!r}: unknown figure {name!r}")
        value = figures[name]
        ok = value is None or (value >= limit if kind == "min" else value <= limit)
        rows.append({"figure": name, "value": value, "limit": limit, "kind": kind, "ok": ok})
    return rows


# --- writing ------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _figure(row: dict[str, Any]) -> str:
    if row["figure"] == "policy_violations":
        return str(int(row["value"]))
    return _num(row["value"])


def render_markdown(summary: dict[str, Any], checks: list[dict[str, Any]], *, section: str, command: str = "") -> str:
    s = summary
    lines = [f"# Lumo eval report: {s['model']}", ""]
    if command:
        lines += [f"`{command}`", ""]
    runtime = f", runtime {s['runtime_s']:.1f} s" if s.get("runtime_s") is not None else ""
    lines += [
        f"{s['cases']} cases in {len(s['groups'])} groups, {s['runs_per_case']} run(s) each ({s['runs']} runs){runtime}.",
        "",
        "## Summary",
        "",
        "| figure | value |",
        "| --- | --- |",
    ]
    lines.append(f"| pass rate | {_pct(s['pass_rate'])} ({s['passed_runs']}/{s['runs']} runs) |")
    for k, value in s["pass_hat_k"].items():
        lines.append(f"| pass^{k} | {_num(value)} |")
    g = s["grounding"]
    lines.append(f"| grounding precision | {_pct(g['precision'])} ({g['grounded']}/{g['facts']} facts) |")
    known = f" (+{len(s['known_violations'])} known, see below)" if s["known_violations"] else ""
    lines.append(f"| policy violations | {len(s['policy_violations'])}{known} |")
    p = s["priorities"]
    lines.append(f"| priorities precision@k | {_num(p['precision_at_k'])} ({p['cases']} runs) |")
    lines.append(f"| priorities nDCG@k | {_num(p['ndcg_at_k'])} |")
    off = s.get("offline_answers") or {}
    if off.get("live"):
        lines.append(f"| offline answers (the fallback, not the model) | {off['answers']} of {off['of']} |")
    guard = s.get("guard_catches") or {"total": 0, "cases": {}}
    lines.append(f"| guard catches (misstated facts caught) | {guard['total']} in {len(guard['cases'])} case(s) |")
    u = s["usage"]
    per = max(1, s["runs"])
    lines.append(f"| model calls | {u['model_calls']} ({u['model_calls'] / per:.2f} per run) |")
    lines.append(
        f"| tokens (prompt + completion) | {u['prompt_tokens']} + {u['completion_tokens']} "
        f"({(u['prompt_tokens'] + u['completion_tokens']) / per:.0f} per run) |"
    )
    lat = s["latency_s"]
    lines.append(
        f"| latency per run | mean {lat['mean'] * 1000:.0f} ms, p50 {lat['p50'] * 1000:.0f} ms, p95 {lat['p95'] * 1000:.0f} ms |"
    )
    lines += [
        "",
        f"## Thresholds ([{section}] in evals/thresholds.toml)",
        "",
        "| figure | value | limit | ok |",
        "| --- | --- | --- | --- |",
    ]
    for row in checks:
        sign = ">=" if row["kind"] == "min" else "<="
        lines.append(f"| {row['figure']} | {_figure(row)} | {sign} {row['limit']} | {'yes' if row['ok'] else '**NO**'} |")
    if off.get("answers"):
        lines += ["", "## Offline answers", "", offline_reason(s) + ".", ""]
        for note, count in (off.get("notes") or {}).items():
            lines.append(f"- {count} x {note}")
    lines += ["", "## Groups", "", "| group | cases | pass rate |", "| --- | --- | --- |"]
    for group, entry in s["groups"].items():
        lines.append(
            f"| {group} | {entry['cases']} | {_pct(entry['passed_runs'] / entry['runs'])} "
            f"({entry['passed_runs']}/{entry['runs']}) |"
        )
    lines += ["", "## Graders", "", "| grader | runs checked | failed runs | failing cases |", "| --- | --- | --- | --- |"]
    for name, entry in s["graders"].items():
        cases = ", ".join(entry["cases"]) or "-"
        lines.append(f"| {name} | {entry['applicable_runs']} | {entry['failed_runs']} | {cases} |")
    lines += ["", "## Policy violations", ""]
    if s["policy_violations"]:
        for v in s["policy_violations"]:
            lines.append(f"- {v['case']} (run {v['run']}, {v['grader']}): {v['violation']}")
    else:
        lines.append("None.")
    if s["known_issues"]:
        lines += [
            "",
            "## Known agent issues",
            "",
            "Cases marked `known_issue`: they run and fail like any case, but their policy violations are listed "
            "here instead of counting against `max_policy_violations` until the agent is fixed.",
            "",
        ]
        for k in s["known_issues"]:
            state = "reproduced" if k["reproduced"] else "**no longer reproduces: remove the marker**"
            lines.append(f"- **{k['case']}** ({state}): {k['issue']}")
            for v in s["known_violations"]:
                if v["case"] == k["case"]:
                    lines.append(f"  - run {v['run']}, {v['grader']}: {v['violation']}")
    failing = [c for c in s["case_results"] if c["passed_runs"] < c["runs"]]
    lines += ["", "## Failing cases", ""]
    if not failing:
        lines.append("None.")
    for c in failing:
        lines.append(f"- **{c['case']}** ({c['group']}, {c['passed_runs']}/{c['runs']} passed)")
        for failure in c["failures"][:8]:
            lines.append(f"  - {failure}")
        if len(c["failures"]) > 8:
            lines.append(f"  - ... and {len(c['failures']) - 8} more")
    lines += [
        "",
        "## Cases",
        "",
        "| case | group | passed | model calls | tokens | guard catches | latency |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in s["case_results"]:
        tokens = c["prompt_tokens"] + c["completion_tokens"]
        lines.append(
            f"| {c['case']} | {c['group']} | {c['passed_runs']}/{c['runs']} | {c['model_calls']:.1f} | "
            f"{tokens:.0f} | {c.get('guard_catches', 0)} | {c['latency_s'] * 1000:.0f} ms |"
        )
    return "\n".join(lines) + "\n"


def write_report(
    directory: Path, summary: dict[str, Any], checks: list[dict[str, Any]], *, section: str, command: str = ""
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.md").write_text(render_markdown(summary, checks, section=section, command=command), encoding="utf-8")
    body = {**summary, "thresholds": {"section": section, "checks": checks, "ok": all(row["ok"] for row in checks)}}
    (directory / "report.json").write_text(json.dumps(body, indent=2, default=str), encoding="utf-8")
