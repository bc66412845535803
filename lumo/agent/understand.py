"""Understanding a rep's message: the one place that turns it into an intent, its slots and the tools to call.

    understand(text, today, book, focus) -> Intent

The message is read against the rep's own book (`lumo.crm.book.BookNames`: accounts, contacts, reps, fuzzy
matched by `lumo.agent.names`) and the thread's focus (`lumo.agent.focus.Focus`: the last list, the invoice,
account and draft in focus, Lumo's open question). Recognizers run in order and the first that returns an
intent wins; `register()` is the extension point for new kinds of request (the rep actions of
`lumo/agent/record_intents.py` plug in there: `register(fn, order=30)` with `fn(req: Request) -> Intent | None`,
reading `req.text`, `req.today`, the book's names and the focus). Slots are read by `lumo.agent.slots`.
The regular-expression parser of `lumo.agent.intents` reads
the actions and the classic reads; the recognizers here add references, manager questions, tasks, contacts,
changes and disputes, and put the book's names, day thresholds and conversions into the slots. A message
not understood as typed is read again with its slang and typos put right.

A filter that a tool cannot apply is said in `Intent.notes`, never dropped silently; a name that is not in
the rep's book is passed on as typed, so every phrasing gets the same "not found".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lumo.agent import intents
from lumo.agent.classify import classify
from lumo.agent.focus import Focus
from lumo.agent.intents import Intent, parse_intent
from lumo.agent.names import NameIndex, accounts_in, normalise, rep_in
from lumo.agent.slots import AMOUNT, CONVERT, Request, account_of, amount_in, date_in, min_balance_in, min_days_in, name_like
from lumo.crm.book import BookNames

READS = frozenset({"priorities", "overdue", "stale", "invoice", "health", "risk"})  # the parser's reads
NOT_SERVED = frozenset({"help", "unknown"})


Recognizer = Callable[[Request], Intent | None]
_RECOGNIZERS: list[tuple[int, str, Recognizer]] = []


def register(recognizer: Recognizer, *, order: int = 30, name: str | None = None) -> Recognizer:
    """Add a recognizer: lower orders run first. 10 answers to Lumo's question, 20 references to the thread,
    30 new kinds of action (the default), 40 the parser's actions, 50 manager and book questions, 90 reads."""
    key = str(name or getattr(recognizer, "__name__", repr(recognizer)))
    _RECOGNIZERS[:] = [r for r in _RECOGNIZERS if r[1] != key]
    _RECOGNIZERS.append((order, key, recognizer))
    _RECOGNIZERS.sort(key=lambda r: (r[0], r[1]))
    return recognizer


def recognizer(order: int) -> Callable[[Recognizer], Recognizer]:
    def add(fn: Recognizer) -> Recognizer:
        return register(fn, order=order)

    return add


def understand(text: str, today: dt.date, book: BookNames | None = None, focus: Focus | None = None) -> Intent:
    """What the rep asks for and the tools to call, read against their book and the thread."""
    book = book or BookNames()
    req = Request((text or "").strip(), today, book, NameIndex.of(book), focus or Focus())
    if not req.text:
        return Intent("unknown")
    first = _run(req)
    if first.name not in NOT_SERVED:
        return first
    fixed = normalise(req.text, req.names)
    if fixed.lower() != req.text.lower():
        second = _run(replace(req, text=fixed))
        if second.name not in NOT_SERVED:
            return second
    if first.name == "unknown" and (guess := classify(fixed)) is not None:
        return guessed(replace(req, text=fixed), guess[0]) or first
    return first


def _run(req: Request) -> Intent:
    for _order, _name, recognize in _RECOGNIZERS:
        found = recognize(req)
        if found is not None:
            return found
    return Intent("unknown")


# --- answers to Lumo's question and references to the thread --------------------------------------

_SHORT_ANSWER = re.compile(r"^\W*(?:(?:for|to|about|it'?s|the|account|invoice|yes,?|ok,?)\s+)*(?P<rest>.{1,80}?)\W*$", re.I)


