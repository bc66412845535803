"""Which day a side effect is checked against: a client's `date` may look ahead, an action may not."""

from __future__ import annotations

import datetime as dt

from lumo.crm.lifecycle import AsOf


def action_day(as_of: AsOf, now: dt.datetime) -> AsOf:
    """The asked day, but never beyond the real today at `now` (the injected clock) in the same time zone.

    A day ahead is for reads ("what will be overdue next month?"); an email or a status change worded against it
    would claim days overdue that are not true yet and skip the promise and cooldown rules of today.
    """
    real = AsOf.at(now, as_of.tz)
    return real if as_of.today > real.today else as_of
