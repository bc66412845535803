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

    # One client per grant, kept across sends and runs: its access token is reused until it expires or is refused.
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def gmail(self, refresh_token: str, *, access_token: str | None = None) -> Gmail:
        cached = self._clients.get(("gmail", refresh_token))
        if isinstance(cached, Gmail):
            return cached
        client = self._clients[("gmail", refresh_token)] = Gmail(
            self.config,
            refresh_token,
            http=self.gmail_http,
            discovery=self.gmail_discovery,
            sleep=self.sleep,
            access_token=access_token,
        )
        return client

    def graph(
        self, refresh_token: str, *, access_token: str | None = None, on_refresh_token: Callable[[str], None] | None = None
    ) -> Graph:
        cached = self._clients.get(("graph", refresh_token))
        if isinstance(cached, Graph):
            cached.on_refresh_token = on_refresh_token or (lambda _: None)
            return cached
        client = self._clients[("graph", refresh_token)] = Graph(
            self.config,
            refresh_token,
            http=self.http(),
            on_refresh_token=on_refresh_token or (lambda _: None),
            sleep=self.sleep,
            access_token=access_token,
        )
        return client

    def http(self) -> httpx.Client:
        if self.graph_http is None:
            self.graph_http = httpx.Client(timeout=30)
        return self.graph_http
