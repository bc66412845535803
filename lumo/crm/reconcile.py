"""Bank lines matched to invoices: exact matches applied on import, the rest suggested for approval.

A line whose reference names one open invoice of the importer's scope, in its currency, for exactly its
balance is applied at once (the importer asked for it). A partial payment, a line naming several invoices,
a line in another currency, or one naming none whose amount equals some open balances becomes a
suggestion: an `apply_bank_line` action that waits for approval like any other. A line that names a closed
invoice or matches nothing is unmatched, for finance. A line is applied once: its status says so, and its
payments carry its hash as their source.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lumo.crm import recording
from lumo.crm.bank_files import StatementLine, line_hashes
from lumo.crm.errors import InvalidInput, NotFound
from lumo.crm.invoices import fetch_rows, rows_query
from lumo.crm.lifecycle import OPEN_STATUSES, AsOf, InvoiceRow, is_open
from lumo.crm.money import CENT, FxTable, amount_str, format_code, load_fx
from lumo.crm.scope import Scope
from lumo.db.models import Account, BankLine, Invoice

_NUMBER = re.compile(r"\b([A-Za-z]{2,8}-\d+(?:-\d+)*)\b")
MAX_CANDIDATES = 5
ZERO = Decimal("0")


@dataclass(frozen=True)
class Match:
    status: str  # matched | suggested | unmatched
    kind: str  # exact | partial | multi | foreign | ambiguous | closed | none
    invoices: tuple[InvoiceRow, ...]
    reason: str


def _named(session: Session, scope: Scope, reference: str) -> list[InvoiceRow]:
    numbers = list(dict.fromkeys(m.upper() for m in _NUMBER.findall(reference)))
    if not numbers:
        return []
    rows = fetch_rows(session, rows_query(scope).where(func.upper(Invoice.number).in_(numbers)))
    order = {n: i for i, n in enumerate(numbers)}
    return sorted(rows, key=lambda r: order.get(r.number.upper(), len(order)))


def match_line(session: Session, scope: Scope, line: StatementLine) -> Match:
    named = _named(session, scope, line.reference)
    open_named = [r for r in named if is_open(r)]
    amount = format_code(line.amount, line.currency)
    if named and not open_named:
        closed = ", ".join(f"{r.number} ({r.status})" for r in named)
        return Match("unmatched", "closed", (), f"{amount} names {closed}: nothing left to pay there")
    if len(open_named) == 1:
        inv = open_named[0]
        if inv.currency != line.currency:
            return Match("suggested", "foreign", (inv,), f"{amount} for {inv.number}, billed in {inv.currency}")
        if line.amount == inv.balance:
            return Match("matched", "exact", (inv,), f"{amount} pays {inv.number} in full")
        if line.amount < inv.balance:
            left = format_code(inv.balance - line.amount, inv.currency)
            return Match("suggested", "partial", (inv,), f"{amount} of {inv.number}'s balance; {left} would stay open")
        over = format_code(line.amount - inv.balance, inv.currency)
        return Match("suggested", "partial", (inv,), f"{amount} is {over} more than {inv.number}'s balance")
    if len(open_named) > 1:
        names = ", ".join(r.number for r in open_named)
        return Match("suggested", "multi", tuple(open_named), f"{amount} names {names}")
    same = rows_query(scope).where(
        Invoice.status.in_(sorted(OPEN_STATUSES)),
        Invoice.currency == line.currency,
        Invoice.amount - Invoice.amount_paid == line.amount,
    )
    candidates = fetch_rows(session, same.order_by(Invoice.due_date, Invoice.number).limit(MAX_CANDIDATES))
    if candidates:
        names = ", ".join(r.number for r in candidates)
        return Match("suggested", "ambiguous", tuple(candidates), f"{amount} names no invoice; same balance as {names}")
    return Match("unmatched", "none", (), f"{amount} names no invoice of yours and matches no open balance")


@dataclass
class ImportReport:
    lines: int = 0
    new: int = 0
    already: int = 0
    matched: int = 0
    suggested: int = 0
    unmatched: int = 0

    def as_json(self) -> dict[str, int]:
        return dict(self.__dict__)


def import_lines(
    session: Session, scope: Scope, lines: list[StatementLine], *, source_file: str, as_of: AsOf, now: dt.datetime
) -> ImportReport:
    """Store the new lines, apply the exact matches, suggest the rest. The caller commits (all or nothing)."""
    report = ImportReport(lines=len(lines))
    hashes = line_hashes(lines)
    known = set(session.scalars(select(BankLine.row_hash).where(BankLine.row_hash.in_(hashes))).all())
    for line, row_hash in zip(lines, hashes, strict=True):
        if row_hash in known:
            report.already += 1
            continue
        known.add(row_hash)
        report.new += 1
        found = _applicable(session, match_line(session, scope, line), line, as_of)
        bank = BankLine(
            row_hash=row_hash,
            source_file=source_file[:300],
            booked_on=line.booked_on,
            amount=line.amount,
            currency=line.currency,
            reference=line.reference,
            counterparty=line.counterparty,
            status=found.status,
            kind=found.kind,
            invoice_ids=",".join(r.id for r in found.invoices),
            account_id=found.invoices[0].account_id if found.invoices else None,
            reason=found.reason,
            imported_at=now,
            imported_by=scope.user_id,
        )
        session.add(bank)
        session.flush()
        if found.status == "matched":
            _apply(session, bank, [(found.invoices[0].id, line.amount)], as_of=as_of, now=now, by_id=scope.user_id)
        setattr(report, found.status, getattr(report, found.status) + 1)
    return report


def _applicable(session: Session, found: Match, line: StatementLine, as_of: AsOf) -> Match:
    """An exact match that cannot be recorded as is (booked before the invoice, or after today) is suggested."""
    if found.status != "matched":
        return found
    inv = session.get(Invoice, found.invoices[0].id)
    assert inv is not None
    try:
        recording.check_payment(inv, recording.PaymentIn(line.amount, line.booked_on), as_of)
    except InvalidInput as exc:
        return Match("suggested", "partial", found.invoices, f"{found.reason}, but {exc}")
    return found


# --- suggestions --------------------------------------------------------------------------------------


def line_in_scope(session: Session, scope: Scope, line_id: int) -> BankLine:
    """A rep sees the lines of their book; a manager or admin also the unmatched ones (finance's)."""
    line = session.get(BankLine, line_id)
    if line is None:
        raise NotFound(f"bank line {line_id} not found")
    if line.account_id is None:
        if scope.role == "rep":
            raise NotFound(f"bank line {line_id} not found")
        return line
    owner = session.scalar(select(Account.owner_id).where(Account.id == line.account_id))
    if scope.owner_ids is not None and owner not in scope.owner_ids:
        raise NotFound(f"bank line {line_id} not found")
    return line


def allocation(
    session: Session, scope: Scope, line: BankLine, numbers: list[str] | None, fx: FxTable
) -> list[tuple[InvoiceRow, Decimal]]:
    """How the line's money goes on invoices: to each (named, else suggested) in order, up to its balance."""
    if numbers:
        rows = _named(session, scope, " ".join(numbers))
        found = {r.number.upper() for r in rows}
        missing = [n for n in numbers if n.upper() not in found]
        if missing:
            raise NotFound(f"invoice {missing[0]} not found")
    else:
        ids = [i for i in line.invoice_ids.split(",") if i]
        rows = fetch_rows(session, rows_query(scope).where(Invoice.id.in_(ids)))
        rows.sort(key=lambda r: ids.index(r.id))
        if line.kind == "ambiguous" and len(rows) > 1:
            names = ", ".join(r.number for r in rows)
            raise InvalidInput(f"bank line {line.id} could pay {names}: name the invoice(s) it pays")
    if not rows:
        raise InvalidInput(f"bank line {line.id} names no invoice: name the invoice(s) it pays")
    closed = [r.number for r in rows if not is_open(r)]
    if closed:
        raise InvalidInput(f"{closed[0]} has nothing left to pay")
    currencies = {r.currency for r in rows}
    if len(currencies) > 1:
        raise InvalidInput("the invoices are billed in different currencies: apply the line to one currency at a time")
    currency = currencies.pop()
    money = _converted(line.amount, line.currency, currency, fx)
    out: list[tuple[InvoiceRow, Decimal]] = []
    for r in rows:
        share = min(money, r.balance)
        if share > 0:
            out.append((r, share))
            money -= share
    return out


def _converted(amount: Decimal, from_ccy: str, to_ccy: str, fx: FxTable) -> Decimal:
    if from_ccy == to_ccy:
        return amount
    base = fx.to_base(amount, from_ccy)
    rate = fx.rates.get(to_ccy) if to_ccy != fx.base else Decimal("1")
    if rate is None or rate == 0:
        raise InvalidInput(f"no exchange rate for {to_ccy} to {fx.base}")
    return (base / rate).quantize(CENT)


def check_apply(session: Session, scope: Scope, line_id: int, numbers: list[str] | None, as_of: AsOf) -> str:
    line = line_in_scope(session, scope, line_id)
    if line.status in ("matched", "applied"):
        raise InvalidInput(f"bank line {line_id} is already applied")
    if line.booked_on > as_of.today:
        raise InvalidInput(f"bank line {line_id} is booked {line.booked_on}, after today")
    parts = allocation(session, scope, line, numbers, load_fx(session))
    paid = sum((a for _, a in parts), ZERO)
    what = ", ".join(f"{format_code(a, r.currency)} to {r.number}" for r, a in parts)
    total = format_code(line.amount, line.currency)
    rest = ""
    if line.currency == parts[0][0].currency and paid < line.amount:
        rest = f"; {format_code(line.amount - paid, line.currency)} left unapplied"
    elif line.currency != parts[0][0].currency:
        rest = f" (converted from {total} at the stored rates)"
    return f"Apply bank line {line_id} ({total}, {line.booked_on.isoformat()}, ref '{line.reference[:60]}'): {what}{rest}"


def apply_line(
    session: Session, scope: Scope, line_id: int, numbers: list[str] | None, *, as_of: AsOf, now: dt.datetime
) -> dict[str, Any]:
    check_apply(session, scope, line_id, numbers, as_of)
    line = line_in_scope(session, scope, line_id)
    parts = allocation(session, scope, line, numbers, load_fx(session))
    results = _apply(session, line, [(r.id, a) for r, a in parts], as_of=as_of, now=now, by_id=scope.user_id)
    line.status = "applied"
    return {"bank_line": line_id, "applied": results}


def _apply(
    session: Session, line: BankLine, parts: list[tuple[str, Decimal]], *, as_of: AsOf, now: dt.datetime, by_id: str
) -> list[dict[str, Any]]:
    out = []
    for invoice_id, amount in parts:
        inv = session.get(Invoice, invoice_id)
        assert inv is not None
        payment = recording.PaymentIn(
            amount, line.booked_on, "bank_transfer", None, f"bank line {line.id}: {line.reference}"[:200]
        )
        out.append(
            recording.record_payment(
                session, inv, payment, as_of=as_of, now=now, by_id=by_id, source=f"bank:{line.row_hash[:32]}"
            )
        )
    return out


def line_json(line: BankLine, numbers: dict[str, str]) -> dict[str, Any]:
    return {
        "id": line.id,
        "booked_on": line.booked_on.isoformat(),
        "amount": amount_str(line.amount),
        "currency": line.currency,
        "reference": line.reference,
        "counterparty": line.counterparty,
        "status": line.status,
        "kind": line.kind,
        "invoice_numbers": [numbers[i] for i in line.invoice_ids.split(",") if i in numbers],
        "reason": line.reason,
        "action": {"tool": "apply_bank_line", "args": {"line_id": line.id}},
    }


def lines_to_match(session: Session, scope: Scope, limit: int = 50) -> dict[str, Any]:
    """Suggestions in the caller's book; for a manager or admin also the unmatched lines (finance's)."""
    owned = select(Account.id).where(scope.account_filter())
    query = select(BankLine).where(BankLine.status == "suggested", BankLine.account_id.in_(owned))
    suggested = session.scalars(query.order_by(BankLine.booked_on, BankLine.id).limit(limit)).all()
    unmatched: list[BankLine] = []
    if scope.role != "rep":
        unmatched = list(
            session.scalars(
                select(BankLine)
                .where(BankLine.status.in_(("unmatched", "suggested")), BankLine.account_id.is_(None))
                .order_by(BankLine.booked_on, BankLine.id)
                .limit(limit)
            ).all()
        )
    ids = {i for ln in [*suggested, *unmatched] for i in ln.invoice_ids.split(",") if i}
    numbers = dict(session.execute(select(Invoice.id, Invoice.number).where(Invoice.id.in_(sorted(ids)))).all())
    return {
        "suggested": [line_json(ln, numbers) for ln in suggested],
        "unmatched": [{**line_json(ln, numbers), "action": None} for ln in unmatched],
    }
