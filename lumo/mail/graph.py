"""Microsoft Graph for one mailbox, over its REST API with httpx; tokens from MSAL.

Why not msgraph-sdk: it is async only (Kiota), so every call from the outbox sender (a plain function, run
in a thread or a job) would need its own event loop, and its generated models are tens of thousands of
modules that mypy --strict would read on every lint. We call four endpoints (/me, sendMail, a sent-items
lookup, messages/delta and one message), and a delta link is an opaque URL best followed as given.

The access token comes from the stored refresh token through MSAL (which may rotate it: `on_refresh_token`
keeps the new one). A 401 refreshes once and retries; a refused refresh (invalid_grant) is ReconnectNeeded;
a 429 or 503 is retried after its Retry-After (at most MAX_WAIT_S); other errors are ProviderError.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import httpx
import msal

from lumo.mail.config import GRAPH_SCOPES, GRAPH_URL, MailConfig
from lumo.mail.errors import ProviderError, ReconnectNeeded

MAX_WAIT_S = 60.0
MAX_TRIES = 3
RETRY_STATUSES = (429, 503)
# What the reply sync reads of each message.
MESSAGE_FIELDS = "id,conversationId,internetMessageId,subject,from,receivedDateTime,bodyPreview"


def microsoft_app(config: MailConfig, http: httpx.Client) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        config.microsoft_client_id,
        client_credential=config.microsoft_client_secret,
        authority=config.microsoft_authority,
        http_client=http,
        instance_discovery=False,  # the authority is Microsoft's own: no lookup of who it is
    )


def token_error(result: dict[str, Any]) -> str | None:
    """MSAL's answer as one line when it is an error, else None."""
    if "error" not in result:
        return None
    words = str(result.get("error_description") or "").splitlines()
    return f"{result['error']}: {words[0] if words else ''}".rstrip(": ")


class Graph:
    def __init__(
        self,
        config: MailConfig,
        refresh_token: str,
        *,
        http: httpx.Client | None = None,
        on_refresh_token: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        access_token: str | None = None,
    ) -> None:
        self._http = http or httpx.Client(timeout=30)
        self._config = config
        self._refresh_token = refresh_token
        self.on_refresh_token = on_refresh_token
        self._sleep = sleep
        self._access = access_token
        self._app: msal.ConfidentialClientApplication | None = None

    def _token(self) -> str:
        if self._access:
            return self._access
        try:
            if self._app is None:
                self._app = microsoft_app(self._config, self._http)
            result = self._app.acquire_token_by_refresh_token(self._refresh_token, scopes=list(GRAPH_SCOPES))
        except (httpx.HTTPError, ValueError) as exc:  # before any mail call: nothing was sent
            raise ProviderError(
                f"Microsoft sign-in could not be reached: {type(exc).__name__}: {exc}", transmitted=False
            ) from None
        error = token_error(result)
        if error is not None:
            if result.get("error") in ("invalid_grant", "interaction_required", "consent_required"):
                raise ReconnectNeeded(f"Microsoft refused the stored grant ({error}): the rep must reconnect")
            raise ProviderError(f"Microsoft sign-in failed: {error}")
        if result.get("refresh_token") and result["refresh_token"] != self._refresh_token:
            self._refresh_token = str(result["refresh_token"])
            self.on_refresh_token(self._refresh_token)
        self._access = str(result["access_token"])
        return self._access

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One Graph call: `url` is a path under v1.0 or a whole URL (a delta or next link)."""
        full = url if url.startswith("https://") else f"{GRAPH_URL}{url}"
        extra = kwargs.pop("headers", {})
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            headers = {"Authorization": f"Bearer {self._token()}", **extra}
            try:
                response = self._http.request(method, full, headers=headers, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # no connection: the request never left
                raise ProviderError(
                    f"Microsoft Graph could not be reached: {type(exc).__name__}: {exc}", transmitted=False
                ) from None
            except httpx.HTTPError as exc:  # sent, and no answer: it may have been taken
                raise ProviderError(f"Microsoft Graph did not answer: {type(exc).__name__}: {exc}") from None
            if response.status_code == 401 and not refreshed:  # the access token expired early or was revoked
                refreshed = True
                self._access = None
                continue
            if response.status_code in RETRY_STATUSES and attempt < MAX_TRIES:
                wait = _retry_after(response)
                if (wait or 1.0) <= MAX_WAIT_S:
                    self._sleep(wait or float(attempt))
                    continue
            if response.status_code >= 400:
                raise ProviderError(
                    f"Microsoft Graph answered {response.status_code}: {_reason(response)}",
                    status=response.status_code,
                    retry_after=_retry_after(response),
                )
            return response

    def me(self) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", "/me", params={"$select": "mail,userPrincipalName"}).json()
        return data

    def send_mime(self, mime: bytes) -> None:
        """sendMail with a whole MIME message (base64): our Message-ID, In-Reply-To and References go as written."""
        self.request("POST", "/me/sendMail", content=base64.b64encode(mime), headers={"Content-Type": "text/plain"})

    def sent_conversation(self, internet_message_id: str) -> str | None:
        """The conversationId Exchange gave a message we sent, found by its Message-ID (None if not filed yet)."""
        quoted = internet_message_id.replace("'", "''")
        params = {"$filter": f"internetMessageId eq '{quoted}'", "$select": "id,conversationId"}
        found = self.request("GET", "/me/mailFolders/sentitems/messages", params=params).json().get("value", [])
        return str(found[0]["conversationId"]) if found else None

    def delta(self, link: str | None, since: str) -> tuple[list[dict[str, Any]], str]:
        """Inbox messages changed since `link` (every page) and the next delta link; without one, since `since`.

        An expired link answers 410 (syncStateNotFound): the caller starts over without one.
        """
        url = link or "/me/mailFolders/inbox/messages/delta"
        params = None if link else {"$select": MESSAGE_FIELDS, "$filter": f"receivedDateTime ge {since}"}
        messages: list[dict[str, Any]] = []
        while True:
            page = self.request("GET", url, params=params, headers={"Prefer": "odata.maxpagesize=50"}).json()
            messages += [m for m in page.get("value", []) if "@removed" not in m]
            params = None
            if "@odata.nextLink" in page:
                url = page["@odata.nextLink"]
                continue
            return messages, str(page["@odata.deltaLink"])

    def message(self, message_id: str) -> dict[str, Any]:
        """One message with its headers (for auto-reply filtering) and text body."""
        params = {"$select": f"{MESSAGE_FIELDS},internetMessageHeaders,body"}
        headers = {"Prefer": 'outlook.body-content-type="text"'}
        data: dict[str, Any] = self.request("GET", f"/me/messages/{message_id}", params=params, headers=headers).json()
        return data


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _reason(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return f"{error.get('code', '')} {error.get('message', '')}".strip() or response.reason_phrase
    except ValueError:
        return response.reason_phrase
