"""SQLAlchemy 2.x typed models of the CRM.

One workspace per database. Ids are the strings of the import format (ARCHITECTURE.md section 5);
payments and activities, which have no ids there, get integer keys.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

Money = Numeric(18, 2, asdecimal=True)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware datetimes on SQLite too: stored as UTC, returned aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: moments must carry a time zone")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    def result_processor(self, dialect: Any, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # SQLite keeps naive ISO text in UTC: one C-level parse with the offset appended, instead of two layers of
        # processing or a parse then `replace` (several times slower; thousands per read on the hot path).
        def parse(value: str | None) -> dt.datetime | None:
            if value is None:
                return None
            try:
                return dt.datetime.fromisoformat(value + "+00:00")
            except ValueError:  # written with an offset by something else: still a moment, in UTC
                return dt.datetime.fromisoformat(value).astimezone(dt.UTC)

        return parse


class SQLiteDate(TypeDecorator[dt.date]):
    """A DATE whose SQLite text is parsed by the C-level `date.fromisoformat` (hot path of every read)."""

    impl = Date
    cache_ok = True

    def result_processor(self, dialect: Any, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def parse(value: str | None) -> dt.date | None:
            return None if value is None else dt.date.fromisoformat(value)

        return parse


class Base(DeclarativeBase):
    pass


ROLES = ("rep", "manager", "admin")
ACTIVITY_KINDS = ("email", "call", "note", "status_change")


class Workspace(Base):
    __tablename__ = "workspace"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    base_currency: Mapped[str] = mapped_column(String(3))


class FxRate(Base):
    """Units of the base currency for one unit of `currency`."""

    __tablename__ = "fx_rates"
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(18, 8, asdecimal=True))


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    manager_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    slack_user_id: Mapped[str | None] = mapped_column(String(64), unique=True)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    tier: Mapped[str] = mapped_column(String(32), default="standard")
    renewal_date: Mapped[dt.date | None] = mapped_column(SQLiteDate())


class Contact(Base):
    __tablename__ = "contacts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(64), default="billing")
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)


class Deal(Base):
    __tablename__ = "deals"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))


class Invoice(Base):
    __tablename__ = "invoices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    deal_id: Mapped[str | None] = mapped_column(ForeignKey("deals.id"))
    issue_date: Mapped[dt.date] = mapped_column(SQLiteDate())
    due_date: Mapped[dt.date] = mapped_column(SQLiteDate())
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    # Kept equal to the sum of payments by the one writer (crm.ledger) so reads need no aggregate.
    amount_paid: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    status: Mapped[str] = mapped_column(String(16))
    status_updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    promise_to_pay_date: Mapped[dt.date | None] = mapped_column(SQLiteDate())
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    payment_url: Mapped[str | None] = mapped_column(String(500))
    # Latest activity of any kind, and latest email/call: staleness and cooldown read these.
    last_activity_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_contacted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # The payment provider's id of this invoice (Stripe's `in_...`): how its webhook events find it.
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    # When the customer last answered by email and the rep has not acted since: chasing waits (crm.replies).
    customer_replied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    contacts: Mapped[list[Contact]] = relationship(
        secondary="invoice_contacts", order_by="InvoiceContact.position", viewonly=True
    )

    __table_args__ = (
        Index("ix_invoices_account_status", "account_id", "status"),
        Index("ix_invoices_status_due", "status", "due_date"),
    )


class InvoiceContact(Base):
    __tablename__ = "invoice_contacts"
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Payment(Base):
    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    paid_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # Where it came from when not a person: "stripe:<event id>" or "bank:<row hash>" (negative amounts: refunds).
    source: Mapped[str | None] = mapped_column(String(120), index=True)


class Activity(Base):
    """History of an invoice: rows are only ever added."""

    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text, default="")
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    # Set when no person did it: "stripe:<event id>", "bank:<row hash>"; the history's `by` says the provider.
    source: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (Index("ix_activities_invoice_at", "invoice_id", "at"),)


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    title: Mapped[str] = mapped_column(String(500))
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    done: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_tasks_owner_done_due", "owner_id", "done", "due_date"),)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # sha256 of the token: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # None: until revoked


__all__ = [
    "ACTIVITY_KINDS",
    "Account",
    "Activity",
    "AgentAction",
    "ApiToken",
    "BankLine",
    "Base",
    "ChatThread",
    "Contact",
    "Deal",
    "DigestRun",
    "FxRate",
    "Invoice",
    "InvoiceContact",
    "MailMessage",
    "MailThread",
    "Mailbox",
    "OutboxEmail",
    "Payment",
    "PaymentEvent",
    "ROLES",
    "SlackEvent",
    "Task",
    "ThreadLock",
    "User",
    "WebLink",
    "Workspace",
]


class OutboxEmail(Base):
    """An approved email waiting for (or done with) the SMTP sender.

    queued -> sending -> sent | failed | queued (a transient failure before the message went over the wire)
    | uncertain (transmitted, not confirmed: only an operator sends it again, with the same Message-ID).
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The approved action that queued it: one action never queues two emails.
    action_id: Mapped[str] = mapped_column(String(200), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    to: Mapped[str] = mapped_column(Text)  # comma-separated addresses
    cc: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    invoice_numbers: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # One Message-ID per email, kept across attempts and runs: a receiver can drop a copy it already has.
    message_id: Mapped[str | None] = mapped_column(String(250))
    # When a sender took it (status sending): a claim older than a send can take was interrupted.
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # How it left (or is leaving): smtp, gmail or outlook (the rep's own mailbox, lumo.mail).
    sent_via: Mapped[str | None] = mapped_column(String(16))


class AgentAction(Base):
    """A side effect the agent ran after approval, keyed by action id so a resumed step never repeats it."""

    __tablename__ = "agent_actions"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(200), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    tool: Mapped[str] = mapped_column(String(64))
    args: Mapped[str] = mapped_column(Text)  # JSON
    result: Mapped[str] = mapped_column(Text)  # JSON
    executed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class DigestRun(Base):
    """One rep's digest for one day: a re-run never sends twice; a failed send stays unsent."""

    __tablename__ = "digest_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    day: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sending | sent | failed | uncertain
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # when it started to leave ('sending')

    __table_args__ = (UniqueConstraint("user_id", "day", name="uq_digest_runs_user_day"),)


class BookVersion(Base):
    """The version of one owner's book ('*': of every book), set anew by database triggers on each write to it
    (migration 0012): what is computed from a book is kept while its version stays the same."""

    __tablename__ = "book_versions"
    owner_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class SlackEvent(Base):
    """Slack event ids already taken: Slack retries an event until acked, we process it once."""

    __tablename__ = "slack_events"
    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ThreadLock(Base):
    """Who is deciding a thread's pending actions now (SQLite; PostgreSQL uses an advisory lock instead)."""

    __tablename__ = "thread_locks"
    thread_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    acquired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class PaymentEvent(Base):
    """A payment provider's event (a Stripe webhook), stored once whatever the retries, with what it did."""

    __tablename__ = "payment_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())  # the provider's moment: orders the events
    object_id: Mapped[str] = mapped_column(String(100), default="")  # the provider's invoice (or charge) id
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    # applied | unmatched (no Lumo invoice: finance decides) | superseded (older than one applied) | ignored
    status: Mapped[str] = mapped_column(String(16), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str] = mapped_column(Text)  # the object as received (JSON)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_payment_events_provider_event"),)


class BankLine(Base):
    """One line of an imported bank statement, kept once by its hash, with what it matched or suggests."""

    __tablename__ = "bank_lines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)
    source_file: Mapped[str] = mapped_column(String(300), default="")
    booked_on: Mapped[dt.date] = mapped_column(SQLiteDate())
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    reference: Mapped[str] = mapped_column(Text, default="")
    counterparty: Mapped[str] = mapped_column(String(300), default="")
    # matched (applied on import) | suggested (waits for approval) | applied (approved) | unmatched
    status: Mapped[str] = mapped_column(String(16), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="")  # exact | partial | multi | ambiguous | foreign | none
    invoice_ids: Mapped[str] = mapped_column(Text, default="")  # candidates, comma-separated, in order
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)  # whose book it is in
    reason: Mapped[str] = mapped_column(Text, default="")
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    imported_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))