@recognizer(10)
def answer_to_question(req: Request) -> Intent | None:
    """The rep answers Lumo's own clarifying question: read it together with the message that raised it."""
    asked = req.focus.question
    if not asked or len(req.text.split()) > 8:
        return None
    alone = parse_intent(req.text, req.today)
    if alone.name not in ("invoice", "unknown", "help", "clarify") and not (alone.name == "health" and len(alone.calls) == 1):
        return None
    m = _SHORT_ANSWER.match(req.text)
    answer = m.group("rest") if m else req.text
    if alone.name == "unknown" and not (intents.invoice_numbers(answer) or accounts_in(answer, req.names) or name_like(answer)):
        return None
    combined = understand(f"{asked} for {answer}", req.today, req.book, replace(req.focus, question=None))
    if combined.name in NOT_SERVED:
        return None
    named = accounts_in(answer, req.names)
    if len(named) == 1:  # "Brandt Foods" answers "which Brandt?": the answer's account, not the question's
        calls = [(t, {**a, "account": named[0]} if "account" in a else a) for t, a in combined.calls]
        return replace(combined, calls=calls)
    return combined


_ORDINALS = {
    "first": 0,
    "1st": 0,
    "second": 1,
    "2nd": 1,
    "third": 2,
    "3rd": 2,
    "fourth": 3,
    "4th": 3,
    "fifth": 4,
    "5th": 4,
    "sixth": 5,
    "seventh": 6,
    "eighth": 7,
    "ninth": 8,
    "tenth": 9,
    "last": -1,
    "top": 0,
}
_ORDINAL = re.compile(
    r"\b(?:the\s+)?(first|1st|second|2nd|third|3rd|fourth|4th|fifth|5th|sixth|seventh|eighth|ninth|tenth|last|top)"
    r"\s+(?:one|invoice|item|on\s+the\s+list|of\s+them|in\s+the\s+list)\b",
    re.I,
)
_NUMBERED = re.compile(r"(?:\b(?:number|no\.?|item|#)\s*|#)(\d{1,2})\b", re.I)
_NEXT = re.compile(
    r"\b(?:the\s+)?(next|previous)\s+(?:one|invoice|item)\b|^\W*(?:and\s+)?(?:the\s+)?(next|previous)\W*$"
    r"|^\W*(?:and\s+)?(?:what\s+)?(after)\s+that\W*$",
    re.I,
)
# "that" as a word of its own ("mark that as paid"), not as in "invoices that are stale".
_IT = re.compile(
    r"\b(?:it|that\s+one|this\s+one|that\s+invoice|this\s+invoice|the\s+invoice)\b(?!\s*['’]s\b)"
    r"|\b(?:that|this)\b(?=\s*(?:[?.!,]|$|(?:as|to|now|please|again|too|one)\b))",
    re.I,
)
_THAT_ACCOUNT = re.compile(r"\b(?:that|this|the\s+same)\s+(?:account|customer|client|company)\b|\bthem\b|\bthey\b", re.I)
_SEND_IT = re.compile(
    r"^\W*(?:(?:ok(?:ay)?|yes|yep|great|good|perfect|looks\s+good|fine|go\s+ahead(?:\s+and)?|please|now)[,.!]?\s+)*"
    r"send(?:\s+(?:it|that|this|the\s+(?:draft|email|reminder|e-mail)))?(?:\s+(?:now|out|off|please))?\W*$",
    re.I,
)
_AND_ABOUT = re.compile(
    r"^\W*(?:and|what\s+about|how\s+about|same\s+for|now|also|ok(?:ay)?,?\s+and)\s+(?:for\s+|of\s+|with\s+)?(?P<name>[^?]+?)\W*$",
    re.I,
)


def _with_number(req: Request, span: tuple[int, int], number: str) -> Intent:
    """The message with the reference replaced by the invoice number it means, understood again."""
    text = f"{req.text[: span[0]]}{number}{req.text[span[1] :]}"
    found = understand(text, req.today, req.book, replace(req.focus, question=None))
    if found.name in NOT_SERVED:
        return Intent("invoice", [("get_invoice", {"invoice_number": number})])
    return found


def _missing(what: str) -> Intent:
    return Intent(
        "clarify", question=f"I'm not sure which {what} you mean: name it (for example INV-1042) or ask for a list first."
    )


