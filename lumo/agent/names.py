"""Names and words in a rep's message, read against their own book: accounts, contacts, reps, and typos.

Matching is by rapidfuzz on whole names without their legal suffixes, so "Knox", "knox aerospace" and "Knx
Aerospace" find Knox Aerospace, while "Knox Aerospace" never lands on another rep's "Brandt Aerospace SA".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from lumo.crm.book import BookNames

NAME_SCORE = 86  # fuzz.ratio from which a typed name is the book's name
WORD_SCORE = 80  # fuzz.ratio from which an unknown word is a misspelt domain word
_SUFFIXES = frozenset(
    {"co", "inc", "llc", "ltd", "plc", "sa", "gmbh", "ag", "corp", "corporation", "group", "holdings", "company", "limited", "bv"}
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*[A-Za-z]|[A-Za-z0-9]+")
_TOKEN = re.compile(r"[^\s]+")

# The words the intents are read from: an unknown lowercase word close to one of them is that word misspelt.
LEXICON = frozenset(
    """
    what which who whom whose where when why how should shall could would can will do does did done is are was were
    have has had today tomorrow yesterday tonight week month first next last number invoice invoices overdue owe owes
    owed outstanding unpaid late payment payments paid pay priorities priority urgent important focus work call chase
    start draft reminder reminders email emails send mark status statuses stale disputes dispute disputed tasks task
    contact contacts health healthy risk revenue account accounts total totals converted convert dollars euros pounds
    changed change changes happened since show list tell more about please days older over above beyond than aging bucket
    book team rep reps doing promise promises broken note notes follow create schedule remind anything everything
    currency base combined altogether customer customers client clients money much many any my me the and for with
    """.split()
)
FUNCTION_WORDS = frozenset(
    "a an the at of in on to by from is it its i we us our you your they them their this that these those be as or".split()
)
_SLANG = {
    "2day": "today",
    "tday": "today",
    "2moro": "tomorrow",
    "2morrow": "tomorrow",
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "wat": "what",
    "wht": "what",
    "whats": "what's",
    "wut": "what",
    "shud": "should",
    "shld": "should",
    "u": "you",
    "r": "are",
    "ur": "your",
    "pls": "please",
    "plz": "please",
    "inv": "invoice",
    "invs": "invoices",
    "acct": "account",
    "accts": "accounts",
    "cust": "customer",
    "asap": "now",
    "thx": "thanks",
    "w/": "with",
    "abt": "about",
    "msg": "message",
    "ppl": "people",
    "pmt": "payment",
    "pmts": "payments",
    "od": "overdue",
    "ovrdue": "overdue",
}


def core(name: str) -> str:
    """A name as it is compared: lowercase words without legal suffixes ("Knox Aerospace LLC" -> "knox aerospace")."""
    words = [w for w in re.findall(r"[a-z0-9&]+", name.lower().replace("’", "'")) if w not in _SUFFIXES]
    return " ".join(words)


@dataclass(frozen=True)
class NameIndex:
    """A book's names, prepared once per turn for matching."""

    accounts: tuple[str, ...]
    account_cores: tuple[str, ...]
    first_words: dict[str, tuple[str, ...]]  # a name's first word -> the accounts starting with it
    contacts: dict[str, str]  # contact name (lowercase) -> account name
    reps: dict[str, str]  # rep name (lowercase) -> the name as written
    book_words: frozenset[str]  # every word of every name, lowercase: never "corrected" as a typo

    @classmethod
    def of(cls, book: BookNames) -> NameIndex:
        return _index(book)


@lru_cache(maxsize=64)
def _index(book: BookNames) -> NameIndex:
    cores = tuple(core(a) for a in book.accounts)
    first: dict[str, list[str]] = {}
    for name, c in zip(book.accounts, cores, strict=True):
        if c:
            first.setdefault(c.split()[0], []).append(name)
    words = {w for n in (*book.accounts, *(c for c, _ in book.contacts), *(n for _, n in book.reps)) for w in core(n).split()}
    return NameIndex(
        accounts=book.accounts,
        account_cores=cores,
        first_words={k: tuple(v) for k, v in first.items()},
        contacts={c.lower(): a for c, a in book.contacts},
        reps={n.lower(): n for _, n in book.reps},
        book_words=frozenset(words),
    )


def _spans(text: str, longest: int = 4) -> list[tuple[int, int, str]]:
    """Runs of 1..`longest` words of the text with their character span, longest first."""
    tokens = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    out = []
    for size in range(min(longest, len(tokens)), 0, -1):
        for i in range(len(tokens) - size + 1):
            start, end = tokens[i][0], tokens[i + size - 1][1]
            out.append((start, end, text[start:end]))
    return out


