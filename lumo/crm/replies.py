"""What a customer's email reply means, and what it changes: rules first, the rep decides.

- An automatic reply (RFC 3834 `Auto-Submitted` other than `no`, Exchange's `X-Auto-Response-Suppress`,
  `Precedence: bulk|junk|list|auto_reply`, `X-Autoreply`) changes nothing: an out-of-office is not an answer.
- A real reply is logged on each invoice of its thread and pauses chasing them (`customer_replied_at`: drafts
  are skipped with reason `customer_replied`, and the day's priorities show "customer replied") until the rep
  acts on the invoice (any activity of theirs: ledger.record_activity clears it).
- Its meaning is read by rules (`classify`): a claim that it was paid, a dispute, a promise with a date, a
  question. Each suggests actions to approve (`proposals`), never applied here: "we paid yesterday" is a note
  of the claim and a task to verify it, never a payment.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from lumo.crm import ledger
from lumo.db.models import Invoice

MEANINGS = ("paid_claim", "dispute", "promise", "question", "other")
EXCERPT_CHARS = 300
AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})

_QUOTE_STARTS = re.compile(
    r"^(on .{3,200} wrote:|-{2,} ?original message ?-{2,}|from: .+|sent from my .+|_{5,})\s*$", re.IGNORECASE
)
_PAID = re.compile(
    r"\b(?:(?:we|i)(?:'ve| have)?\s+(?:already\s+|just\s+)?(?:paid|settled|transferred|wired|sent (?:the |a |you )?payment)"
    r"|(?:payment|transfer|it)\s+(?:was|has been|went)\s+(?:already\s+)?(?:sent|made|paid|processed|initiated)"
    r"|(?:this|it|the invoice) (?:is|was|has been) (?:already )?paid)\b",
    re.IGNORECASE,
)
_DISPUTE = re.compile(
    r"\b(?:disput\w*|incorrect|wrong (?:amount|invoice|price)|overcharg\w*|not what we agreed|never (?:received|ordered)"
    r"|(?:do not|don't) owe|(?:did not|didn't) (?:receive|order)|refuse to pay|not (?:been )?delivered)\b",
    re.IGNORECASE,
)
_PROMISE = re.compile(
    r"\b(?:(?:we|i)(?:'ll| will| shall| are going to| plan to| can)\s+(?:make the |send the |transfer the |process the )?"
    r"(?:pay|payment|settle|transfer)\w*|payment (?:will|should) (?:be |go |arrive)\w*|(?:scheduled|planned) (?:the )?payment)",
    re.IGNORECASE,
)
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name} | {
    name.lower(): i for i, name in enumerate(calendar.month_abbr) if name
}
_DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?([a-z]{3,9})\b", re.IGNORECASE)
_MONTH_DAY = re.compile(r"\b([a-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b", re.IGNORECASE)
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_WEEKDAY = re.compile(r"\b(?:by|on|this|next|until)?\s*(" + "|".join(_WEEKDAYS) + r")\b", re.IGNORECASE)


def is_auto_reply(headers: Mapping[str, str]) -> bool:
    """An automatic answer by its headers (names case-insensitive)."""
    h = {k.lower(): v.strip().lower() for k, v in headers.items()}
    if h.get("auto-submitted", "no") != "no":
        return True
    if "x-auto-response-suppress" in h or "x-autoreply" in h or "x-autorespond" in h:
        return True
    return h.get("precedence", "") in AUTO_PRECEDENCE


def fresh_text(body: str) -> str:
    """The reply's own words: quoted lines and everything from the quoted original on are dropped."""
    lines = []
    for line in body.replace("\r\n", "\n").split("\n"):
        if _QUOTE_STARTS.match(line.strip()):
            break
        if not line.lstrip().startswith(">"):
            lines.append(line)
    return "\n".join(lines).strip()


def excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True)
class Meaning:
    kind: str  # one of MEANINGS
    promise_date: dt.date | None = None
    evidence: str = ""  # the words that decided it