@recognizer(20)
def references(req: Request) -> Intent | None:
    """ "the first one", "number 3", "the next one", "it", "that account", "send it", "and Hooli?"."""
    focus, text = req.focus, req.text
    if intents.invoice_numbers(text):
        return None
    if _SEND_IT.search(text):
        if focus.draft and focus.draft.get("to") and not focus.draft.get("skipped_reason"):
            return Intent("send", [("send_email", _email_args(focus.draft))])
        if focus.current():
            return Intent("send", [("draft_followup_email", {"invoice_number": focus.current()})])
        return Intent("clarify", question='Which reminder should I send? Draft one first, e.g. "draft a reminder for INV-1042".')
    if m := _ORDINAL.search(text):
        number = focus.nth(_ORDINALS[m.group(1).lower()])
        return _with_number(req, m.span(), number) if number else _missing("invoice")
    if (m := _NUMBERED.search(text)) and focus.listed:
        number = focus.nth(int(m.group(1)) - 1)
        return _with_number(req, m.span(), number) if number else _missing("invoice")
    if m := _NEXT.search(text):
        step = -1 if (m.group(1) or m.group(2) or m.group(3)).lower() == "previous" else 1
        number = focus.nth((focus.index if focus.index is not None else 0) + step) if focus.listed else None
        if number is None and focus.index is not None and step > 0:
            return Intent("clarify", question="That was the last one on the list.")
        return _with_number(req, m.span(), number) if number else _missing("invoice")
    about = _AND_ABOUT.match(text)
    if about and focus.last_calls and (same := _same_for(req, about.group("name"))) is not None:
        return same
    if (m := _THAT_ACCOUNT.search(text)) and focus.account:
        found = understand(
            f"{text[: m.start()]}{focus.account}{text[m.end() :]}", req.today, req.book, replace(focus, question=None)
        )
        return found if found.name not in NOT_SERVED else None
    if (m := _IT.search(text)) and focus.current() and _refers_to_invoice(text, m):
        return _with_number(req, m.span(), focus.current() or "")
    return None


def _refers_to_invoice(text: str, m: re.Match[str]) -> bool:
    """ "draft a reminder for it", "mark it as paid", "tell me more about it": a pronoun in a request."""
    rest = f"{text[: m.start()]} {text[m.end() :]}"
    return bool(
        re.search(
            r"\b(?:draft|remind|chase|nudge|mark|set|change|note|log|task|about|more|details|story|status|show|overdue|paid"
            r"|due|late|owed?|balance|open|history|send|email)\b",
            rest,
            re.I,
        )
    )


def _same_for(req: Request, name: str) -> Intent | None:
    """ "and Hooli?": the last request again, for another account (or rep, or invoice)."""
    focus = req.focus
    if intents.invoice_numbers(name):
        return None
    rep = rep_in(name, req.names)
    if rep and any(n == "team_overview" for n, _ in focus.last_calls):
        return Intent("team", [("team_overview", {"rep": rep})])
    sub = replace(req, text=name)
    account = account_of(sub)
    if not account:
        return None
    calls: list[tuple[str, dict[str, Any]]] = []
    for tool, args in focus.last_calls:
        if tool in ACCOUNT_TOOLS:
            calls.append((tool, {**args, "account": account}))
        elif tool in ("get_invoice", "todays_priorities", "revenue_at_risk", "team_overview"):
            continue
        else:
            calls.append((tool, args))
    if not calls:
        return Intent("overdue", [("overdue_invoices", {"account": account})])
    return Intent(focus.last_name or "overdue", calls)


ACCOUNT_TOOLS = frozenset(
    {"overdue_invoices", "search_invoices", "stale_findings", "account_health", "draft_followup_email", "account_contacts"}
)


def _email_args(draft: dict[str, Any]) -> dict[str, Any]:
    return {k: draft.get(k) or ([] if k == "cc" else "") for k in ("to", "cc", "subject", "body", "invoice_numbers")}


# --- the parser's actions -------------------------------------------------------------------------


