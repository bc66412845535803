"""Retry policy for model calls: which errors are transient, how long to wait, when to give up.

Kept free of client state so each piece can be unit-tested on its own; `make_retrying`
glues them into a tenacity `AsyncRetrying`.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# 408/409 are "try again" by contract; 429 is rate limiting; 5xx is the server's problem.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def is_retryable(exc: BaseException) -> bool:
    """True for transient failures; APITimeoutError is a subclass of APIConnectionError."""
    if isinstance(exc, openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return is_retryable_status(exc.status_code)
    return False


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, or None when absent or unparseable.

    Understands `retry-after-ms` (OpenAI extension), `Retry-After: <seconds>` and
    `Retry-After: <HTTP date>`. `now` is wall-clock epoch seconds (HTTP dates are wall-clock).
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = _parse_number(lowered.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _parse_number(raw)
    if seconds is not None:
        return seconds
    return _parse_http_date_delay(raw, time.time() if now is None else now)


def _parse_number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    # Negative or non-finite values are nonsense; fall back to our own backoff.
    return value if math.isfinite(value) and value >= 0 else None


def _parse_http_date_delay(raw: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    # A date in the past means "now": wait 0 rather than ignoring the server.
    return max(0.0, when.timestamp() - now)


def retry_after_of(exc: BaseException | None) -> float | None:
    """The Retry-After delay carried by an API error response, if any."""
    if isinstance(exc, openai.APIStatusError):
        return parse_retry_after(exc.response.headers)
    return None


class Deadline:
    """A total time budget measured with an injectable (monotonic) clock."""

    def __init__(self, clock: Clock, total_s: float) -> None:
        self._clock = clock
        self.total_s = total_s
        self.start = clock()

    def elapsed(self) -> float:
        return self._clock() - self.start

    def remaining(self) -> float:
        return max(0.0, self.total_s - self.elapsed())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    total_deadline_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0

    @property
    def retry_after_cap_s(self) -> float:
        # Trust the server's hint, but not to the point of parking a user request for minutes.
        return self.backoff_max_s * 4


class BackoffWait:
    """Full-jitter exponential backoff, overridden by the server's Retry-After when present."""

    def __init__(self, policy: RetryPolicy, deadline: Deadline) -> None:
        self._policy = policy
        self._deadline = deadline
        self._jitter = wait_random_exponential(multiplier=policy.backoff_initial_s, max=policy.backoff_max_s)

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = retry_after_of(exc)
        if hinted is None:
            return self._jitter(retry_state)
        return min(hinted, self._policy.retry_after_cap_s, self._deadline.remaining())


class StopAtDeadline(stop_base):
    """Stop when sleeping the upcoming wait would overrun the total budget.

    tenacity computes the wait before asking the stop condition, so `upcoming_sleep` is set.
    """

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._deadline.elapsed() + retry_state.upcoming_sleep > self._deadline.total_s


def make_retrying(
    policy: RetryPolicy,
    *,
    deadline: Deadline,
    sleep: Sleep,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        wait=BackoffWait(policy, deadline),
        stop=stop_after_attempt(policy.max_attempts) | StopAtDeadline(deadline),
        sleep=sleep,
        before_sleep=before_sleep,
    )
