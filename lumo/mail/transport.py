"""How one approved email leaves: by SMTP, or from the rep's own mailbox in the invoice's thread.

`transport_for` is the seam the outbox sender (`lumo.digest.run.send_outbox`) calls once per claimed email:
the claim, the Message-ID and the sent/failed/uncertain bookkeeping stay there, shared by every transport.
A mailbox transport replies in the thread it started for those invoices (In-Reply-To: its last Message-ID,
References: all of them, and the provider's thread id), then records the thread per invoice. A refused grant
marks the mailbox `needs_reconnect` and gives the rep a task; nothing is sent and the email fails, reported.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import logging
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumo.crm.addresses import header_text, parse_address
from lumo.crm.errors import InvalidInput, LumoError
from lumo.db.models import Invoice, Mailbox, MailThread, OutboxEmail, User
from lumo.mail.connect import PROVIDER_NAMES, lose_grant, mailbox_of, reconnect_words
from lumo.mail.errors import DeliveryError, ProviderError, ReconnectNeeded
from lumo.mail.providers import Providers
from lumo.mail.secrets import Vault

log = logging.getLogger("lumo.mail")

# 8bit-safe and CRLF: what both Gmail's `raw` and Graph's MIME sendMail take.
MIME_POLICY = email.policy.SMTP.clone(cte_type="7bit")
UNCERTAIN_STATUSES = (0, 500, 502, 504)  # no answer, or the provider failed midway: it may have been sent


class SmtpSender(Protocol):
    def send(
        self,
        to: list[str],
        subject: str,
        text: str,
        html: str | None = None,
        cc: list[str] = ...,
        message_id: str | None = None,
        on_transmit: Callable[[], None] | None = None,
    ) -> None: ...

    def new_message_id(self) -> str: ...


class Transport(Protocol):
    via: str

    def new_message_id(self) -> str: ...

    def deliver(self, session: Session, email: OutboxEmail, now: dt.datetime) -> None:
        """Send it (raising DeliveryError if it did not go) and record what the provider said, unflushed."""
        ...


def split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class SmtpTransport:
    via = "smtp"

    def __init__(self, mailer: SmtpSender) -> None:
        self.mailer = mailer

    def new_message_id(self) -> str:
        return self.mailer.new_message_id()

    def deliver(self, session: Session, email: OutboxEmail, now: dt.datetime) -> None:
        self.mailer.send(split(email.to), email.subject, email.body, cc=split(email.cc), message_id=email.message_id)


def transport_for(session: Session, email: OutboxEmail, smtp: SmtpSender, providers: Providers | None) -> Transport:
    """The rep's own mailbox when they connected one, else SMTP as before."""
    mailbox = mailbox_of(session, email.user_id) if providers is not None else None
    if mailbox is None or providers is None:
        return SmtpTransport(smtp)
    user = session.get(User, email.user_id)
    assert user is not None, "an outbox email's user exists (foreign key)"
    return MailboxTransport(providers, mailbox, user)


def compose(
    *,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str],
    subject: str,
    text: str,
    message_id: str,
    references: Sequence[str],
) -> bytes:
    """The whole message; a reply in a thread carries In-Reply-To (the last id) and References (all of them)."""
    msg = EmailMessage(policy=MIME_POLICY)
    msg["From"] = sender
    msg["To"] = ", ".join(parse_address(a) for a in to)
    if cc:
        msg["Cc"] = ", ".join(parse_address(a) for a in cc)
    msg["Subject"] = header_text(subject)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id
    if references:
        msg["In-Reply-To"] = references[-1]
        msg["References"] = " ".join(references)
    msg.set_content(text)
    return msg.as_bytes(policy=MIME_POLICY)


