"""The Gmail API for one mailbox (google-api-python-client over httplib2, authorised by google-auth).

The access token comes from the stored refresh token: `AuthorizedHttp` refreshes it before the first call and
again on a 401. A refused refresh (invalid_grant: expired or revoked) is `ReconnectNeeded`; a 429 or 503 is
retried after its Retry-After (at most MAX_WAIT_S), then a `ProviderError`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

from lumo.mail.config import GMAIL_SCOPES, GOOGLE_TOKEN_URI, MailConfig
from lumo.mail.errors import ProviderError, ReconnectNeeded

MAX_WAIT_S = 60.0  # a Retry-After longer than this is reported, not slept through
MAX_TRIES = 3
RETRY_STATUSES = (429, 503)


def bundled_discovery() -> str:
    """Gmail's discovery document as shipped with google-api-python-client: no network to build the client."""
    docs = resources.files("googleapiclient") / "discovery_cache" / "documents" / "gmail.v1.json"
    return docs.read_text(encoding="utf-8")


class Gmail:
    def __init__(
        self,
        config: MailConfig,
        refresh_token: str,
        *,
        http: Any = None,
        discovery: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        access_token: str | None = None,
    ) -> None:
        credentials = Credentials(  # type: ignore[no-untyped-call]
            token=access_token,
            refresh_token=refresh_token,
            token_uri=GOOGLE_TOKEN_URI,
            client_id=config.google_client_id,
            client_secret=config.google_client_secret,
            scopes=list(GMAIL_SCOPES),
        )
        authed = google_auth_httplib2.AuthorizedHttp(credentials, http=http or httplib2.Http(timeout=30))
        self._api = build_from_document(discovery or bundled_discovery(), http=authed).users()
        self._sleep = sleep

    def _run(self, request: Any) -> dict[str, Any]:
        for attempt in range(1, MAX_TRIES + 1):
            try:
                result: dict[str, Any] = request.execute(num_retries=0)
                return result
            except RefreshError as exc:
                raise ReconnectNeeded(
                    f"Gmail refused the stored grant ({_refresh_reason(exc)}): the rep must reconnect"
                ) from None
            except HttpError as exc:
                status = int(exc.resp.status)
                wait = _retry_after(exc.resp)
                if status in RETRY_STATUSES and attempt < MAX_TRIES and (wait or 1.0) <= MAX_WAIT_S:
                    self._sleep(wait or float(attempt))
                    continue
                raise ProviderError(f"Gmail answered {status}: {_reason(exc)}", status=status, retry_after=wait) from None
            except (TransportError, OSError, httplib2.HttpLib2Error) as exc:
                raise ProviderError(f"Gmail could not be reached: {type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable: the last try returns or raises")

    def profile(self) -> dict[str, Any]:
        """{emailAddress, historyId, ...}"""
        return self._run(self._api.getProfile(userId="me"))

    def send(self, mime: bytes, thread_id: str | None) -> dict[str, Any]:
        """Send a whole RFC 5322 message; in `thread_id` when given. Returns {id, threadId, labelIds}."""
        body: dict[str, Any] = {"raw": base64.urlsafe_b64encode(mime).decode()}
        if thread_id:
            body["threadId"] = thread_id
        return self._run(self._api.messages().send(userId="me", body=body))

    def history(self, start_history_id: str) -> tuple[list[tuple[str, str]], str]:
        """(message id, thread id) of messages added since `start_history_id` (every page), and where to resume.

        An expired historyId answers 404: the caller resyncs its threads in full.
        """
        added: dict[str, str] = {}
        token: str | None = None
        latest = start_history_id
        while True:
            page = self._run(
                self._api.history().list(
                    userId="me", startHistoryId=start_history_id, historyTypes=["messageAdded"], pageToken=token
                )
            )
            for record in page.get("history", []):
                for item in record.get("messagesAdded", []):
                    added[item["message"]["id"]] = item["message"].get("threadId", "")
            latest = str(page.get("historyId", latest))
            token = page.get("nextPageToken")
            if not token:
                return list(added.items()), latest

    def thread(self, thread_id: str) -> dict[str, Any]:
        return self._run(self._api.threads().get(userId="me", id=thread_id, format="full"))

    def message(self, message_id: str) -> dict[str, Any]:
        return self._run(self._api.messages().get(userId="me", id=message_id, format="full"))


def _retry_after(resp: Any) -> float | None:
    raw = resp.get("retry-after") if hasattr(resp, "get") else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _reason(exc: HttpError) -> str:
    try:
        error = json.loads(exc.content).get("error", {})
        return str(error.get("message") or error.get("status") or exc.resp.reason)
    except (ValueError, AttributeError):
        return str(exc.resp.reason)


def _refresh_reason(exc: RefreshError) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.split(":")[0] or "refused"
