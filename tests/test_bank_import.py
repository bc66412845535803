"""Bank statements in: exact matches applied, the rest suggested and approved like any action; nothing twice."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm.bank_files import line_hashes, parse_camt053, parse_csv
from lumo.crm.errors import ImportRejected, InvalidInput
from lumo.crm.reconcile import import_lines, lines_to_match
from lumo.db.models import BankLine, Payment
from tests import factories as f
from tests.agent_support import AS_OF, NOW, TODAY, approve, ask, open_lumo, scope_of
from tests.clients import Cli, OpenApi

STATEMENT = """date,amount,currency,reference,counterparty
2026-11-20,1000.00,USD,Invoice INV-101,Globex Ltd
2026-11-21,500.00,USD,part payment INV-102,Globex Ltd
2026-11-21,1000.00,USD,INV-103 and INV-104,Globex Ltd
2026-11-22,450.00,USD,november services,Globex Ltd
2026-11-22,1166.40,USD,INV-107,Globex Ltd
2026-11-23,12.34,USD,rent refund,Landlord
2026-11-23,777.00,USD,INV-108,Initech
2026-11-24,-50.00,USD,bank fees,Bank
"""


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    f.basic_book(session)
    inv = {
        n: f.invoice(session, "a1", number=n, amount=Decimal(a), currency=c, days_overdue=3)
        for n, a, c in [
            ("INV-101", "1000.00", "USD"),
            ("INV-102", "2000.00", "USD"),
            ("INV-103", "300.00", "USD"),
            ("INV-104", "700.00", "USD"),
            ("INV-105", "450.00", "USD"),
            ("INV-106", "450.00", "USD"),
            ("INV-107", "1080.00", "EUR"),
        ]
    }
    inv["INV-108"] = f.invoice(session, "a2", number="INV-108", amount=Decimal("777.00"))
    session.commit()
    return inv


def _import(session_factory: sessionmaker[Session], email: str = "u1@acme.test", text: str = STATEMENT) -> dict[str, int]:
    scope = scope_of(session_factory, email)
    with session_factory() as s:
        report = import_lines(s, scope, parse_csv(text.encode()), source_file="nov.csv", as_of=AS_OF, now=NOW)
        s.commit()
    return report.as_json()


def _lines(factory: sessionmaker[Session]) -> dict[str, BankLine]:
    with factory() as s:
        return {ln.reference: ln for ln in s.scalars(select(BankLine))}


def _payment_count(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(Payment)) or 0)


def test_an_exact_line_is_applied_and_the_rest_are_suggested(session_factory: sessionmaker[Session], book: Any) -> None:
    report = _import(session_factory)
    assert report == {"lines": 7, "new": 7, "already": 0, "matched": 1, "suggested": 4, "unmatched": 2}
    a1 = f.by_number(session_factory, "INV-101")
    assert a1.status == "paid" and a1.amount_paid == Decimal("1000.00")
    kinds = {ref: (ln.status, ln.kind) for ref, ln in _lines(session_factory).items()}
    assert kinds == {
        "Invoice INV-101": ("matched", "exact"),
        "part payment INV-102": ("suggested", "partial"),
        "INV-103 and INV-104": ("suggested", "multi"),
        "november services": ("suggested", "ambiguous"),
        "INV-107": ("suggested", "foreign"),
        "rent refund": ("unmatched", "none"),
        "INV-108": ("unmatched", "none"),  # another rep's invoice: not in u1's book
    }
    assert f.by_number(session_factory, "INV-102").amount_paid == Decimal("0")  # a suggestion changes nothing yet


def test_reimporting_the_statement_changes_nothing(session_factory: sessionmaker[Session], book: Any) -> None:
    _import(session_factory)
    payments = _payment_count(session_factory)
    again = _import(session_factory)
    assert again == {"lines": 7, "new": 0, "already": 7, "matched": 0, "suggested": 0, "unmatched": 0}
    assert _payment_count(session_factory) == payments
    assert len(_lines(session_factory)) == 7


def test_identical_lines_of_one_file_are_two_payments_with_stable_hashes() -> None:
    text = "date,amount,currency,reference\n2026-11-20,10.00,USD,x\n2026-11-20,10.00,USD,x\n"
    first, second = line_hashes(parse_csv(text.encode())), line_hashes(parse_csv(text.encode()))
    assert first == second and len(set(first)) == 2


def test_a_bad_file_is_refused_whole_with_one_problem_a_line() -> None:
    bad = STATEMENT + "2026-11-31,abc,USD,INV-101,x\n"
    with pytest.raises(ImportRejected) as caught:
        parse_csv(bad.encode())
    assert caught.value.problems == [
        "line 10: date '2026-11-31' is not YYYY-MM-DD",
        "line 10: amount 'abc' is not a number with at most 2 decimals",
    ]
    with pytest.raises(ImportRejected) as caught:
        parse_csv(b"when,amount\n2026-11-20,5\n")
    assert caught.value.problems == [
        "header: missing column(s) date, currency, reference (need date, amount, currency, reference)"
    ]


async def _approve_line(db_url: str, factory: sessionmaker[Session], ref: str, **args: Any) -> dict[str, Any]:
    scope = scope_of(factory, "u1@acme.test")
    line = _lines(factory)[ref]
    async with open_lumo(db_url, factory, None) as lumo:
        calls = [("apply_bank_line", {"line_id": line.id, **args})]
        out = await lumo.propose(scope, calls, message="apply", as_of=AS_OF, now=NOW)
        [action] = out["pending_actions"]
        assert action["tool"] == "apply_bank_line"
        return await approve(lumo, scope, out["thread_id"])


async def test_suggestions_are_applied_only_once_approved(db_url: str, session_factory: sessionmaker[Session], book: Any) -> None:
    _import(session_factory)
    await _approve_line(db_url, session_factory, "part payment INV-102")
    b1 = f.by_number(session_factory, "INV-102")
    assert b1.amount_paid == Decimal("500.00") and b1.status == "partially_paid"
    await _approve_line(db_url, session_factory, "INV-103 and INV-104")
    assert [f.by_number(session_factory, n).status for n in ("INV-103", "INV-104")] == ["paid", "paid"]
    await _approve_line(db_url, session_factory, "INV-107")
    e1 = f.by_number(session_factory, "INV-107")  # USD 1,166.40 at EUR 1.08 = EUR 1,080.00
    assert e1.amount_paid == Decimal("1080.00") and e1.status == "paid"
    assert _lines(session_factory)["part payment INV-102"].status == "applied"


async def test_an_applied_line_cannot_be_applied_again(db_url: str, session_factory: sessionmaker[Session], book: Any) -> None:
    _import(session_factory)
    await _approve_line(db_url, session_factory, "part payment INV-102")
    with pytest.raises(InvalidInput, match="already applied"):
        await _approve_line(db_url, session_factory, "part payment INV-102")
    assert f.by_number(session_factory, "INV-102").amount_paid == Decimal("500.00")


async def test_an_ambiguous_line_needs_the_invoice_named(db_url: str, session_factory: sessionmaker[Session], book: Any) -> None:
    _import(session_factory)
    with pytest.raises(InvalidInput, match="could pay INV-105, INV-106"):
        await _approve_line(db_url, session_factory, "november services")
    await _approve_line(db_url, session_factory, "november services", invoice_numbers=["INV-106"])
    assert (f.by_number(session_factory, "INV-105").status, f.by_number(session_factory, "INV-106").status) == ("sent", "paid")


def test_a_rep_sees_only_suggestions_of_their_book_and_a_manager_the_unmatched(
    session_factory: sessionmaker[Session], book: Any
) -> None:
    _import(session_factory)
    with session_factory() as s:
        rep = lines_to_match(s, scope_of(session_factory, "u1@acme.test"))
        other = lines_to_match(s, scope_of(session_factory, "u2@acme.test"))
        manager = lines_to_match(s, scope_of(session_factory, "m1@acme.test"))
    assert len(rep["suggested"]) == 4 and rep["unmatched"] == []
    assert other == {"suggested": [], "unmatched": []}
    assert {ln["reference"] for ln in manager["unmatched"]} == {"rent refund", "INV-108"}


async def test_chat_lists_payments_to_match_and_proposes_one(
    db_url: str, session_factory: sessionmaker[Session], book: Any
) -> None:
    _import(session_factory)
    scope = scope_of(session_factory, "u1@acme.test")
    line = _lines(session_factory)["part payment INV-102"]
    async with open_lumo(db_url, session_factory, None) as lumo:
        listed = await ask(lumo, scope, "what payments need matching?")
        assert f"Line {line.id}, USD 500.00" in listed["reply"] and "INV-102" in listed["reply"]
        proposed = await ask(lumo, scope, f"apply bank line {line.id}")
        [action] = proposed["pending_actions"]
        assert action["tool"] == "apply_bank_line" and "USD 500.00 to INV-102" in action["description"]
        done = await approve(lumo, scope, proposed["thread_id"])
    assert "bank line" in done["reply"] and f.by_number(session_factory, "INV-102").amount_paid == Decimal("500.00")


CAMT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
 <BkToCstmrStmt><GrpHdr><MsgId>1</MsgId></GrpHdr>
  <Stmt><Id>S1</Id>
   <Ntry><Amt Ccy="USD">1000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-11-20</Dt></BookgDt>
    <AcctSvcrRef>B-1</AcctSvcrRef>
    <NtryDtls><TxDtls><RltdPties><Dbtr><Pty><Nm>Globex Ltd</Nm></Pty></Dbtr></RltdPties>
     <RmtInf><Ustrd>Invoice INV-101</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
   <Ntry><Amt Ccy="USD">50.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><BookgDt><Dt>2026-11-21</Dt></BookgDt></Ntry>
   <Ntry><Amt Ccy="USD">500.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><DtTm>2026-11-21T10:00:00</DtTm></BookgDt>
    <NtryDtls><TxDtls><RmtInf><Strd><CdtrRefInf><Ref>INV-102</Ref></CdtrRefInf></Strd></RmtInf></TxDtls></NtryDtls></Ntry>
  </Stmt>
 </BkToCstmrStmt>
</Document>
"""


