"""The provider clients of one process, with what they are handed: the config, the HTTP clients, the clock's sleep.

Tests hand Gmail an `HttpMockSequence` (and a saved discovery document) and Graph an httpx client under respx;
a serving process leaves them None and gets real connections.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from lumo.mail.config import MailConfig
from lumo.mail.gmail import Gmail
from lumo.mail.graph import Graph


@dataclass
class Providers:
    config: MailConfig
    gmail_http: Any = None  # an httplib2.Http (or a test's HttpMockSequence); None: a new one per client
    gmail_discovery: str | None = None  # None: the document shipped with google-api-python-client
    graph_http: httpx.Client | None = None
    sleep: Callable[[float], None] = field(default=time.sleep)

    def gmail(self, refresh_token: str, *, access_token: str | None = None) -> Gmail:
        return Gmail(
            self.config,
            refresh_token,
            http=self.gmail_http,
            discovery=self.gmail_discovery,
            sleep=self.sleep,
            access_token=access_token,
        )

    def graph(
        self, refresh_token: str, *, access_token: str | None = None, on_refresh_token: Callable[[str], None] | None = None
    ) -> Graph:
        return Graph(
            self.config,
            refresh_token,
            http=self.http(),
            on_refresh_token=on_refresh_token or (lambda _: None),
            sleep=self.sleep,
            access_token=access_token,
        )

    def http(self) -> httpx.Client:
        if self.graph_http is None:
            self.graph_http = httpx.Client(timeout=30)
        return self.graph_http
