"""Helpers for tests that mock the OpenAI HTTP API with respx (openai 3.x speaks httpx2: use "httpcore2")."""

from __future__ import annotations

import respx


class FakeTime:
    """Monotonic clock that only moves when the client sleeps, so waits are observable and instant."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> respx.MockResponse:
    """An OpenAI-style error response (respx builds responses with legacy httpx; the mocker converts them)."""
    return respx.MockResponse(status, headers=headers, json={"error": {"message": message, "type": "error", "code": None}})
