"""Helpers for tests that mock the OpenAI HTTP API with respx: `respx.mock(base_url=..., using=LLM_MOCKER)`.

Lumo's model client sends through the openai SDK's aiohttp transport (lumo.llm.client), which neither respx's own
mockers nor pytest-httpx2's "httpcore2" reach: `AiohttpTransportMocker` mocks that transport's one request method,
so the SDK above it (retries, parsing, errors) runs as it does against a server.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import respx
from respx.mocks import AbstractRequestMocker

LLM_MOCKER = "openai-aiohttp"


class AiohttpTransportMocker(AbstractRequestMocker):
    name = LLM_MOCKER
    targets = ["openai._vendor.httpx_aiohttp.transport.AiohttpTransport"]
    target_methods = ["handle_async_request"]

    @classmethod
    def to_httpx_request(cls, **kwargs: Any) -> httpx.Request:
        request: httpx2.Request = kwargs["request"]  # respx matches routes on legacy httpx requests
        return httpx.Request(request.method, str(request.url), headers=request.headers.raw, content=request.content)

    @classmethod
    async def prepare_async_request(cls, httpx_request: httpx.Request, **kwargs: Any) -> tuple[httpx.Request, dict[str, Any]]:
        return httpx_request, kwargs  # built with its content already

    @classmethod
    async def from_async_httpx_response(cls, httpx_response: httpx.Response, target: Any, **kwargs: Any) -> httpx2.Response:
        content = await httpx_response.aread()
        return httpx2.Response(
            httpx_response.status_code, headers=httpx_response.headers.raw, content=content, request=kwargs["request"]
        )


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