@recognizer(40)
def actions(req: Request) -> Intent | None:
    """Notes, tasks, status changes, drafts and sends, read by the regular-expression parser; several invoices
    get one call each, and an account is matched against the book."""
    base = parse_intent(req.text, req.today)
    numbers = intents.invoice_numbers(req.text)
    if numbers and base.name in READS and (said := _STATUS_SAID.search(req.text)) and intents._STATUS_VERB.search(req.text):
        status = next(st for p, st in intents._STATUS_WORDS if p.fullmatch(said.group(1)))
        reason = intents.DEFAULT_REASON
        calls = [("update_invoice_status", {"invoice_number": n, "status": status, "reason": reason}) for n in numbers]
        return _over_limit(Intent("change_status", calls[: intents.MAX_INVOICES]), numbers)
    if base.name in READS or base.name in NOT_SERVED:  # any other intent is an action, the parser's or a plug-in's
        return None
    if base.name == "change_status" and len(numbers) > 1:
        [(tool, args)] = base.calls
        calls = [(tool, {**args, "invoice_number": n}) for n in numbers[: intents.MAX_INVOICES]]
        return _over_limit(replace(base, calls=calls), numbers)
    if (
        base.name in ("draft", "send", "clarify")
        and not numbers
        and (intents._DRAFT.search(req.text) or intents._SEND.search(req.text))
    ):
        account = account_of(req)
        if account:
            name = "send" if intents._SEND.search(req.text) else "draft"
            return Intent(name, [("draft_followup_email", {"account": account})], notes=base.notes)
    if base.name == "create_task" and base.calls:
        tool, args = base.calls[0]
        try:
            found, _ = intents.due_date_in(req.text, req.today)
        except intents.BadDate:
            found = None
        if found is None and (day := date_in(req.text, req.today)) is not None:
            return replace(base, calls=[(tool, {**args, "due_date": day.isoformat()})])
    if base.name in ("draft", "send", "invoice"):
        return _over_limit(base, numbers)
    return base


_STATUS_SAID = re.compile(
    rf"\b(?:is|are|was|were|has\s+been|have\s+been|got)\s+(?:now\s+|already\s+|fully\s+)?({intents._STATUS_ALT})\b", re.I
)


def _over_limit(intent: Intent, numbers: list[str]) -> Intent:
    if len(numbers) <= intents.MAX_INVOICES:
        return intent
    return replace(
        intent, notes=[*intent.notes, f"I took the first {intents.MAX_INVOICES} of the {len(numbers)} invoices you named."]
    )


# --- manager and book questions -------------------------------------------------------------------

_PER_REP = re.compile(
    r"\b(?:which|what|who)\s+(?:of\s+my\s+)?reps?\b|\bby\s+rep\b|\bper\s+rep\b|\beach\s+rep\b|\bevery\s+rep\b|\bmy\s+(?:team|reps)\b"
    r"|\b(?:the\s+)?team(?:'s)?\s+(?:book|overview|numbers|figures|performance)\b|\bhow\s+is\s+(?:my\s+|the\s+)?team\b"
    r"|\brank\s+(?:the\s+|my\s+)?reps\b|\breps?\s+(?:with|has|have)\s+the\s+most\b|\bleaderboard\b|\bteam\s+breakdown\b",
    re.I,
)


@recognizer(50)
def team(req: Request) -> Intent | None:
    """A manager's questions: the per-rep breakdown, or one rep's book."""
    if intents.invoice_numbers(req.text):
        return None
    rep = rep_in(req.text, req.names)
    if rep:
        return Intent("team", [("team_overview", {"rep": rep})])
    if _PER_REP.search(req.text):
        return Intent("team", [("team_overview", {})])
    return None


_TASKS = re.compile(
    r"\btasks?\b|\bto-?dos\b|\bfollow[\s-]?ups?\s+(?:(?:are|is)\s+)?(?:due|today|for\s+today|this\s+week)\b|\bmy\s+follow[\s-]?ups\b",
    re.I,
)
_TODAY_WORD = re.compile(r"\btoday\b|\bfor\s+now\b|\bthis\s+morning\b|\btonight\b", re.I)


