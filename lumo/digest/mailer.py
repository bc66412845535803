"""The one SMTP sender of the project: digests and approved outbox emails leave through `Mailer.send`.

`LUMO_SMTP_URL` forms: `smtp://host:port` (plain), `smtp://host:587?starttls=1` (STARTTLS),
`smtps://user:password@host:465` (TLS from the first byte). Connection errors and 4xx replies are
retried with exponential backoff and jitter; 5xx replies are permanent and fail at once.
A message is all-or-nothing: if any recipient is refused, nothing is sent.

Once the message itself has been transmitted, a lost connection or a missing reply is *uncertain*:
the server may have delivered it (a slow server answers after our timeout), so it is never retried
here; the caller records it for an operator. Recipients and headers are checked before connecting:
a bad one fails that message alone, permanently.
"""

from __future__ import annotations

import email.policy
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from lumo.crm.addresses import header_text, parse_address
from lumo.crm.errors import InvalidInput
from lumo.mail.errors import DeliveryError

log = logging.getLogger("lumo.digest")

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
# CRLF line ends for the wire; 7bit so non-ASCII text is encoded for servers without 8BITMIME.
WIRE_POLICY = email.policy.SMTP.clone(cte_type="7bit")


class MailError(DeliveryError):
    """A message the SMTP server did not take; `transient` says whether a later attempt may succeed.

    `uncertain`: it was transmitted but not confirmed, so it may have been delivered: do not resend blindly.
    """


class Unconfirmed(Exception):
    """The message went over the wire and the server's reply never came (timeout or dropped connection)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(describe(cause))
        self.cause = cause


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    ssl: bool
    starttls: bool
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidInput(f"bad SMTP URL {_redact(url)!r}: use smtp://host:port or smtps://user:pass@host:port")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise InvalidInput(f"bad port in SMTP URL {_redact(url)!r}") from None
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["0"])[-1].lower() in TRUE_WORDS
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        ssl=parts.scheme == "smtps",
        starttls=starttls and parts.scheme == "smtp",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _failure(state: RetryCallState) -> str:
    exc = state.outcome.exception() if state.outcome else None
    return describe(exc) if exc else ""


def is_transient(exc: BaseException) -> bool:
    """Worth another try: the connection failed or the server answered 4xx."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLError):
        return False  # configuration problems: retrying cannot help
    return isinstance(exc, smtplib.SMTPServerDisconnected | OSError)


def describe(exc: BaseException) -> str:
    """One line for a failed send, as a rep or operator would want to read it."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"recipient {rcpt} refused: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"sender {exc.sender} refused: {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP error {exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _text(raw: bytes | str) -> str:
    return (raw.decode(errors="replace") if isinstance(raw, bytes) else raw).strip()


class Mailer:
    """Sends one message per call over a fresh SMTP connection (a digest run is hundreds, not millions)."""

    def __init__(
        self,
        smtp_url: str,
        mail_from: str,
        *,
        timeout: float = 10,
        attempts: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = parse_smtp_url(smtp_url)
        self.mail_from = mail_from
        self.envelope_from = parseaddr(mail_from)[1] or mail_from
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep

    def new_message_id(self) -> str:
        return make_msgid(domain=self.envelope_from.rpartition("@")[2] or None)

    def send(
        self,
        to: Sequence[str],
        subject: str,
        text: str,
        html: str | None = None,
        cc: Sequence[str] = (),
        message_id: str | None = None,
        on_transmit: Callable[[], None] | None = None,
    ) -> None:
        """Send one email (multipart/alternative when `html` is given); raise MailError if it did not go.

        `message_id`: the Message-ID to use, so that every attempt at one email carries the same one.
        `on_transmit`: called just before the message's end leaves (from then on the server may hold it), so the
        caller can record that a crash past this point must not be followed by a resend; if it raises, nothing left.
        """
        if not to:
            raise MailError("no recipient")
        try:
            to, cc = [parse_address(a) for a in to], [parse_address(a) for a in cc]
            message = self.message(to, header_text(subject), text, html, cc, message_id)
        except (InvalidInput, ValueError) as exc:  # this message is bad, not the server: never retried
            log.warning("mail.refused error=%s", exc)
            raise MailError(f"not sent: {exc}") from None
        recipients = [*to, *cc]
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(initial=self.backoff, max=self.max_backoff, jitter=self.backoff),
            retry=retry_if_exception(is_transient),
            sleep=self.sleep,
            before_sleep=lambda state: log.warning(
                "mail.retry attempt=%d to=%s error=%s",
                state.attempt_number,
                ",".join(recipients),
                _failure(state),
            ),
            reraise=True,
        )
        try:
            retrying(self._deliver, message, recipients, on_transmit)
        except Unconfirmed as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            log.warning("mail.uncertain to=%s attempts=%d error=%s", ",".join(recipients), attempts, exc)
            reason = f"no confirmation after the message was transmitted ({exc}): it may have been delivered"
            raise MailError(reason, uncertain=True, attempts=attempts) from exc
        except (smtplib.SMTPException, OSError) as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            log.warning("mail.failed to=%s attempts=%d error=%s", ",".join(recipients), attempts, describe(exc))
            raise MailError(describe(exc), transient=is_transient(exc), attempts=attempts) from exc
        log.info("mail.sent to=%s subject=%s", ",".join(recipients), subject)

    def message(
        self,
        to: Sequence[str],
        subject: str,
        text: str,
        html: str | None,
        cc: Sequence[str],
        message_id: str | None = None,
    ) -> EmailMessage:
        msg = EmailMessage(policy=WIRE_POLICY)
        msg["From"] = self.mail_from
        msg["To"] = ", ".join(to)
        if cc:
            msg["Cc"] = ", ".join(cc)
        msg["Subject"] = subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id or self.new_message_id()
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        return msg

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        if t.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(t.host, t.port, timeout=self.timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(t.host, t.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if t.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if t.username:
                smtp.login(t.username, t.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _deliver(self, message: EmailMessage, recipients: list[str], on_transmit: Callable[[], None] | None = None) -> None:
        """One attempt. Every recipient is checked before DATA, so a refusal leaves nothing half-sent."""
        smtp = self._connect()
        try:
            code, reply = smtp.mail(self.envelope_from)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, self.envelope_from)
            refused = {}
            for rcpt in recipients:
                code, reply = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = (code, reply)
            if refused:
                with suppress(smtplib.SMTPException, OSError):
                    smtp.rset()
                raise smtplib.SMTPRecipientsRefused(refused)
            code, reply = smtp.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, reply)
            if on_transmit is not None:
                on_transmit()
            # Cut off while the message is still being written: its end (CRLF.CRLF) never left, so no server can
            # hold it, and the send is safe to retry (an OSError or disconnect here is transient).
            smtp.send(_data_block(message.as_bytes(policy=WIRE_POLICY)))
            try:  # from here on the server may hold the message: a missing answer is not a failure
                code, reply = smtp.getreply()
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                raise Unconfirmed(exc) from exc
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        finally:
            _quit(smtp)


def _data_block(payload: bytes) -> bytes:
    """The DATA payload as smtplib sends it: leading dots doubled, ended by CRLF.CRLF."""
    stuffed = re.sub(rb"(?m)^\.", b"..", payload)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
