"""One time budget for a whole turn: every model call of the turn shares it, then the offline model answers.

A per-call deadline lets a stalled server hold a rep for a minute per call; a turn makes up to six calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TURN_DEADLINE_S = 45.0


class TurnTimeout(Exception):
    """The turn's budget ran out while waiting for the model."""

    def __init__(self, total_s: float) -> None:
        super().__init__(f"the model did not answer within the turn's {total_s:g} s")
        self.total_s = total_s


class TurnDeadline:
    def __init__(self, total_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if total_s <= 0:
            raise ValueError("the turn deadline must be > 0 seconds")
        self.total_s = total_s
        self._clock = clock
        self._end = clock() + total_s

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await `call()` within what is left of the turn; TurnTimeout when nothing is left or it runs over."""
        left = self.remaining()
        if left <= 0:
            raise TurnTimeout(self.total_s)
        try:
            return await asyncio.wait_for(call(), left)
        except TimeoutError:
            raise TurnTimeout(self.total_s) from None