class WebLink(Base):
    """A one-time sign-in link for the web app (`lumo web-link`): short-lived, exchanged once for a session token."""

    __tablename__ = "web_links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256: the link itself is never stored
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ChatThread(Base):
    """A user's chat threads for the web app's list: the conversation itself lives in the checkpointer."""

    __tablename__ = "chat_threads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    thread_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("user_id", "thread_id", name="uq_chat_threads_user_thread"),
        Index("ix_chat_threads_user_updated", "user_id", "updated_at"),
    )


MAIL_PROVIDERS = ("gmail", "outlook")


class Mailbox(Base):
    """A rep's own Gmail or Outlook mailbox: approved emails leave from it and replies are read back.

    connected | needs_reconnect (the provider refused the refresh token: expired or consent revoked).
    """

    __tablename__ = "mailboxes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), unique=True)  # one mailbox per user
    provider: Mapped[str] = mapped_column(String(16))  # gmail | outlook
    address: Mapped[str] = mapped_column(String(320))
    refresh_token: Mapped[str] = mapped_column(Text)  # Fernet-encrypted (lumo.mail.secrets), never in clear
    status: Mapped[str] = mapped_column(String(16), default="connected")
    # Where the reply sync resumes: Gmail's historyId, Graph's delta link.
    cursor: Mapped[str | None] = mapped_column(Text)
    connected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    synced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)


class MailThread(Base):
    """An invoice's email thread in a mailbox: follow-ups reply in the latest, and replies in any are the customer's.

    Gmail starts a new thread when a follow-up's subject differs from the thread's, so an invoice can have several.
    """

    __tablename__ = "mail_threads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    # Gmail's threadId or Graph's conversationId (None until the provider says it).
    provider_thread_id: Mapped[str | None] = mapped_column(String(250), index=True)
    subject: Mapped[str] = mapped_column(String(500))
    # The thread's Message-IDs, oldest first, space-separated: the next email's References.
    message_ids: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("mailbox_id", "invoice_id", "provider_thread_id", name="uq_mail_threads_mailbox_invoice_thread"),
    )


class MailMessage(Base):
    """A message read back from a thread, kept once by its provider id with what it meant."""

    __tablename__ = "mail_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    provider_message_id: Mapped[str] = mapped_column(String(250))
    provider_thread_id: Mapped[str] = mapped_column(String(250), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # reply (a person answered) | auto_reply (out of office and the like: changes nothing) | own (the rep's)
    kind: Mapped[str] = mapped_column(String(16))
    # paid_claim | dispute | promise | question | other (crm.replies, rules first)
    meaning: Mapped[str] = mapped_column(String(16), default="")
    invoice_numbers: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    excerpt: Mapped[str] = mapped_column(Text, default="")
    # The actions to approve that it suggests, as tool calls (JSON list of {tool, args}).
    proposals: Mapped[str] = mapped_column(Text, default="[]")

    __table_args__ = (UniqueConstraint("mailbox_id", "provider_message_id", name="uq_mail_messages_mailbox_message"),)