def promised_date(text: str, today: dt.date) -> dt.date | None:
    """The first date a reply names, on or after today: 2026-12-15, 15 December, Dec 15, (by) Friday, tomorrow."""
    lowered = text.lower()
    if "tomorrow" in lowered:
        return today + dt.timedelta(days=1)
    if re.search(r"\bend of (?:the |this )?month\b", lowered):
        return today.replace(day=calendar.monthrange(today.year, today.month)[1])
    if match := _ISO.search(text):
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return None
    for pattern, day_first in ((_DAY_MONTH, True), (_MONTH_DAY, False)):
        for match in pattern.finditer(text):
            day, month = (match[1], match[2]) if day_first else (match[2], match[1])
            number = _MONTHS.get(month.lower())
            if number is None:
                continue
            try:
                found = dt.date(today.year, number, int(day))
            except ValueError:
                continue
            return found if found >= today else found.replace(year=today.year + 1)
    if match := _WEEKDAY.search(text):
        ahead = (_WEEKDAYS[match[1].lower()] - today.weekday()) % 7 or 7
        return today + dt.timedelta(days=ahead)
    return None


def classify(text: str, today: dt.date) -> Meaning:
    """Rules, in order: a dispute outranks a claim of payment, which outranks a promise; then a question."""
    words = fresh_text(text)
    if match := _DISPUTE.search(words):
        return Meaning("dispute", evidence=match[0])
    if match := _PAID.search(words):
        return Meaning("paid_claim", evidence=match[0])
    if match := _PROMISE.search(words):
        return Meaning("promise", promised_date(words, today), evidence=match[0])
    if "?" in words:
        return Meaning("question", evidence=words[: words.index("?") + 1].split("\n")[-1].strip())
    return Meaning("other")


def proposals(meaning: Meaning, number: str, who: str, said: str, today: dt.date) -> list[dict[str, Any]]:
    """The actions a rep may approve for one invoice of the thread, as tool calls ({tool, args})."""

    def task(title: str) -> dict[str, Any]:  # due the day it is proposed (`due_today`)
        return {
            "tool": "create_follow_up_task",
            "args": {"title": title, "invoice_number": number},
        }

    quoted = f'"{said}"'
    if meaning.kind == "paid_claim":
        note = f"{who} says it was paid ({today.isoformat()} email): {quoted}. Not verified: no payment recorded."
        return [
            {"tool": "log_note", "args": {"invoice_number": number, "text": note[:4000]}},
            task(f"Verify the payment {who} says was made for {number}, then record it"),
        ]
    if meaning.kind == "dispute":
        return [{"tool": "open_dispute", "args": {"invoice_number": number, "reason": f"{who} by email: {quoted}"[:1000]}}]
    if meaning.kind == "promise" and meaning.promise_date is not None and meaning.promise_date >= today:
        args = {"invoice_number": number, "date": meaning.promise_date.isoformat(), "note": f"{who} by email: {quoted}"[:1000]}
        return [{"tool": "record_promise", "args": args}]
    if meaning.kind == "question":
        return [task(f"Answer {who}'s question about {number}")]
    return [task(f"Read {who}'s reply about {number} and log what it means")]


def record_reply(session: Session, invoice: Invoice, *, at: dt.datetime, who: str, said: str, source: str) -> None:
    """Log a real reply on the invoice and pause chasing it until the rep acts."""
    ledger.record_activity(
        session, invoice, kind="email", at=at, by_id=None, text=f"Customer replied ({who}): {said}", source=source
    )
    if invoice.customer_replied_at is None or at > invoice.customer_replied_at:
        invoice.customer_replied_at = at


def due_today(calls: list[dict[str, Any]], today: dt.date) -> list[tuple[str, dict[str, Any]]]:
    """A reply's suggestions as tool calls to propose on `today`: its tasks are due that day."""
    out = []
    for call in calls:
        args = dict(call["args"])
        if call["tool"] == "create_follow_up_task":
            args.setdefault("due_date", today.isoformat())
        out.append((str(call["tool"]), args))
    return out
