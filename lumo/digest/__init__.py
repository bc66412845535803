"""The morning digest and the one SMTP sender: build, send once per (user, day), and the outbox."""

from __future__ import annotations

from lumo.digest.build import Digest, build_digest
from lumo.digest.mailer import Mailer, MailError
from lumo.digest.run import (
    DigestResult,
    OutboxResult,
    send_digests,
    send_outbox,
)

__all__ = [
    "Digest",
    "DigestResult",
    "MailError",
    "Mailer",
    "OutboxResult",
    "build_digest",
    "send_digests",
    "send_outbox",
]
