"""Refresh tokens at rest: encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under `LUMO_MAIL_TOKEN_KEY`.

The OAuth `state` a provider sends back is a Fernet token too: authenticated, so a forged or altered one is
refused, and timestamped, so a stale one (older than STATE_TTL) is refused.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from lumo.crm.errors import InvalidInput

STATE_TTL_S = 600  # a rep has ten minutes to consent


def new_key() -> str:
    return Fernet.generate_key().decode()


class Vault:
    def __init__(self, key: str) -> None:
        if not key:
            raise InvalidInput("LUMO_MAIL_TOKEN_KEY is not set: make one with `lumo mail key` and set it first")
        try:
            self._fernet = Fernet(key.encode())
        except ValueError:
            raise InvalidInput(
                "LUMO_MAIL_TOKEN_KEY is not a Fernet key (32 url-safe base64 bytes): see `lumo mail key`"
            ) from None

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise InvalidInput(
                "a stored mail token cannot be decrypted with LUMO_MAIL_TOKEN_KEY (was the key changed?)"
            ) from None

    def seal_state(self, data: dict[str, Any], *, now_s: int) -> str:
        return self._fernet.encrypt_at_time(json.dumps(data, sort_keys=True).encode(), current_time=now_s).decode()

    def open_state(self, state: str, *, now_s: int) -> dict[str, Any]:
        try:
            raw = self._fernet.decrypt_at_time(state.encode(), ttl=STATE_TTL_S, current_time=now_s)
        except InvalidToken:
            raise InvalidInput("the sign-in with the mail provider expired or was not started here: connect again") from None
        data: dict[str, Any] = json.loads(raw)
        return data
