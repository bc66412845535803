"""Posting to the Slack Web API.

slack_sdk's AsyncWebClient needs aiohttp, which Lumo does not depend on; the standard-library WebClient runs
in a worker thread instead, so the event loop never blocks on Slack. Its retry handlers cover connection
errors, 429 (honouring Retry-After) and 500/503.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web import WebClient

from lumo.config import Settings

log = logging.getLogger("lumo.slack")
TEXT_LIMIT = 39_000  # chat.postMessage truncates text past 40,000 characters


class SlackClient:
    """The few Web API calls Lumo makes; failures are logged, never raised into the background job."""

    def __init__(self, token: str, base_url: str, timeout: int = 10) -> None:
        self._web = WebClient(
            token=token,
            base_url=base_url,
            timeout=timeout,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=2),
                RateLimitErrorRetryHandler(max_retry_count=2),
                ServerErrorRetryHandler(max_retry_count=2),
            ],
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackClient:
        return cls(settings.slack_bot_token, settings.slack_api_url)

    async def post_message(
        self, channel: str, text: str, *, thread_ts: str | None = None, blocks: list[dict[str, Any]] | None = None
    ) -> str | None:
        """Post to a channel (in a thread when `thread_ts`); the new message's ts, or None on failure."""
        response = await self._call(
            "chat_postMessage", channel=channel, text=text[:TEXT_LIMIT], thread_ts=thread_ts, blocks=blocks
        )
        return None if response is None else response.get("ts")

    async def post_ephemeral(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> None:
        """A message only `user` sees."""
        await self._call("chat_postEphemeral", channel=channel, user=user, text=text[:TEXT_LIMIT], thread_ts=thread_ts)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._web, method), **kwargs)
        except SlackApiError as exc:
            log.error("slack.api_error method=%s error=%s", method, exc.response.get("error"))
        except Exception:  # noqa: BLE001  (network trouble: logged, the turn itself already happened)
            log.exception("slack.api_failed method=%s", method)
        return None