@recognizer(52)
def tasks(req: Request) -> Intent | None:
    if not _TASKS.search(req.text) or intents._TASK.search(req.text):
        return None
    return Intent("tasks", [("open_tasks", _task_args(req))])


def _task_args(req: Request) -> dict[str, Any]:
    args: dict[str, Any] = {}
    day = None if _TODAY_WORD.search(req.text) else date_in(req.text, req.today)
    if day is not None:
        args["due_by"] = day.isoformat()
    elif re.search(r"\boverdue\b|\blate\b|\bmissed\b", req.text, re.I):  # due before today
        args["due_by"] = (req.today - dt.timedelta(days=1)).isoformat()
    elif _TODAY_WORD.search(req.text) or re.search(r"\bdue\b", req.text, re.I):
        args["due_by"] = req.today.isoformat()
    return args


_CONTACTS = re.compile(
    r"\bcontacts?\b(?!\s+(?:them|him|her))|\bwho\s*(?:'s|is|are|do\s+i|should\s+i|can\s+i)\s+(?:\w+\s+){0,3}?"
    r"(?:talk|speak|email|write|call|reach|ask|the\s+(?:billing\s+)?(?:person|people|contact))\b"
    r"|\be-?mail\s+address(?:es)?\b|\bphone\s+number\b|\bwho\s+(?:pays|handles|deals\s+with)\b",
    re.I,
)


@recognizer(54)
def contacts(req: Request) -> Intent | None:
    if not _CONTACTS.search(req.text) or intents.invoice_numbers(req.text):
        return None
    if _FIRST_CALL.search(req.text) and not account_of(req):
        return None
    if re.search(r"\bdo[\s-]?not[\s-]?contact\b|\bmark\b|\bdraft\b|\bsend\b", req.text, re.I):
        return None
    account = account_of(req) or req.focus.account
    if not account:
        return Intent("clarify", question="Which account's contacts do you want? For example: \"who's the contact at Globex?\"")
    return Intent("contacts", [("account_contacts", {"account": account})])


_CHANGES = re.compile(
    r"\bwhat(?:'s|\s+has|\s+have)?\s+(?:changed|happened|moved|new)\b|\b(?:changes?|updates?|activity|happened)\s+since\b"
    r"|\banything\s+(?:new|changed|happen(?:ed)?)\b|\brecent\s+(?:activity|changes|updates)\b|\blatest\s+(?:activity|changes|updates)\b"
    r"|\bwhat\s+did\s+i\s+miss\b|\bcatch\s+me\s+up\b|\b(?:any|recent|latest|new)\s+(?:changes|updates|activity)\b|\bsince\s+(?:yesterday|last\s+week|monday|tuesday|wednesday|thursday|friday)\b",
    re.I,
)


@recognizer(56)
def changes(req: Request) -> Intent | None:
    if not _CHANGES.search(req.text) or intents.invoice_numbers(req.text):
        return None
    return Intent("changes", [("recent_changes", {"since": _since(req).isoformat()})])


def _since(req: Request) -> dt.date:
    since = date_in(req.text, req.today, past=True)
    return req.today - dt.timedelta(days=1) if since is None or since > req.today else since


_DISPUTES = re.compile(r"\bdisputes?\b|\bdisputed\b|\bin\s+dispute\b|\bcontested\b", re.I)
_FIRST_CALL = re.compile(
    r"\bwho\s+(?:should|do|shall|must|can)\s+i\s+(?:call|chase|contact|ring|email|phone|nudge|start\s+with)\b"
    r"|\bwho(?:'s|\s+is)\s+(?:first|next|top)\b|\bmost\s+(?:urgent|important|pressing)\b|\bwhat(?:'s|\s+is)\s+urgent\b"
    r"|\bwhere\s+(?:do|should)\s+i\s+(?:begin|start)\b|\btop\s+of\s+my\s+list\b|\bwhat\s+(?:now|first)\b|\bplan\s+(?:for\s+)?(?:my\s+)?(?:day|today)\b"
    r"|\bwhat\s+(?:needs|need)\s+doing\b|\bwhat(?:'s|\s+is)\s+on\s+(?:for\s+)?today\b|\bwhat\s+should\s+i\s+do\b"
    r"|\bwhat\s+do\s+i\s+(?:need|have)\s+to\s+do\b|\btoday'?s\s+(?:list|work|plan|calls)\b|\b(?:anything|what'?s|what\s+is)\s+urgent\b"
    r"|\bwhich\s+(?:customer|client|account|invoice)s?\s+(?:should|do|shall)\s+i\s+(?:call|chase|contact|start\s+with)\b"
    r"|\bwhat(?:'s|\s+is)\s+first\b|\b(?:my\s+)?list\s+for\s+today\b",
    re.I,
)


