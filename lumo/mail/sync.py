"""Reading replies back: new messages in the invoices' threads of every connected mailbox.

`sync_mailboxes` is what a periodic job calls (and `lumo mail sync`). Per mailbox it resumes from its cursor
(Gmail's historyId through history.list; Graph's delta link), and when the provider says the cursor expired
(Gmail 404, Graph 410) it reads its threads again in full (Gmail threads.get; a new Graph delta since the
mailbox was connected). Each message is kept once (`MailMessage`, unique per mailbox), in the transaction
that records what it changed (lumo.crm.replies), with the new cursor: a re-run or a resync changes nothing twice.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm import replies
from lumo.crm.errors import LumoError, NotFound
from lumo.crm.users import user_by_email
from lumo.db.models import Invoice, Mailbox, MailMessage, MailThread, User
from lumo.mail.connect import lose_grant
from lumo.mail.errors import ProviderError, ReconnectNeeded
from lumo.mail.gmail import Gmail
from lumo.mail.providers import Providers
from lumo.mail.secrets import Vault

log = logging.getLogger("lumo.mail")

GMAIL_EXPIRED = 404  # history.list: the startHistoryId is too old
GRAPH_EXPIRED = 410  # delta: syncStateNotFound


@dataclass(frozen=True)
class Incoming:
    """One message of a known thread, as the rules read it."""

    provider_id: str
    thread_id: str
    sender: str
    subject: str
    received_at: dt.datetime
    headers: Mapping[str, str]
    text: str


@dataclass(frozen=True)
class SyncResult:
    user: str
    provider: str
    status: str  # synced | needs_reconnect | failed
    replies: int = 0
    auto_replies: int = 0
    resynced: bool = False
    error: str | None = None

    def line(self) -> str:
        if self.status != "synced":
            return f"{self.user} ({self.provider}): {self.status.replace('_', ' ')}: {self.error}"
        again = ", cursor expired: threads read again in full" if self.resynced else ""
        return f"{self.user} ({self.provider}): {self.replies} replies, {self.auto_replies} automatic replies ignored{again}"


# Asked when the rules find no meaning in a reply (lumo.agent.reply_reader: the model proposes, never decides).
Reader = Callable[[str, Sequence[str], dt.date], replies.Meaning | None]


def sync_mailboxes(
    session_factory: sessionmaker[Session],
    now: dt.datetime,
    *,
    providers: Providers,
    user_email: str | None = None,
    reader: Reader | None = None,
) -> list[SyncResult]:
    """Read new replies of every connected mailbox (or one rep's); one mailbox's failure does not stop the rest."""
    with session_factory() as session:
        query = select(Mailbox.id).where(Mailbox.status == "connected").order_by(Mailbox.id)
        if user_email is not None:
            query = query.where(Mailbox.user_id == user_by_email(session, user_email).id)
        ids = list(session.scalars(query))
    results = [_sync_one(session_factory, box_id, now, providers, reader) for box_id in ids]
    for r in results:
        log.info("mail.sync.%s user=%s replies=%d auto=%d error=%s", r.status, r.user, r.replies, r.auto_replies, r.error)
    return results


def _sync_one(
    session_factory: sessionmaker[Session], box_id: int, now: dt.datetime, providers: Providers, reader: Reader | None
) -> SyncResult:
    with session_factory() as session:
        box = session.get_one(Mailbox, box_id)
        user = session.get_one(User, box.user_id)
        threads = _threads(session, box)
        try:
            refresh_token = Vault(providers.config.token_key).open(box.refresh_token)
            if box.provider == "gmail":
                messages, cursor, resynced = _gmail(providers, refresh_token, box, threads)
            else:
                messages, cursor, resynced = _graph(providers, refresh_token, box, threads)
        except ReconnectNeeded as exc:
            lose_grant(session, box, user, str(exc), now)
            session.commit()
            return SyncResult(user.email, box.provider, "needs_reconnect", error=str(exc))
        except LumoError as exc:  # ProviderError, a bad key: said, and retried by the next run
            box.last_error = str(exc)
            session.commit()
            return SyncResult(user.email, box.provider, "failed", error=str(exc))
        seen = set(
            session.scalars(
                select(MailMessage.provider_message_id).where(
                    MailMessage.mailbox_id == box.id, MailMessage.provider_message_id.in_([m.provider_id for m in messages])
                )
            )
        )
        counts = {"reply": 0, "auto_reply": 0}
        for message in messages:
            if message.provider_id in seen or _is_own(message, box):
                continue
            kind = _take(session, box, user, message, threads[message.thread_id], now, reader)
            counts[kind] += 1
            seen.add(message.provider_id)
        box.cursor, box.synced_at, box.last_error = cursor, now, None
        try:
            session.commit()
        except IntegrityError:  # another sync took these messages meanwhile: it recorded them
            session.rollback()
            return SyncResult(user.email, box.provider, "synced", resynced=resynced)
        return SyncResult(user.email, box.provider, "synced", counts["reply"], counts["auto_reply"], resynced)


def _threads(session: Session, box: Mailbox) -> dict[str, list[Invoice]]:
    """The mailbox's known threads (provider id) and the invoices each is about."""
    rows = session.execute(
        select(MailThread.provider_thread_id, Invoice)
        .join(Invoice, Invoice.id == MailThread.invoice_id)
        .where(MailThread.mailbox_id == box.id, MailThread.provider_thread_id.is_not(None))
        .order_by(Invoice.number)
    )
    out: dict[str, list[Invoice]] = defaultdict(list)
    for thread_id, invoice in rows:
        out[str(thread_id)].append(invoice)
    return dict(out)


def _is_own(message: Incoming, box: Mailbox) -> bool:
    return parseaddr(message.sender)[1].lower() == box.address.lower()


def _take(
    session: Session,
    box: Mailbox,
    user: User,
    message: Incoming,
    invoices: list[Invoice],
    now: dt.datetime,
    reader: Reader | None,
) -> str:
    """Keep one message; a real reply is logged on its invoices, pauses chasing them and suggests actions."""
    who = parseaddr(message.sender)[1] or message.sender
    numbers = [inv.number for inv in invoices]
    row = MailMessage(
        mailbox_id=box.id,
        provider_message_id=message.provider_id,
        provider_thread_id=message.thread_id,
        from_address=who[:320],
        subject=message.subject[:500],
        received_at=message.received_at,
        invoice_numbers=",".join(numbers),
    )
    session.add(row)
    if replies.is_auto_reply(message.headers):
        row.kind, row.meaning = "auto_reply", ""
        return "auto_reply"
    today = now.astimezone(ZoneInfo(user.timezone or "UTC")).date()
    said = replies.excerpt(replies.fresh_text(message.text))
    meaning = replies.classify(message.text, today)
    if meaning.kind == "other" and reader is not None:  # rules first; the model only when they found nothing
        meaning = reader(replies.fresh_text(message.text), numbers, today) or meaning
    row.kind, row.meaning, row.excerpt = "reply", meaning.kind, said
    suggested: list[dict[str, Any]] = []
    for inv in invoices:
        replies.record_reply(
            session, inv, at=message.received_at, who=who, said=said, source=f"{box.provider}:{message.provider_id}"
        )
        suggested += replies.proposals(meaning, inv.number, who, said, today)
    row.proposals = json.dumps(suggested)
    return "reply"


# --- Gmail ------------------------------------------------------------------------------------------


def _gmail(
    providers: Providers, refresh_token: str, box: Mailbox, threads: Mapping[str, list[Invoice]]
) -> tuple[list[Incoming], str, bool]:
    gmail = providers.gmail(refresh_token)
    if box.cursor:
        try:
            added, cursor = gmail.history(box.cursor)
            wanted = [mid for mid, tid in added if tid in threads]
            return [_gmail_incoming(gmail.message(mid)) for mid in wanted], cursor, False
        except ProviderError as exc:
            if exc.status != GMAIL_EXPIRED:
                raise
            log.warning("mail.sync.cursor_expired provider=gmail mailbox=%s", box.id)
    cursor = str(gmail.profile()["historyId"])  # taken first: what arrives while reading is read next time
    messages = [_gmail_incoming(m) for tid in threads for m in _gmail_thread(gmail, tid)]
    return messages, cursor, bool(box.cursor)


def _gmail_thread(gmail: Gmail, thread_id: str) -> list[dict[str, Any]]:
    try:
        messages: list[dict[str, Any]] = gmail.thread(thread_id).get("messages", [])
        return messages
    except ProviderError as exc:
        if exc.status == GMAIL_EXPIRED:  # the rep deleted the thread: nothing left to read in it
            return []
        raise


def _gmail_incoming(message: Mapping[str, Any]) -> Incoming:
    payload = message.get("payload", {})
    headers = {h["name"]: h["value"] for h in payload.get("headers", [])}
    received = dt.datetime.fromtimestamp(int(message.get("internalDate", "0")) / 1000, dt.UTC)
    return Incoming(
        provider_id=str(message["id"]),
        thread_id=str(message.get("threadId", "")),
        sender=headers.get("From", ""),
        subject=headers.get("Subject", ""),
        received_at=received,
        headers=headers,
        text=_plain_text(payload) or str(message.get("snippet", "")),
    )


def _plain_text(part: Mapping[str, Any]) -> str:
    if part.get("mimeType") == "text/plain" and part.get("body", {}).get("data"):
        return base64.urlsafe_b64decode(part["body"]["data"] + "==").decode("utf-8", errors="replace")
    for child in part.get("parts", []) or []:
        if text := _plain_text(child):
            return text
    return ""


# --- Microsoft Graph --------------------------------------------------------------------------------


def _graph(
    providers: Providers, refresh_token: str, box: Mailbox, threads: Mapping[str, list[Invoice]]
) -> tuple[list[Incoming], str, bool]:
    def keep(new_token: str) -> None:
        box.refresh_token = Vault(providers.config.token_key).seal(new_token)

    graph = providers.graph(refresh_token, on_refresh_token=keep)
    since = box.connected_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    resynced = False
    try:
        changed, link = graph.delta(box.cursor, since)
    except ProviderError as exc:
        if exc.status != GRAPH_EXPIRED or not box.cursor:
            raise
        log.warning("mail.sync.cursor_expired provider=outlook mailbox=%s", box.id)
        changed, link = graph.delta(None, since)
        resynced = True
    wanted = [m["id"] for m in changed if m.get("conversationId") in threads]
    return [_graph_incoming(graph.message(mid)) for mid in wanted], link, resynced


def _graph_incoming(message: Mapping[str, Any]) -> Incoming:
    headers = {h["name"]: h["value"] for h in message.get("internetMessageHeaders", []) or []}
    sender = message.get("from", {}).get("emailAddress", {})
    received = dt.datetime.fromisoformat(str(message["receivedDateTime"]).replace("Z", "+00:00"))
    return Incoming(
        provider_id=str(message["id"]),
        thread_id=str(message.get("conversationId", "")),
        sender=str(sender.get("address", "")),
        subject=str(message.get("subject", "")),
        received_at=received,
        headers=headers,
        text=str(message.get("body", {}).get("content") or message.get("bodyPreview", "")),
    )


def pending_replies(session: Session, user_id: str) -> Iterable[MailMessage]:
    """A rep's real replies, newest first, with what each suggests."""
    return session.scalars(
        select(MailMessage)
        .join(Mailbox, Mailbox.id == MailMessage.mailbox_id)
        .where(Mailbox.user_id == user_id, MailMessage.kind == "reply")
        .order_by(MailMessage.received_at.desc(), MailMessage.id.desc())
    )


def reply_of(session: Session, user_id: str, reply_id: int) -> MailMessage:
    """One of a rep's real replies; another rep's is reported like one that does not exist."""
    found = session.scalars(
        select(MailMessage)
        .join(Mailbox, Mailbox.id == MailMessage.mailbox_id)
        .where(MailMessage.id == reply_id, Mailbox.user_id == user_id, MailMessage.kind == "reply")
    ).one_or_none()
    if found is None:
        raise NotFound(f"no reply #{reply_id} in your mailbox")
    return found


def reply_calls(message: MailMessage, today: dt.date) -> list[tuple[str, dict[str, Any]]]:
    """What a reply suggests, as tool calls to propose today (they wait for approval)."""
    return replies.due_today(json.loads(message.proposals), today)
