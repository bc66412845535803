"""The email tone ladder: days relative to the due date pick the tone (ARCHITECTURE.md, domain rules).

The tone names are defined here once; drafts, schemas and the digest import them.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, get_args

Tone = Literal["courtesy", "gentle", "firm", "escalation", "final_notice", "dispute_resolution"]
TONES: tuple[Tone, ...] = get_args(Tone)  # in the order of the ladder, then the dispute follow-up
COURTESY_DAYS_BEFORE = 3
LADDER: tuple[tuple[int, Tone], ...] = (  # (first day overdue, tone); the last rung whose start has been reached wins
    (-COURTESY_DAYS_BEFORE, "courtesy"),
    (1, "gentle"),
    (8, "firm"),
    (31, "escalation"),
    (61, "final_notice"),
)
# From these tones on, the account owner's manager is copied.
MANAGER_CC_TONES: frozenset[Tone] = frozenset({"escalation", "final_notice"})


def tone_for(due_date: dt.date, today: dt.date) -> Tone | None:
    """The tone of a collection email today; None while the due date is more than 3 days ahead."""
    days = (today - due_date).days
    tone: Tone | None = None
    for start, name in LADDER:
        if days >= start:
            tone = name
    return tone
