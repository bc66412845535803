"""The email tone ladder: days relative to the due date pick the tone (DESIGN section 3)."""

from __future__ import annotations

import datetime as dt

COURTESY_DAYS_BEFORE = 3
LADDER = (  # (first day overdue, tone); the last rung whose start has been reached wins
    (-COURTESY_DAYS_BEFORE, "courtesy"),
    (1, "gentle"),
    (8, "firm"),
    (31, "escalation"),
    (61, "final_notice"),
)
TONES = ("courtesy", "gentle", "firm", "escalation", "final_notice", "dispute_resolution")
# From these tones on, the account owner's manager is copied.
MANAGER_CC_TONES = frozenset({"escalation", "final_notice"})
# From gentle on, the email says a payment already made can be disregarded.
DISREGARD_TONES = frozenset({"gentle", "firm", "escalation", "final_notice"})


def tone_for(due_date: dt.date, today: dt.date) -> str | None:
    """The tone of a collection email today; None while the due date is more than 3 days ahead."""
    days = (today - due_date).days
    tone = None
    for start, name in LADDER:
        if days >= start:
            tone = name
    return tone


def tone_rank(tone: str) -> int:
    return TONES.index(tone)