@recognizer(35)
def first_calls(req: Request) -> Intent | None:
    """ "who should I call first?": today's ranking, before "call"/"chase" read as an action."""
    if _FIRST_CALL.search(req.text) and not intents.invoice_numbers(req.text) and not account_of(req):
        return Intent("priorities", [("todays_priorities", {})])
    return None


@recognizer(58)
def disputes(req: Request) -> Intent | None:
    text = req.text
    if intents.invoice_numbers(text):
        return None
    if _DISPUTES.search(text) and not any(p.search(text) for p, _ in intents._STALE_KINDS) and not intents._STALE.search(text):
        args: dict[str, Any] = {"status": ["disputed"]}
        if account := account_of(req):
            args["account"] = account
        return Intent("disputes", [("search_invoices", args)])
    return None


# --- the classic reads, with the book's names and the thresholds -----------------------------------


@recognizer(90)
def reads(req: Request) -> Intent | None:
    base = parse_intent(req.text, req.today)
    account = account_of(req)
    if account and (_HOW_LOOKING.search(req.text) or _RISK_ON.search(req.text)) and base.name in {*NOT_SERVED, "overdue", "risk"}:
        return _with_notes(req, Intent("health", [("account_health", {"account": account})]))
    if base.name in NOT_SERVED and _LATE.search(req.text):
        base = Intent("overdue", [("overdue_invoices", {})])
    if base.name in NOT_SERVED:
        if account and accounts_in(req.text, req.names) and _is_question(req.text):
            return _with_notes(req, Intent("overdue", [("overdue_invoices", {"account": account})]))
        if min_days_in(req.text) is not None:
            return _with_notes(req, Intent("overdue", [("overdue_invoices", {"min_days_overdue": min_days_in(req.text)})]))
        return base
    if base.name in ("priorities", "invoice"):
        return _with_notes(req, base)
    if base.name == "risk" and account and not intents._REVENUE.search(req.text):
        return _with_notes(req, Intent("health", [("account_health", {"account": account})]))
    calls = []
    for tool, args in base.calls:
        args = dict(args)
        if tool in ACCOUNT_TOOLS and account:
            args["account"] = account
        elif tool in ACCOUNT_TOOLS:
            args.pop("account", None)
        if tool == "overdue_invoices":
            args = _overdue_args(req, args, base)
        calls.append((tool, args))
    name = "health" if base.name == "health" else base.name
    return _with_notes(req, Intent(name, calls))


_HOW_LOOKING = re.compile(r"\bhow(?:'s|\s+is|\s+are|\s+does)\s+.+?\s+(?:looking|going|look)\b", re.I)
_RISK_ON = re.compile(r"\brisks?\s+(?:on|of|for|with|at)\b", re.I)
_LATE = re.compile(r"\blate\b|\bbehind\b|\boverdue\b", re.I)


def _is_question(text: str) -> bool:
    return "?" in text or bool(re.match(r"^\W*(?:what|how|which|who|is|are|any|show|list|tell)\b", text, re.I))


def _overdue_args(req: Request, args: dict[str, Any], base: Intent) -> dict[str, Any]:
    days = min_days_in(req.text)
    if days is not None and "bucket" not in args:
        args["min_days_overdue"] = days
    if CONVERT.search(req.text):
        args.pop("currency", None)
        args["in_base_currency"] = True
    least, _ = min_balance_in(req.text, req.book.base_currency)
    if least is not None:
        args["min_balance"] = least
        m = AMOUNT.search(req.text)
        if m and m.group(1) and args.get("currency") == m.group(1).upper():  # "over USD 5,000": the amount's code
            args.pop("currency")
    return args


