from __future__ import annotations

import datetime as dt

import pytest

from lumo.crm.tone import tone_for
from tests.factories import TODAY


@pytest.mark.parametrize(
    ("days_overdue", "tone"),
    [
        (-4, None),
        (-3, "courtesy"),
        (0, "courtesy"),
        (1, "gentle"),
        (7, "gentle"),
        (8, "firm"),
        (30, "firm"),
        (31, "escalation"),
        (60, "escalation"),
        (61, "final_notice"),
        (400, "final_notice"),
    ],
)
def test_tone_ladder_boundaries(days_overdue: int, tone: str | None) -> None:
    assert tone_for(TODAY - dt.timedelta(days=days_overdue), TODAY) == tone
