"""The `lumo` command line: a hand-written snapshot imported, then read back as JSON, and its errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from lumo.cli import main

DATA = Path(__file__).parent / "data" / "small_book.json"
DATE = "2026-11-25"


class Run:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys, self.monkeypatch = capsys, monkeypatch

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "argv", ["lumo", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def run(db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("LUMO_DATABASE_URL", db_url)
    return Run(capsys, monkeypatch)


@pytest.fixture
def imported(run: Run) -> Run:
    code, out, err = run("import", str(DATA))
    assert code == 0, err
    return run


def test_priorities_of_a_hand_written_book(imported: Run) -> None:
    items = imported.json("priorities", "--rep", "dana@acme.test", "--date", DATE)["items"]
    assert [(i["kind"], i["invoice_number"]) for i in items] == [
        ("overdue", "INV-1042"),
        ("overdue", "INV-1043"),
        ("stale_status", "INV-1044"),
    ]
    first = items[0]
    assert (first["amount"], first["currency"], first["days_overdue"], first["account"]) == ("12000.00", "EUR", 25, "Globex")
    assert first["reasons"] == [
        "EUR 12,000.00 overdue 25 days",
        "status still 'sent'",
        "key account",
        "renewal on 2027-01-15",
        "no contact in 21 days",
        "Globex has 1 other overdue invoice",
        "task due today (2026-11-25): Call Hank",  # the task on INV-1042 weighs it up
    ]
    assert first["task_id"] == "t1"
    assert items[1]["action"].startswith("Wait: INV-1043 was chased 2 days ago")  # the cooldown
    assert items[2]["reasons"][0] == "paid in full (USD 900.00) but status 'viewed'"
    assert first["action"].startswith("Mark it overdue and send the firm reminder for INV-1042 (Hank Scorpio")
    assert set(first) >= {"rank", "kind", "invoice_number", "account", "amount", "currency", "days_overdue", "reasons", "action"}


def test_stale_findings_of_a_hand_written_book(imported: Run) -> None:
    found = imported.json("stale", "--rep", "dana@acme.test", "--date", DATE)["items"]
    assert [(f["invoice_number"], f["kind"]) for f in found] == [
        ("INV-1042", "overdue_not_marked"),
        ("INV-1042", "no_recent_activity"),
        ("INV-1044", "paid_not_marked"),
    ]
    assert all(set(f) == {"invoice_number", "kind", "evidence", "fix", "action"} for f in found)


def test_draft_of_a_hand_written_book(imported: Run) -> None:
    draft = imported.json("draft", "INV-1042", "--rep", "dana@acme.test", "--date", DATE)
    assert draft["to"] == ["hank@globex.test"] and draft["cc"] == [] and draft["tone"] == "firm"
    assert draft["invoice_numbers"] == ["INV-1042"]  # INV-1043 of the same contact is in its cooldown
    assert draft["skipped_reason"] is None and "€12,000.00" in draft["body"] and "$1,500.00" not in draft["body"]
    assert "https://pay.example/INV-1042" in draft["body"]


def test_draft_is_skipped_with_a_reason_for_a_paid_invoice(imported: Run) -> None:
    draft = imported.json("draft", "INV-1044", "--rep", "dana@acme.test", "--date", DATE)
    assert draft["skipped_reason"] == "zero_balance" and draft["body"] == ""


def test_manager_sees_the_team_and_rep_only_their_own(imported: Run) -> None:
    mine = imported.json("invoices", "--rep", "dana@acme.test", "--date", DATE)
    team = imported.json("invoices", "--rep", "maria@acme.test", "--date", DATE)
    assert {i["invoice_number"] for i in mine["items"]} == {"INV-1042", "INV-1043", "INV-1044"}
    assert team["total"] == 4


@pytest.mark.parametrize(
    "command",
    [
        ["draft", "INV-2001"],
        ["invoices", "--account", "Initech"],
        ["priorities"],
        ["stale"],
        ["accounts"],
    ],
)
def test_a_rep_cannot_see_another_reps_invoice_by_any_read_command(imported: Run, command: list[str]) -> None:
    code, out, err = imported(*command, "--rep", "dana@acme.test", "--date", DATE, "--json")
    assert "INV-2001" not in out and "7777" not in out and "Initech" not in out
    if command[0] == "draft":
        assert code == 3 and err.strip() == "error: invoice INV-2001 not found"


def test_unknown_invoice_bad_date_and_unknown_rep_are_one_line_errors(imported: Run) -> None:
    assert imported("draft", "INV-9999", "--rep", "dana@acme.test")[0] == 3
    code, _, err = imported("priorities", "--rep", "dana@acme.test", "--date", "2026-13-01")
    assert code == 2 and err.strip() == "error: bad date '2026-13-01': use YYYY-MM-DD"
    code, _, err = imported("stale", "--rep", "nobody@acme.test")
    assert code == 2 and err.strip() == "error: unknown user: nobody@acme.test"
    code, _, err = imported("invoices", "--rep", "dana@acme.test", "--bucket", "7-8")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_bad_import_writes_nothing_and_lists_problems(run: Run, tmp_path: Path) -> None:
    data = json.loads(DATA.read_text())
    data["invoices"][0]["amount"] = 12.5
    data["invoices"][1]["currency"] = "EURO"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code, _, err = run("import", str(bad))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 3 and lines[0].startswith("invoices[0] (id=i1): amount:")
    assert lines[1].startswith("invoices[1] (id=i2): currency:") and lines[-1].startswith("error: 2 problem(s)")
    code, _, err = run("priorities", "--rep", "dana@acme.test")
    assert code == 2 and "unknown user" in err  # nothing was written


def test_export_round_trips(imported: Run, tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert imported("export", str(first))[0] == 0
    assert imported("import", str(first))[0] == 0
    assert imported("export", str(second))[0] == 0
    assert json.loads(first.read_text()) == json.loads(second.read_text())


def test_seed_refuses_a_database_with_data(imported: Run) -> None:
    code, _, err = imported("seed", "--demo", "--invoices", "50", "--reps", "2")
    assert code == 2 and "already has data" in err


def test_missing_import_file_is_one_line(run: Run, tmp_path: Path) -> None:
    code, _, err = run("import", str(tmp_path / "nope.json"))
    assert code == 2 and len(err.strip().splitlines()) == 1


# --- the CLI's shape: JSON, tables, amounts, refused options, letter case, start-up ----------------------


def test_read_commands_print_json_objects_with_their_items(imported: Run) -> None:
    # The shape of the HTTP reads (GET /v1/priorities, /v1/stale, /v1/invoices, /v1/accounts).
    for command, key in (("priorities", "items"), ("stale", "items"), ("invoices", "items"), ("accounts", "accounts")):
        out = imported.json(command, "--rep", "dana@acme.test", "--date", DATE)
        assert isinstance(out, dict) and isinstance(out[key], list) and out[key], command


@pytest.mark.parametrize("command", ["priorities", "invoices", "stale", "accounts"])
def test_tables_fit_80_columns_and_say_amounts_with_code_and_separators(
    imported: Run, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = imported(command, "--rep", "dana@acme.test", "--date", DATE)
    assert code == 0, err
    assert out.strip() and max(len(line) for line in out.splitlines()) <= 80
    amount = {"priorities": "EUR 12,000.00", "invoices": "EUR 12,000.00", "accounts": "USD 14,460.00"}.get(command)
    if amount is not None:  # never 'EUR 12000.00'
        assert amount in out and amount.replace(",", "") not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["invoices", "--currency", "XYZ"], "error: unknown currency 'XYZ': use an ISO-4217 code such as USD or EUR"),
        (["priorities", "--limit", "0"], "error: --limit must be at least 1, not 0"),
        (["accounts", "--limit", "0"], "error: --limit must be at least 1, not 0"),
    ],
)
def test_unknown_currency_and_limit_zero_are_refused_in_one_line(imported: Run, args: list[str], message: str) -> None:
    code, out, err = imported(*args, "--rep", "dana@acme.test", "--date", DATE)
    assert (code, out, err.strip()) == (2, "", message)


def test_invoice_numbers_are_case_insensitive(imported: Run) -> None:
    lower = imported.json("draft", "inv-1042", "--rep", "dana@acme.test", "--date", DATE)
    assert lower["invoice_numbers"] == ["INV-1042"] and lower["skipped_reason"] is None
    code, _, err = imported("draft", "inv-2001", "--rep", "dana@acme.test")  # another rep's, in any case
    assert code == 3 and err.strip() == "error: invoice inv-2001 not found"


def test_help_and_read_commands_do_not_import_the_agent_or_server_stack() -> None:
    # Importing LangGraph, openai and uvicorn up front made `lumo --help` take 2 s: they load in their commands.
    import subprocess

    probe = (
        "import sys; from lumo.cli import app; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'langgraph', 'openai', 'uvicorn', 'fastapi', 'alembic', 'sqlalchemy', 'jinja2', 'lumo.agent'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_accounts_show_dso_per_rep_and_team_with_its_definition(imported: Run) -> None:
    out = imported.json("accounts", "--rep", "dana@acme.test", "--date", DATE)
    assert "DSO = open balance" in out["dso"]["definition"]
    assert [r["rep"] for r in out["dso"]["reps"]] == ["Dana Reyes"] and "dso_days" in out["dso"]["team"]