def _with_notes(req: Request, intent: Intent) -> Intent:
    """Say every filter the message asks for that the chosen tools do not apply."""
    notes = list(intent.notes)
    used = {k for _, args in intent.calls for k, v in args.items() if v not in (None, False)}
    tools = {t for t, _ in intent.calls}
    amount = amount_in(req.text)
    if amount and "min_balance" not in used:
        _, why = min_balance_in(req.text, req.book.base_currency)
        notes.append(why or f'I can\'t filter by amount ("{amount}") here, so the answer below is not limited by it.')
    currency = intents.currency_in(req.text)
    if CONVERT.search(req.text) and "overdue_invoices" in tools:
        if currency and currency != req.book.base_currency and req.book.base_currency:
            notes.append(f"I can only convert to the base currency ({req.book.base_currency}), not to {currency}.")
    elif (
        currency
        and "currency" not in used
        and tools & {"stale_findings", "account_health", "todays_priorities", "revenue_at_risk"}
    ):
        notes.append(f"I can't limit this answer to {currency}, so it covers every currency.")
    bucket = intents.bucket_in(req.text)
    days = min_days_in(req.text)
    if (
        (bucket or days)
        and not used & {"bucket", "min_days_overdue"}
        and tools - {"overdue_invoices"}
        and "get_invoice" not in tools
    ):
        what = f"the {bucket} days bucket" if bucket else f"more than {days} days overdue"
        notes.append(f"I can't limit this answer to {what}, so it is not filtered by age.")
    return replace(intent, notes=notes) if notes != intent.notes else intent


# --- the statistical guess, for what no recognizer understood ------------------------------------


def guessed(req: Request, name: str) -> Intent | None:
    """The calls of a read intent the classifier guessed, with the slots the message gives."""
    account = account_of(req)
    with_account = {"account": account} if account else {}
    if name == "priorities":
        return Intent(name, [("todays_priorities", {})])
    if name == "overdue":
        base = Intent(name, [("overdue_invoices", with_account)])
        args = {**with_account, **({"bucket": b} if (b := intents.bucket_in(req.text)) else {})}
        if (currency := intents.currency_in(req.text)) is not None:
            args["currency"] = currency
        return _with_notes(req, Intent(name, [("overdue_invoices", _overdue_args(req, args, base))]))
    if name == "stale":
        kind = (
            "promise_broken"
            if re.search(r"promis", req.text, re.I)
            else "dispute_stalled"
            if _DISPUTES.search(req.text)
            else None
        )
        return Intent(name, [("stale_findings", {**with_account, **({"kind": kind} if kind else {})})])
    if name == "disputes":
        return Intent(name, [("search_invoices", {"status": ["disputed"], **with_account})])
    if name == "health":
        return Intent(name, [("account_health", with_account)])
    if name == "risk":
        return Intent(name, [("revenue_at_risk", {})])
    if name == "tasks":
        return Intent(name, [("open_tasks", _task_args(req))])
    if name == "changes":
        return Intent(name, [("recent_changes", {"since": _since(req).isoformat()})])
    if name == "contacts" and (account or req.focus.account):
        return Intent(name, [("account_contacts", {"account": account or req.focus.account})])
    if name == "team" and req.book.reps:
        rep = rep_in(req.text, req.names)
        return Intent(name, [("team_overview", {"rep": rep} if rep else {})])
    return None


# --- the plan, as the checkpointed state keeps it ---------------------------------------------------


def plan_state(intent: Intent) -> dict[str, Any]:
    return {"name": intent.name, "calls": [[n, a] for n, a in intent.calls], "question": intent.question, "notes": intent.notes}


def plan_intent(plan: dict[str, Any]) -> Intent:
    calls = [(str(n), dict(a)) for n, a in plan.get("calls") or []]
    return Intent(str(plan.get("name") or "unknown"), calls, plan.get("question"), list(plan.get("notes") or []))


from lumo.agent import record_intents  # noqa: E402, F401  (registers its recognizer; it builds on this module)
