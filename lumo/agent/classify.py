"""The last resort for a message no recognizer understood: a statistical guess at which read it asks for.

Character n-grams (3 to 5) of the message, weighted by TF-IDF, against one centroid per intent built from the
example phrasings in `intent_examples.tsv` (exported from evals/phrasings with `python -m evals phrasings
--export`; the held-out files are left out, so they measure it). Deterministic (no randomness, no training
state but the file), built once per process in a few milliseconds, and only ever read intents: a guess never
changes anything. Below a minimum similarity, or too close to a second intent, it says nothing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import cache
from pathlib import Path

EXAMPLES = Path(__file__).with_name("intent_examples.tsv")
READ_INTENTS = frozenset({"priorities", "overdue", "stale", "disputes", "health", "risk", "tasks", "contacts", "changes", "team"})
MIN_SCORE = 0.20  # cosine similarity to the best centroid (chit-chat and injections score below 0.17)
MIN_MARGIN = 0.08  # over the second best

_INVOICE = re.compile(r"\b[a-z]{2,8}-\d[\d-]*\b")


def _grams(text: str) -> Counter[str]:
    plain = _INVOICE.sub("inv", text.lower())
    plain = " " + " ".join(re.sub(r"\d", "0", re.sub(r"[^\w\s]", " ", plain)).split()) + " "
    return Counter(plain[i : i + n] for n in (3, 4, 5) for i in range(len(plain) - n + 1))


def _norm(vector: dict[str, float]) -> dict[str, float]:
    length = math.sqrt(sum(v * v for v in vector.values())) or 1.0
    return {k: v / length for k, v in vector.items()}


@cache
def _model() -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    examples = [line.split("\t", 1) for line in EXAMPLES.read_text().splitlines() if "\t" in line]
    grams = [(intent, _grams(text)) for intent, text in examples if intent in READ_INTENTS]
    df: Counter[str] = Counter(g for _, c in grams for g in c)
    idf = {g: math.log((1 + len(grams)) / (1 + n)) + 1 for g, n in df.items()}
    sums: dict[str, Counter[str]] = {}
    for intent, counts in grams:
        vector = _norm({g: (1 + math.log(n)) * idf[g] for g, n in counts.items()})
        sums.setdefault(intent, Counter()).update(vector)
    return idf, {intent: _norm(dict(total)) for intent, total in sorted(sums.items())}


def classify(text: str) -> tuple[str, float] | None:
    """The read intent a message most likely asks for and its similarity, or None when unsure."""
    idf, centroids = _model()
    counts = _grams(text)
    vector = _norm({g: (1 + math.log(n)) * idf[g] for g, n in counts.items() if g in idf})
    if not vector:
        return None
    scores = sorted(((sum(w * c.get(g, 0.0) for g, w in vector.items()), i) for i, c in centroids.items()), reverse=True)
    (best, intent), (second, _) = scores[0], scores[1] if len(scores) > 1 else (0.0, "")
    if best < MIN_SCORE or best - second < MIN_MARGIN:
        return None
    return intent, best