def _capitalised(phrase: str) -> bool:
    return phrase[:1].isupper()


def accounts_in(text: str, index: NameIndex) -> list[str]:
    """The book's accounts a message names, in order of mention: whole names, a distinctive first word, or a
    close misspelling of either. Several accounts sharing the named first word are all returned."""
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for start, end, phrase in _spans(text):
        if any(s < end and start < e for s, e in taken):
            continue
        c = core(phrase)
        if not c or (c in LEXICON and not _capitalised(phrase)):
            continue
        plain = not any(w in LEXICON or w in FUNCTION_WORDS for w in c.split())
        names: tuple[str, ...] = ()
        if c in index.account_cores:
            names = tuple(a for a, ac in zip(index.accounts, index.account_cores, strict=True) if ac == c)
        elif " " not in c and c in index.first_words and (_capitalised(phrase) or c not in LEXICON):
            names = tuple(n for n in index.first_words[c] if not _other_name_follows(text, end, n))
        elif plain and len(c) >= 4 and (_capitalised(phrase) or " " in c):
            hit = process.extractOne(c, index.account_cores, scorer=fuzz.ratio, score_cutoff=NAME_SCORE)
            if hit is None and " " not in c and len(c) >= 5:
                hit = process.extractOne(c, list(index.first_words), scorer=fuzz.ratio, score_cutoff=NAME_SCORE)
                if hit is not None:
                    names = index.first_words[hit[0]]
            elif hit is not None:
                names = (index.accounts[hit[2]],)
        if names:
            taken.append((start, end))
            found.extend((start, n) for n in names)
    ordered: list[str] = []
    for _, name in sorted(found):
        if name not in ordered:
            ordered.append(name)
    return ordered


def _other_name_follows(text: str, end: int, account: str) -> bool:
    """ "Stephenson Consulting" is not "Stephenson Partners Co": a capitalised word after the first word that
    the account's name does not have makes it another name."""
    m = re.match(r"\s+([A-Z][\w&'’-]*)", text[end:])
    if not m:
        return False
    word = m.group(1).lower()
    return word not in core(account).split() and word not in LEXICON and word not in FUNCTION_WORDS and word not in _SUFFIXES


def _person_in(text: str, people: dict[str, str]) -> tuple[str, str] | None:
    """(name as written in the book, the phrase typed) of the first person a message names: full name, a
    unique first or last name (capitalised), or a close misspelling of the full name."""
    if not people:
        return None
    for _start, _end, phrase in _spans(text, longest=3):
        low = phrase.lower()
        if low in people:
            return people[low], phrase
        if " " in low and len(low) >= 7:
            hit = process.extractOne(low, list(people), scorer=fuzz.ratio, score_cutoff=NAME_SCORE)
            if hit is not None:
                return people[hit[0]], phrase
    for _start, _end, phrase in _spans(text, longest=1):
        if not _capitalised(phrase) or phrase.lower() in LEXICON:
            continue
        matches = [n for low, n in people.items() if phrase.lower() in low.split()]
        if len(matches) == 1:
            return matches[0], phrase
    return None


def rep_in(text: str, index: NameIndex) -> str | None:
    found = _person_in(text, index.reps)
    return found[0] if found else None


def contact_account_in(text: str, index: NameIndex) -> str | None:
    """The account of the contact a message names ("what does Hank Scorpio owe?")."""
    found = _person_in(text, {k: k for k in index.contacts})
    return index.contacts[found[0]] if found else None


def normalise(text: str, index: NameIndex | None = None) -> str:
    """The message with chat slang and misspelt domain words put right; names and numbers kept as typed."""
    keep = index.book_words if index else frozenset()
    out = []
    for token in _TOKEN.findall(text):
        head, word, tail = _split_punct(token)
        low = word.lower()
        fixed = word
        if low in _SLANG:
            fixed = _SLANG[low]
        elif word.isalpha() and word.islower() and len(word) >= 4 and low not in LEXICON and low not in keep:
            hit = process.extractOne(low, LEXICON, scorer=fuzz.ratio, score_cutoff=WORD_SCORE)
            if hit is not None:
                fixed = hit[0]
        out.append(f"{head}{fixed}{tail}")
    return " ".join(out)


def _split_punct(token: str) -> tuple[str, str, str]:
    m = re.match(r"^([^\w]*)(.*?)([^\w]*)$", token)
    assert m is not None
    return m.group(1), m.group(2), m.group(3)