class MailboxTransport:
    def __init__(self, providers: Providers, mailbox: Mailbox, user: User) -> None:
        self.providers = providers
        self.mailbox = mailbox
        self.user = user
        self.via = mailbox.provider

    def new_message_id(self) -> str:
        return make_msgid(domain=self.mailbox.address.rpartition("@")[2] or None)

    def deliver(self, session: Session, email: OutboxEmail, now: dt.datetime) -> None:
        box, name = self.mailbox, PROVIDER_NAMES[self.mailbox.provider]
        if box.status != "connected":
            raise DeliveryError(self._reconnect_words(email), reconnect=True)
        assert email.message_id is not None, "the sender gives every email its Message-ID before delivering it"
        invoices = list(session.scalars(select(Invoice).where(Invoice.number.in_(split(email.invoice_numbers)))))
        rows = list(
            session.scalars(
                select(MailThread).where(MailThread.mailbox_id == box.id, MailThread.invoice_id.in_([i.id for i in invoices]))
            )
        )
        thread = max(rows, key=lambda t: (t.updated_at, t.id)) if rows else None  # follow-ups answer the latest
        references = thread.message_ids.split() if thread else []
        try:
            mime = compose(
                sender=formataddr((self.user.name, box.address)),
                to=split(email.to),
                cc=split(email.cc),
                subject=email.subject,
                text=email.body,
                message_id=email.message_id,
                references=references,
            )
            refresh_token = Vault(self.providers.config.token_key).open(box.refresh_token)
        except (InvalidInput, ValueError) as exc:  # this message (or the setup) is bad: never retried
            raise DeliveryError(f"not sent: {exc}") from None
        try:
            thread_id = self._send(refresh_token, mime, thread.provider_thread_id if thread else None, email)
        except ReconnectNeeded as exc:
            self._needs_reconnect(session, str(exc), email, now)
            raise DeliveryError(f"{exc}; {self._reconnect_words(email)}", reconnect=True) from None
        except ProviderError as exc:
            if _grant_refused(exc):
                self._needs_reconnect(session, str(exc), email, now)
                raise DeliveryError(f"{exc}; {self._reconnect_words(email)}", reconnect=True) from None
            if not exc.transmitted:  # no connection: nothing left, a later run tries again
                raise DeliveryError(f"{name}: {exc}", transient=True) from None
            if exc.status in UNCERTAIN_STATUSES:
                raise DeliveryError(f"{name}: {exc}: it may have been sent", uncertain=True) from None
            raise DeliveryError(f"{name}: {exc}", transient=exc.status in (403, 429, 503)) from None
        log.info("mail.sent via=%s to=%s thread=%s", box.provider, email.to, thread_id)
        chain = " ".join([*references, email.message_id])
        for inv in invoices:
            mine = [t for t in rows if t.invoice_id == inv.id]
            row = next((t for t in mine if t.provider_thread_id == thread_id), None)
            if row is None:
                row = MailThread(mailbox_id=box.id, invoice_id=inv.id, subject=email.subject, provider_thread_id=thread_id)
                session.add(row)
            row.message_ids, row.updated_at = chain, now

    def _send(self, refresh_token: str, mime: bytes, thread_id: str | None, email: OutboxEmail) -> str | None:
        """Send; the provider's thread (or conversation) id, when it says it."""
        if self.mailbox.provider == "gmail":
            sent = self.providers.gmail(refresh_token).send(mime, thread_id)
            return str(sent.get("threadId") or thread_id or "") or None
        box = self.mailbox

        def keep(new_token: str) -> None:  # Microsoft rotates refresh tokens: keep the newest
            box.refresh_token = Vault(self.providers.config.token_key).seal(new_token)

        graph = self.providers.graph(refresh_token, on_refresh_token=keep)
        graph.send_mime(mime)
        try:  # sent: from here on nothing may fail the send; the conversation id is a convenience
            return graph.sent_conversation(email.message_id or "") or thread_id
        except LumoError as exc:
            log.warning("mail.conversation_unknown message_id=%s error=%s", email.message_id, exc)
            return thread_id

    def _reconnect_words(self, email: OutboxEmail) -> str:
        return f"{reconnect_words(self.mailbox, self.user)}, then `lumo outbox retry {email.id}`"

    def _needs_reconnect(self, session: Session, reason: str, email: OutboxEmail, now: dt.datetime) -> None:
        lose_grant(session, self.mailbox, self.user, reason, now)


def _grant_refused(exc: ProviderError) -> bool:
    """Still refused with a fresh token (401), or forbidden for want of a scope (403 that is not a rate limit)."""
    if exc.status == 401:
        return True
    return exc.status == 403 and "rate" not in str(exc).lower()
