"""What a rep's chat message asks for, read with regular expressions: deterministic, cheap, no model.

The offline model picks its tools from this, and the graph's `prepare` step uses it to pre-run the tools
of requests whose data is certain. Patterns are compiled once at import because both run on every turn.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from babel.numbers import list_currencies

DEFAULT_REASON = "Requested by the rep in chat"
MAX_INVOICES = 5  # a chat message naming more invoices than this is a list, not a request about each


@dataclass(frozen=True)
class Intent:
    name: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    question: str | None = None  # for `clarify`: what to ask the rep
    notes: list[str] = field(default_factory=list)  # what the answer must say it could not do (a filter not applied)


# --- what a message names ---------------------------------------------------------------------------

_INVOICE = re.compile(r"\b([A-Za-z]{2,8})-(\d+(?:-\d+)*)\b")
_NOT_INVOICE_PREFIXES = frozenset({"mid", "pre", "post", "net", "covid", "top", "over", "under", "non", "year"})

# Uppercase ISO codes are unambiguous; lowercase only for common ones, as "all" or "top" are words.
_ISO_CODES = frozenset(list_currencies()) - {"ALL", "TOP"}
_COMMON_CODES = frozenset(
    {
        "usd",
        "eur",
        "gbp",
        "jpy",
        "chf",
        "cad",
        "aud",
        "nzd",
        "sek",
        "nok",
        "dkk",
        "pln",
        "czk",
        "inr",
        "cny",
        "brl",
        "mxn",
        "zar",
        "sgd",
        "hkd",
    }
)
_CURRENCY_WORDS = {"euro": "EUR", "dollar": "USD", "pound": "GBP", "sterling": "GBP", "yen": "JPY"}
_CODE = re.compile(r"\b[A-Za-z]{3}\b")
_CURRENCY_WORD = re.compile(r"\b(euro|dollar|pound|sterling|yen)s?\b", re.I)

_BUCKET_RANGE = re.compile(r"\b(1|31|61)\s*(?:-|–|to)\s*(30|60|90)\b")
_BUCKET_90 = re.compile(r"\b90\s*\+|\b(?:over|more than|above|beyond|past)\s+90\b|\b90\s+plus\b", re.I)
_BUCKETS = {("1", "30"): "1-30", ("31", "60"): "31-60", ("61", "90"): "61-90"}

_ACCOUNT_LEAD = re.compile(r"\b(?:of|for|with|about|is)\s+(.+)", re.I)
_POSSESSIVE = re.compile(r"\b([A-Z][\w&.\-]*(?:\s+[A-Z][\w&.\-]*)*)'s\s+(?:overdue|invoices?|health|account|book|balance)\b")
# "Which Hooli invoices ...": a capitalised name right before "invoices".
_NAME_BEFORE_INVOICES = re.compile(
    r"\b(?i:which|what|show|list|any)\s+(?i:of\s+)?(?i:the\s+|my\s+)?([A-Z][\w&.\-]*(?:\s+[A-Z][\w&.\-]*)*)\s+invoices?\b"
)
_CLAUSE_END = re.compile(r"[?!,;:()\"]|\.(?:\s|$)")
_NAME_STOP = frozenset(
    {
        "are",
        "is",
        "was",
        "were",
        "at",
        "in",
        "on",
        "that",
        "which",
        "who",
        "and",
        "to",
        "by",
        "from",
        "this",
        "please",
        "overdue",
        "invoice",
        "invoices",
        "account",
        "accounts",
        "doing",
        "health",
        "healthy",
        "now",
        "today",
        "tomorrow",
        "right",
        "days",
        "day",
        "as",
        "so",
        "because",
        "since",
        "currently",
        "looking",
        "with",
        "for",
    }
)
_NAME_DISCARD = frozenset(
    {
        "me",
        "my",
        "i",
        "it",
        "you",
        "your",
        "this",
        "that",
        "these",
        "those",
        "all",
        "them",
        "us",
        "we",
        "our",
        "what",
        "which",
        "how",
        "why",
        "revenue",
        "money",
        "status",
        "statuses",
        "anything",
        "something",
        "any",
        "every",
        "each",
        "a",
        "an",
        "there",
        "here",
        "everything",
        "everyone",
        "him",
        "her",
        "today",
        "overdue",
        "stale",
        "risk",
        "late",
        "due",
        "paid",
        "health",
        "priorities",
        "work",
        "now",
        "currently",
        "reminder",
    }
)
_NAME_LEADING = frozenset({"the", "account", "customer", "client", "company"})


def invoice_numbers(text: str) -> list[str]:
    """Invoice numbers in order of mention, upper-cased, without repeats."""
    found: list[str] = []
    for m in _INVOICE.finditer(text):
        if m.group(1).lower() in _NOT_INVOICE_PREFIXES:
            continue
        number = f"{m.group(1)}-{m.group(2)}".upper()
        if number not in found:
            found.append(number)
    return found


def _without_invoices(text: str) -> str:
    return _INVOICE.sub(" ", text)


def currency_in(text: str) -> str | None:
    for m in _CODE.finditer(_without_invoices(text)):
        token = m.group(0)
        if (token.isupper() and token in _ISO_CODES) or (token.islower() and token in _COMMON_CODES):
            return token.upper()
    word = _CURRENCY_WORD.search(text)
    return _CURRENCY_WORDS[word.group(1).lower()] if word else None


def bucket_in(text: str) -> str | None:
    plain = _without_invoices(text)
    if _BUCKET_90.search(plain):
        return "90+"
    m = _BUCKET_RANGE.search(plain)
    return _BUCKETS.get((m.group(1), m.group(2))) if m else None


def _clean_name(phrase: str) -> str | None:
    """The account name at the start of a phrase: up to the first stop word, without filler around it."""
    phrase = _CLAUSE_END.split(phrase, maxsplit=1)[0]
    words: list[str] = []
    for raw in phrase.split():
        word = raw.removesuffix("'s").removesuffix("’s")
        if word.lower() in _NAME_STOP or (word.isupper() and word in _ISO_CODES):
            break
        if not words and word.lower() in _NAME_LEADING:
            continue
        words.append(word)
        if word != raw:  # "Acme's invoices": the possessive ends the name
            break
    if not words or words[0].lower() in _NAME_DISCARD:
        return None
    return " ".join(words).strip(" '\"") or None


def account_in(text: str) -> str | None:
    """The account a message is about: the phrase after of/for/with/about/is, or before a possessive."""
    plain = _without_invoices(text)
    start = 0
    while m := _ACCOUNT_LEAD.search(plain, start):
        name = _clean_name(m.group(1))
        if name:
            return name
        start = m.start(1)
    for pattern in (_POSSESSIVE, _NAME_BEFORE_INVOICES):
        if (m := pattern.search(plain)) and (name := _clean_name(m.group(1))):
            return name
    return None


# --- dates, for tasks -------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"\b(?:(?:on|by|for|due|before)\s+)?(\d{4}-\d{2}-\d{2})\b", re.I)
_RELATIVE_DAY = re.compile(r"\b(?:(?:on|by|for|due)\s+)?(today|tomorrow|tonight)\b", re.I)
_IN_DAYS = re.compile(r"\b(?:with)?in\s+(\d+|a|an|one|two|three|four|five|six|seven)\s+(day|week)s?\b", re.I)
_NEXT_WEEK = re.compile(r"\b(?:(?:by|for)\s+)?next\s+week\b", re.I)
_WEEKDAY = re.compile(r"\b(?:(?:on|by|for|next|this)\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.I)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}


class BadDate(ValueError):
    pass


def due_date_in(text: str, today: dt.date) -> tuple[dt.date | None, str]:
    """The due date a message asks for (None if it names none) and the message without that phrase."""
    try:
        return _due_date_in(text, today)
    except (OverflowError, ValueError):  # "in 99999999 days" leaves the calendar
        raise BadDate(text.strip()[:60]) from None


def _due_date_in(text: str, today: dt.date) -> tuple[dt.date | None, str]:
    if m := _ISO_DATE.search(text):
        try:
            day = dt.date.fromisoformat(m.group(1))
        except ValueError:
            raise BadDate(m.group(1)) from None
    elif m := _RELATIVE_DAY.search(text):
        day = today + dt.timedelta(days=1 if m.group(1).lower() == "tomorrow" else 0)
    elif m := _IN_DAYS.search(text):
        count = int(m.group(1)) if m.group(1).isdigit() else _COUNTS[m.group(1).lower()]
        day = today + dt.timedelta(days=count * (7 if m.group(2).lower() == "week" else 1))
    elif m := _NEXT_WEEK.search(text):
        day = today + dt.timedelta(days=7)
    elif m := _WEEKDAY.search(text):
        ahead = (_WEEKDAYS.index(m.group(1).lower()) - today.weekday()) % 7
        day = today + dt.timedelta(days=ahead or 7)  # "on Monday" said on a Monday means next week's
    else:
        return None, text
    return day, text[: m.start()] + " " + text[m.end() :]


# --- the intents ------------------------------------------------------------------------------------

_STATUS_WORDS = (  # longest first: "partially paid" before "paid"
    (re.compile(r"partially[\s_-]+paid|part[\s-]+paid", re.I), "partially_paid"),
    (re.compile(r"written[\s_-]+off|write[\s-]*off", re.I), "written_off"),
    (re.compile(r"paid", re.I), "paid"),
    (re.compile(r"disputed|in\s+dispute", re.I), "disputed"),
    (re.compile(r"void(?:ed)?", re.I), "void"),
    (re.compile(r"overdue", re.I), "overdue"),
    (re.compile(r"sent", re.I), "sent"),
    (re.compile(r"viewed", re.I), "viewed"),
    (re.compile(r"draft", re.I), "draft"),
)
_STATUS_ALT = "|".join(p.pattern for p, _ in _STATUS_WORDS)
_STATUS_VERB = re.compile(r"\b(mark|change|set|update|move|switch|flag|put)\b", re.I)
_STATUS_TARGET = re.compile(
    rf"\b(?:as|to|status(?:\s+(?:to|as|=))?)\s+(?:be\s+)?['\"]?({_STATUS_ALT})\b|\bmark\b[^.:;]*?\b({_STATUS_ALT})\b",
    re.I,
)
_WRITE_OFF = re.compile(r"\b(?:write|written)[\s-]*off\b(?!\s+(?:invoices|list))|^\W*void\b", re.I)
_STATUS_WORD_ALONE = re.compile(r"\bstatus\b", re.I)
_REASON = re.compile(r"\b(?:because(?:\s+of)?|since|due\s+to|reason(?:\s+is)?:?)\s+|\s*[:—–]\s*|\s+-\s+", re.I)

_NOTE = re.compile(
    r"\b(?:log|add|record|leave|write|put|make|save)\s+(?:a\s+|the\s+|this\s+)?(?:quick\s+)?note\b"
    r"|^\W*note\s+(?:on|for|to)\b",
    re.I,
)
_NOTE_TARGET = re.compile(r"^\s*(?:(?:on|to|for|against|about)\s+(?:invoice\s+)?[A-Za-z]{2,8}-\d[\d-]*)?", re.I)
_NOTE_LEAD = re.compile(r"^\s*(?::|saying\b|says\b|that\b|stating\b|-)?\s*", re.I)
_TASK = re.compile(
    r"\b(?:create|add|make|set\s+up|schedule|open|new)\s+(?:a\s+|an\s+|me\s+a\s+)?(?:follow[\s-]?up\s+|new\s+)?"
    r"(?:task|to-?do)\b(?:\s+(?:to|for|:))?|\bremind\s+me\b(?:\s+to)?|^\W*task\s*:",
    re.I,
)
_OUTREACH = r"(?:reminder|follow[\s-]?up|followup|e-?mail|chaser|nudge|dunning\s+letter|notice|message|letter)"
_POLITE = r"^\W*(?:(?:please|pls|can\s+you|could\s+you|would\s+you|lumo,?|ok,?|okay,?|go\s+ahead\s+and|now)\s+)*"
_SEND = re.compile(
    rf"{_POLITE}send\b(?!\s+me\b)|\bsend\b(?:\s+\S+){{0,3}}?\s+{_OUTREACH}\b|\be-?mail\s+the\s+(?:reminder|follow[\s-]?up)\b",
    re.I,
)
_DRAFT = re.compile(
    rf"\b(?:draft|write|prepare|compose|create|make|generate|get|send\s+me)\b(?:\s+\S+){{0,3}}?\s+(?:{_OUTREACH}|draft)\b"
    rf"|{_POLITE}draft\b"
    r"|\b(?:chase|nudge)\b|\bremind\b(?!\s+me\b)",
    re.I,
)
_PRIORITIES = re.compile(
    r"\bwhat\s+(?:should|shall|do|must|can)\s+i\s+(?:do|work\s+on|focus\s+on|tackle|chase)\b|\bpriorit|on\s+my\s+plate"
    r"|\bto-?do\b|\bwhere\s+(?:should|do)\s+i\s+start\b|\bwhat'?s\s+next\b|\bmy\s+day\b|\bneeds?\s+(?:my\s+)?attention"
    r"|\bwhat\s+to\s+do\b|\bmorning\s+(?:brief|list)\b|\bwork\s+(?:list|queue)\b",
    re.I,
)
_STALE = re.compile(r"\bstale\b|out[\s-]+of[\s-]+date\s+status|\bwrong\s+status|\bstatus(?:es)?\s+(?:is|are)\s+wrong", re.I)
_STALE_KINDS = (
    (re.compile(r"\bbroken\s+promises?|promises?\s+(?:to\s+pay\s+)?broken", re.I), "promise_broken"),
    (re.compile(r"\bstalled\s+disputes?|disputes?\s+(?:are\s+)?stalled", re.I), "dispute_stalled"),
)
_RISK = re.compile(r"\bat[\s-]+risk\b|\brisky\b", re.I)
_REVENUE = re.compile(r"\b(?:revenue|money|cash|how\s+much|total|which\s+accounts|what\s+accounts)\b", re.I)
_HEALTH = re.compile(r"\bhealth(?:y)?\b|\bhow\s+is\s+.+\s+doing\b|\bin\s+(?:good|bad|poor)\s+shape\b", re.I)
_OVERDUE = re.compile(
    r"\boverdue\b|\bpast[\s-]+due\b|\blate\s+(?:invoices?|payers?|payments?)\b|\bunpaid\b|\baging\b|\bageing\b"
    r"|\bowe[sd]?\b|\boutstanding\b|\bdays\s+(?:late|overdue)\b",
    re.I,
)
_HELP = re.compile(
    r"\bhelp\b|\bwhat\s+can\s+(?:you|lumo)\s+do\b|\bhow\s+(?:can|do)\s+you\s+(?:help|work)\b|\bwhat\s+do\s+you\s+do\b"
    r"|^\W*(?:hi|hello|hey|commands|menu|start)\W*$",
    re.I,
)


def _status_in(text: str) -> tuple[str | None, int]:
    """The status a message asks to set and where its mention ends, or (None, 0)."""
    if m := _STATUS_TARGET.search(text):
        said = m.group(1) or m.group(2)
        return next(status for p, status in _STATUS_WORDS if p.fullmatch(said)), m.end()
    if m := _WRITE_OFF.search(text):
        return ("void" if "void" in m.group(0).lower() else "written_off"), m.end()
    return None, 0


def _reason_after(text: str, start: int) -> str:
    m = _REASON.search(text, start)
    reason = text[m.end() :].strip().rstrip(".!").strip() if m else ""
    return reason if len(reason) >= 3 else DEFAULT_REASON


def _after_first(pattern: re.Pattern[str], text: str) -> str:
    m = pattern.search(text)
    return text[m.end() :] if m else ""


def _tidy(text: str) -> str:
    """A phrase cut out of a message: single spaces, no punctuation at either end."""
    return " ".join(text.split()).strip(" .,;:!?-")


def _title(text: str) -> str:
    text = _tidy(text)
    return text[:1].upper() + text[1:]


def _outreach_calls(numbers: list[str], account: str | None) -> list[tuple[str, dict[str, Any]]]:
    if numbers:
        return [("draft_followup_email", {"invoice_number": n}) for n in numbers[:MAX_INVOICES]]
    return [("draft_followup_email", {"account": account})] if account else []


def _log_note(text: str) -> Intent:
    numbers = invoice_numbers(text)
    if not numbers:
        return Intent("clarify", question="Which invoice should I log the note on? Give me its number, e.g. INV-1042.")
    rest = _after_first(_NOTE, text)
    rest = rest[_NOTE_TARGET.match(rest).end() :]  # type: ignore[union-attr]  # optional pattern: always matches
    note = " ".join(rest[_NOTE_LEAD.match(rest).end() :].split())  # type: ignore[union-attr]  # the rep's words, kept as written
    if not note:
        return Intent("clarify", question=f"What should the note on {numbers[0]} say?")
    return Intent("log_note", [("log_note", {"invoice_number": numbers[0], "text": note})])


def _create_task(text: str, today: dt.date) -> Intent:
    try:
        due, rest = due_date_in(text, today)
    except BadDate as bad:
        return Intent("clarify", question=f"I couldn't read the date {bad}: when is the task due (YYYY-MM-DD)?")
    title = _title(_after_first(_TASK, rest))
    if len(title) < 3:
        return Intent("clarify", question='What should the task be? For example: "create a task to call Hank tomorrow".')
    args: dict[str, Any] = {"title": title, "due_date": (due or today + dt.timedelta(days=1)).isoformat()}
    numbers = invoice_numbers(text)
    if numbers:
        args["invoice_number"] = numbers[0]
    return Intent("create_task", [("create_follow_up_task", args)])


def _change_status(text: str, status: str, end: int) -> Intent:
    numbers = invoice_numbers(text)
    if not numbers:
        return Intent("clarify", question=f"Which invoice should I mark as {status}? Give me its number, e.g. INV-1042.")
    args = {"invoice_number": numbers[0], "status": status, "reason": _reason_after(text, end)}
    return Intent("change_status", [("update_invoice_status", args)])


def parse_intent(text: str, today: dt.date) -> Intent:
    """What the rep asks for, and the tools to call first. Actions before reads: they are the more specific."""
    text = (text or "").strip()
    if not text:
        return Intent("unknown")
    numbers = invoice_numbers(text)

    if _NOTE.search(text):
        return _log_note(text)
    if _TASK.search(text):
        return _create_task(text, today)
    if _STATUS_VERB.search(text) or _WRITE_OFF.search(text):
        status, end = _status_in(text)
        if status:
            return _change_status(text, status, end)
        if numbers and _STATUS_WORD_ALONE.search(text):
            return Intent("clarify", question=f"Which status should {numbers[0]} have (for example paid, disputed, void)?")
    if _SEND.search(text):
        calls = _outreach_calls(numbers, account_in(text))
        if not calls:
            return Intent(
                "clarify",
                question="Which invoice or account should I send the reminder for? "
                'For example: "send the reminder for INV-1042".',
            )
        return Intent("send", calls)
    if _DRAFT.search(text):
        calls = _outreach_calls(numbers, account_in(text))
        if not calls:
            return Intent(
                "clarify",
                question="Which invoice or account should I draft the reminder for? "
                'For example: "draft a reminder for INV-1042".',
            )
        return Intent("draft", calls)
    if numbers:
        return Intent("invoice", [("get_invoice", {"invoice_number": n}) for n in numbers[:MAX_INVOICES]])
    if _PRIORITIES.search(text):
        return Intent("priorities", [("todays_priorities", {})])
    account = account_in(text)
    if _STALE.search(text) or any(p.search(text) for p, _ in _STALE_KINDS):
        args: dict[str, Any] = {"account": account} if account else {}
        kind = next((k for p, k in _STALE_KINDS if p.search(text)), None)
        if kind:
            args["kind"] = kind
        return Intent("stale", [("stale_findings", args)])
    if _RISK.search(text):
        if account and not _REVENUE.search(text):
            return Intent("health", [("account_health", {"account": account})])
        return Intent("risk", [("revenue_at_risk", {})])
    if _HEALTH.search(text):
        return Intent("health", [("account_health", {"account": account} if account else {})])
    if _OVERDUE.search(text) or bucket_in(text):
        args = {k: v for k, v in (("account", account), ("currency", currency_in(text)), ("bucket", bucket_in(text))) if v}
        return Intent("overdue", [("overdue_invoices", args)])
    if _HELP.search(text):
        return Intent("help")
    return Intent("unknown")
