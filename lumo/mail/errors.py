"""How a send or a sync failed, in the words the outbox and the rep need."""

from __future__ import annotations

from lumo.crm.errors import LumoError


class DeliveryError(LumoError):
    """An email that could not be sent (SMTP or a provider); `transient`: a later attempt may succeed.

    `uncertain`: it was transmitted but not confirmed, so it may have been delivered: do not resend blindly.
    `reconnect`: the mailbox's grant is gone (expired or revoked): nothing was sent; the rep must reconnect.
    """

    def __init__(
        self, message: str, *, transient: bool = False, attempts: int = 1, uncertain: bool = False, reconnect: bool = False
    ) -> None:
        super().__init__(message)
        self.transient = transient and not uncertain and not reconnect
        self.attempts = attempts
        self.uncertain = uncertain
        self.reconnect = reconnect


class ReconnectNeeded(LumoError):
    """The provider refused the mailbox's refresh token (expired, or the rep revoked Lumo's access)."""

    exit_code = 4
    http_status = 409


class ProviderError(LumoError):
    """The provider answered with an error we cannot act on now; `retry_after` when it said when to come back.

    `transmitted` False: the request never reached the provider (no connection), so nothing was sent.
    """

    exit_code = 5
    http_status = 502

    def __init__(self, message: str, *, status: int = 0, retry_after: float | None = None, transmitted: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.transmitted = transmitted