def test_camt053_credits_are_read_and_debits_left_out() -> None:
    lines = parse_camt053(CAMT.encode())
    assert [(ln.booked_on, ln.amount, ln.currency, ln.reference, ln.counterparty) for ln in lines] == [
        (dt.date(2026, 11, 20), Decimal("1000.00"), "USD", "Invoice INV-101", "Globex Ltd"),
        (dt.date(2026, 11, 21), Decimal("500.00"), "USD", "INV-102", ""),
    ]


def test_a_bad_camt053_is_refused_whole() -> None:
    cases = [
        (CAMT.replace('Ccy="USD">50.00', 'Ccy="XX">50.00').encode(), "entry 2: Amt/@Ccy 'XX' is not an ISO-4217 code"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><Document/>', "the XML declares a DOCTYPE or entities: refused"),
        (b"<Document><Other/></Document>", "not a CAMT.053 statement: no Document/BkToCstmrStmt"),
    ]
    for data, problem in cases:
        with pytest.raises(ImportRejected) as caught:
            parse_camt053(data)
        assert caught.value.problems == [problem]


# --- CLI and HTTP ---------------------------------------------------------------------------------


def test_lumo_payments_import_twice_then_apply(
    cli: Cli, session_factory: sessionmaker[Session], book: Any, tmp_path: Path
) -> None:
    path = tmp_path / "nov.xml"
    path.write_text(CAMT)
    rep = ("--rep", "u1@acme.test", "--date", TODAY.isoformat())
    code, out, err = cli("payments", "import", str(path), *rep, "--json")
    assert code == 0, err
    assert json.loads(out) == {"lines": 2, "new": 2, "already": 0, "matched": 1, "suggested": 1, "unmatched": 0}
    code, out, err = cli("payments", "import", str(path), "--format", "camt053", *rep)
    assert code == 0 and out.strip() == "2 lines: 0 new (0 matched and applied, 0 suggested, 0 unmatched), 2 already imported"
    line = _lines(session_factory)["INV-102"]
    code, out, err = cli("payments", "apply", str(line.id), *rep, "--json")
    assert code == 0, err
    proposed = json.loads(out)
    code, out, err = cli("approve", proposed["thread_id"], *rep, "--json")
    assert code == 0, err
    assert f.by_number(session_factory, "INV-102").amount_paid == Decimal("500.00")


def test_lumo_payments_errors_are_one_line(cli: Cli, book: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,amount,currency,reference\n2026-11-20,ten,USD,x\n")
    code, out, err = cli("payments", "import", str(bad), "--rep", "u1@acme.test")
    assert code == 2 and err.splitlines() == [
        "line 2: amount 'ten' is not a number with at most 2 decimals",
        "error: 1 problem(s); nothing was imported",
    ]
    code, out, err = cli("payments", "import", str(tmp_path / "none.csv"), "--rep", "u1@acme.test")
    assert code == 2 and err.startswith("error: cannot read") and len(err.splitlines()) == 1
    code, out, err = cli("payments", "import", str(bad), "--format", "ofx", "--rep", "u1@acme.test")
    assert code == 2 and "unknown --format 'ofx'" in err
    code, out, err = cli("payments", "unmatched", "--rep", "u1@acme.test")
    assert code == 2 and "managers" in err


def test_http_to_match_and_apply(api: OpenApi, session_factory: sessionmaker[Session], book: Any) -> None:
    opened = api("u1", "u2")
    _import(session_factory)
    line = _lines(session_factory)["part payment INV-102"]
    c, u1, u2 = opened.client, opened.auth("u1"), opened.auth("u2")
    listed = c.get("/v1/payments/to-match", headers=u1)
    assert listed.status_code == 200 and len(listed.json()["suggested"]) == 4
    body = {"date": TODAY.isoformat()}
    assert c.post(f"/v1/payments/lines/{line.id}/apply", json=body, headers=u2).status_code == 404
    proposed = c.post(f"/v1/payments/lines/{line.id}/apply", json=body, headers=u1)
    assert proposed.status_code == 200, proposed.text
    thread = proposed.json()["thread_id"]
    decided = c.post(f"/v1/threads/{thread}/decision", json={"decision": "approve", "date": TODAY.isoformat()}, headers=u1)
    assert decided.status_code == 200
    again = c.post(f"/v1/payments/lines/{line.id}/apply", json=body, headers=u1)
    assert again.status_code == 422 and "already applied" in again.json()["error"]
    assert f.by_number(session_factory, "INV-102").amount_paid == Decimal("500.00")


# --- POST /v1/payments/import ------------------------------------------------------------------------


def _post_statement(api: OpenApi, who: str, body: str, query: str = "", media: str = "text/csv", **settings: Any) -> Any:
    opened = api(who, **settings)
    headers = {**opened.auth(who), "Content-Type": media}
    return opened.client.post(f"/v1/payments/import?date={TODAY.isoformat()}{query}", content=body.encode(), headers=headers)


def test_http_import_matches_and_suggests_like_the_cli_and_twice_adds_nothing(
    api: OpenApi, session_factory: sessionmaker[Session], book: Any
) -> None:
    first = _post_statement(api, "m1", STATEMENT, "&filename=nov.csv")
    assert first.status_code == 200, first.text
    # The manager's scope is the team's: u2's INV-108 is matched too (a rep's import left it unmatched).
    assert first.json() == {"lines": 7, "new": 7, "already": 0, "matched": 2, "suggested": 4, "unmatched": 1}
    assert f.by_number(session_factory, "INV-108").status == "paid"
    assert {ln.source_file for ln in _lines(session_factory).values()} == {"nov.csv"}
    payments = _payment_count(session_factory)
    again = _post_statement(api, "m1", STATEMENT)
    assert again.json() == {"lines": 7, "new": 0, "already": 7, "matched": 0, "suggested": 0, "unmatched": 0}
    assert _payment_count(session_factory) == payments


def test_http_import_reads_camt053_by_its_content_type(api: OpenApi, session_factory: sessionmaker[Session], book: Any) -> None:
    response = _post_statement(api, "admin", CAMT, media="application/xml")
    assert response.status_code == 200 and response.json()["matched"] == 1 and response.json()["suggested"] == 1
    assert f.by_number(session_factory, "INV-101").status == "paid"


def test_http_import_is_for_finance_not_reps(api: OpenApi, session_factory: sessionmaker[Session], book: Any) -> None:
    response = _post_statement(api, "u1", STATEMENT)
    assert response.status_code == 403 and "managers and finance" in response.json()["error"]
    assert _lines(session_factory) == {}


@pytest.mark.parametrize(
    ("body", "query", "status", "error"),
    [
        ("date,amount,currency,reference\n2026-11-20,ten,USD,x\n", "", 422, "1 problem(s); nothing was imported"),
        ("", "", 422, "the statement is empty: send the file as the request body"),
        (STATEMENT, "&format=ofx", 422, "query.format: Input should be 'csv' or 'camt053'"),
        (STATEMENT, "&format=camt053", 422, "1 problem(s); nothing was imported"),  # a CSV read as XML
    ],
)
def test_http_import_of_a_bad_file_says_why_and_writes_nothing(
    api: OpenApi, session_factory: sessionmaker[Session], book: Any, body: str, query: str, status: int, error: str
) -> None:
    response = _post_statement(api, "m1", body, query)
    assert response.status_code == status and response.json()["error"] == error, response.text
    assert ("problems" in response.json()) == ("problem(s)" in error)  # one line a problem, as the CLI prints them
    assert _lines(session_factory) == {} and _payment_count(session_factory) == 0


def test_http_import_has_its_own_size_limit(api: OpenApi, session_factory: sessionmaker[Session], book: Any) -> None:
    larger = _post_statement(api, "m1", STATEMENT, max_request_bytes=100)  # larger than any other body may be
    assert larger.status_code == 200
    too_large = _post_statement(api, "m1", STATEMENT + "2026-11-25,1.00,USD,x\n", max_statement_bytes=100)
    assert too_large.status_code == 413 and too_large.json() == {"error": "request body too large"}
    assert len(_lines(session_factory)) == 7  # only the first import's
