"""Payment events from a provider (Stripe's webhooks) applied to Lumo's invoices: once, in any order.

Each event is stored once (unique on provider + event id), whatever the provider's retries. An event does not
add "a payment": it carries the provider's snapshot of the invoice (`amount_paid`) or of a charge
(`amount_refunded`), and Lumo brings its provider-sourced payments to what the latest snapshot says. So a
replay, a twin event (`invoice.paid` and `invoice.payment_succeeded`) or an old event arriving late changes
nothing twice, and a refund or a failed payment after a payment reopens the invoice. An event whose invoice
Lumo does not know is stored as unmatched for finance, never dropped, and applied once its invoice is known:
when a later event or a snapshot import brings the invoice's Stripe id or number (`relink`), or when finance
links it by hand through an approved `link_payment_event` (`check_link`, `link_event`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lumo.crm import ledger
from lumo.crm.errors import Forbidden, InvalidInput, NotFound
from lumo.crm.invoices import get_invoice
from lumo.crm.money import format_code
from lumo.crm.recording import status_after_dispute
from lumo.crm.scope import Scope
from lumo.db.models import Invoice, Payment, PaymentEvent

STRIPE = "stripe"
INVOICE_EVENTS = (
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
)
CHARGE_EVENTS = ("charge.refunded",)
HANDLED = INVOICE_EVENTS + CHARGE_EVENTS
# Where an invoice's metadata may name the Lumo invoice (set when the Stripe invoice was created from Lumo).
NUMBER_KEYS = ("lumo_invoice_number", "invoice_number")
ZERO = Decimal("0")


@dataclass(frozen=True)
class ProviderEvent:
    event_id: str
    type: str
    created: dt.datetime
    obj: dict[str, Any]

    @property
    def stripe_invoice_id(self) -> str:
        value = self.obj.get("invoice") if self.type in CHARGE_EVENTS else self.obj.get("id")
        return value if isinstance(value, str) else ""


def parse_stripe_event(payload: dict[str, Any]) -> ProviderEvent:
    """The parts of a (verified) Stripe event Lumo reads; a malformed one is refused with what is missing."""
    event_id, kind, created = payload.get("id"), payload.get("type"), payload.get("created")
    obj = (payload.get("data") or {}).get("object") if isinstance(payload.get("data"), dict) else None
    if not isinstance(event_id, str) or not event_id or len(event_id) > 100:
        raise InvalidInput("the event has no id")
    if not isinstance(kind, str) or not kind:
        raise InvalidInput(f"event {event_id} has no type")
    if not isinstance(created, int) or created < 0:
        raise InvalidInput(f"event {event_id} has no created time")
    if not isinstance(obj, dict):
        raise InvalidInput(f"event {event_id} has no data.object")
    return ProviderEvent(event_id, kind, dt.datetime.fromtimestamp(created, dt.UTC), obj)


def minor_to_decimal(value: Any, currency: str) -> Decimal:
    """Stripe's integer amount in the currency's smallest unit as a Decimal (JPY has none, USD cents)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"bad amount {value!r}: Stripe amounts are integers")
    places = get_currency_precision(currency.upper())
    return (Decimal(value) / (Decimal(10) ** places)).quantize(Decimal("0.01"))


def receive(session: Session, event: ProviderEvent, *, now: dt.datetime) -> tuple[PaymentEvent, bool]:
    """Store the event (once) and apply it; returns its row and whether it was new. The caller commits."""
    existing = session.scalar(
        select(PaymentEvent).where(PaymentEvent.provider == STRIPE, PaymentEvent.event_id == event.event_id)
    )
    if existing is not None:
        return existing, False
    row = PaymentEvent(
        provider=STRIPE,
        event_id=event.event_id,
        type=event.type,
        created_at=event.created,
        object_id=str(event.obj.get("id") or "")[:100],
        status="ignored",
        detail="",
        payload=json.dumps(event.obj, sort_keys=True),
        received_at=now,
    )
    session.add(row)
    if event.type not in HANDLED:
        row.detail = f"{event.type} is not a payment event Lumo reads"
        session.flush()
        return row, True
    inv, by_number = _find(session, event)
    if inv is None:
        row.status = "unmatched"
        number = _named_number(event.obj)
        row.detail = f"no Lumo invoice for Stripe invoice {event.stripe_invoice_id or '?'}" + (
            f" (number {number})" if number else ""
        )
        session.flush()
        return row, True
    _link(session, row, event, inv, now)
    if by_number:  # the invoice just learnt its Stripe id: earlier events of it may be waiting
        relink(session, now=now)
    return row, True


def _link(session: Session, row: PaymentEvent, event: ProviderEvent, inv: Invoice, now: dt.datetime) -> None:
    row.invoice_id = inv.id
    session.flush()
    _apply(session, inv, event, row, now)
    session.flush()


def _claim(session: Session, row: PaymentEvent, inv: Invoice) -> bool:
    """Take a waiting event for the invoice; False when another transaction took it first (PostgreSQL waits on
    the row, then sees it taken), so a relink racing another applies nothing twice."""
    claimed = session.execute(
        update(PaymentEvent)
        .where(PaymentEvent.id == row.id, PaymentEvent.invoice_id.is_(None), PaymentEvent.status == "unmatched")
        .values(invoice_id=inv.id)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        session.refresh(row)
        return False
    return True


def _stored(row: PaymentEvent) -> ProviderEvent:
    return ProviderEvent(row.event_id, row.type, row.created_at, json.loads(row.payload))


def _waiting() -> Any:
    return select(PaymentEvent).where(
        PaymentEvent.provider == STRIPE,
        PaymentEvent.status == "unmatched",
        PaymentEvent.invoice_id.is_(None),
        PaymentEvent.type.in_(HANDLED),
    )


def relink(session: Session, *, now: dt.datetime) -> list[PaymentEvent]:
    """Apply the unmatched events whose invoice Lumo now knows (its Stripe id or its number), oldest first, so
    each is applied once and an older one after a newer is superseded as on arrival. The caller commits."""
    done = []
    for row in session.scalars(_waiting().order_by(PaymentEvent.created_at, PaymentEvent.event_id)).all():
        event = _stored(row)
        inv, _ = _find(session, event)
        if inv is not None and _claim(session, row, inv):
            _link(session, row, event, inv, now)
            done.append(row)
    return done


def _waiting_event(session: Session, scope: Scope, event_id: str) -> PaymentEvent:
    if scope.role == "rep":
        raise Forbidden("linking payments is for managers and finance: ask your manager")
    row = session.scalar(select(PaymentEvent).where(PaymentEvent.provider == STRIPE, PaymentEvent.event_id == event_id))
    if row is None:
        raise NotFound(f"payment event {event_id} not found")
    if row.status != "unmatched":
        raise InvalidInput(f"payment event {event_id} is {row.status} already")
    if row.invoice_id is not None or row.type not in HANDLED:
        raise InvalidInput(f"payment event {event_id} cannot be linked: {row.detail}")
    return row


def check_link(session: Session, scope: Scope, event_id: str, number: str) -> str:
    """What linking the event to the invoice will do, in words; refused when it cannot (before approval)."""
    row = _waiting_event(session, scope, event_id)
    inv = get_invoice(session, scope, number)
    event = _stored(row)
    stripe_id = event.stripe_invoice_id
    if stripe_id and inv.external_id not in (None, stripe_id):
        raise InvalidInput(f"{inv.number} is Stripe invoice {inv.external_id}, not {stripe_id}")
    currency = str(event.obj.get("currency") or "").upper()
    if currency and currency != inv.currency:
        raise InvalidInput(f"{inv.number} is billed in {inv.currency}, the Stripe event is in {currency}")
    also = f"; later events of Stripe invoice {stripe_id} will find it" if stripe_id and inv.external_id is None else ""
    return f"Apply Stripe {row.type} ({row.event_id}, {row.created_at.date().isoformat()}) to {inv.number}{also}"


def link_event(session: Session, scope: Scope, event_id: str, number: str, *, now: dt.datetime) -> dict[str, Any]:
    """Finance's link, once approved: the invoice takes the event's Stripe id, and the event (with any other
    waiting for that invoice) is applied as if it had been matched on arrival. The caller commits."""
    check_link(session, scope, event_id, number)
    row = _waiting_event(session, scope, event_id)
    inv = get_invoice(session, scope, number)
    event = _stored(row)
    if event.stripe_invoice_id and inv.external_id is None:
        inv.external_id = event.stripe_invoice_id
    if not _claim(session, row, inv):
        raise InvalidInput(f"payment event {event_id} was just applied by another request")
    _link(session, row, event, inv, now)
    others = relink(session, now=now)
    return {
        "event_id": row.event_id,
        "invoice_number": inv.number,
        "status": row.status,
        "detail": row.detail,
        "also_applied": [r.event_id for r in others],
        "invoice_status": inv.status,
    }


def _named_number(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    for key in NUMBER_KEYS:
        value = (metadata or {}).get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    number = obj.get("number")
    return number.strip() if isinstance(number, str) else ""


def _find(session: Session, event: ProviderEvent) -> tuple[Invoice | None, bool]:
    """By the stored external id, else by the invoice number in metadata or Stripe's number (then linked);
    and whether it was found by its number (and so just learnt its Stripe id)."""
    stripe_id = event.stripe_invoice_id
    if stripe_id:
        inv = session.scalar(select(Invoice).where(Invoice.external_id == stripe_id))
        if inv is not None:
            return inv, False
    number = _named_number(event.obj)
    if not number:
        return None, False
    inv = session.scalar(select(Invoice).where(func.upper(Invoice.number) == number.upper()))
    if inv is not None and stripe_id and inv.external_id is None:
        inv.external_id = stripe_id  # the next event finds it by id
        return inv, True
    return inv, False


def _latest(session: Session, inv: Invoice, types: tuple[str, ...], object_id: str | None = None) -> PaymentEvent | None:
    query = select(PaymentEvent).where(
        PaymentEvent.invoice_id == inv.id, PaymentEvent.type.in_(types), PaymentEvent.status == "applied"
    )
    if object_id is not None:
        query = query.where(PaymentEvent.object_id == object_id)
    return session.scalars(query.order_by(PaymentEvent.created_at.desc(), PaymentEvent.event_id.desc())).first()


def _is_older(event: ProviderEvent, than: PaymentEvent | None) -> bool:
    if than is None:
        return False
    return (event.created, event.event_id) < (than.created_at, than.event_id)


def _targets(session: Session, inv: Invoice) -> tuple[Decimal, Decimal]:
    """(paid, refunded) as the latest applied snapshots say: the invoice's amount_paid, each charge's refunds."""
    snapshot = _latest(session, inv, INVOICE_EVENTS)
    refunds = session.scalars(
        select(PaymentEvent).where(
            PaymentEvent.invoice_id == inv.id, PaymentEvent.type.in_(CHARGE_EVENTS), PaymentEvent.status == "applied"
        )
    ).all()
    latest_charge: dict[str, PaymentEvent] = {}
    for r in refunds:
        seen = latest_charge.get(r.object_id)
        if seen is None or (r.created_at, r.event_id) > (seen.created_at, seen.event_id):
            latest_charge[r.object_id] = r
    charges = [json.loads(r.payload) for r in latest_charge.values()]
    refunded = sum((minor_to_decimal(c.get("amount_refunded", 0), inv.currency) for c in charges), ZERO)
    if snapshot is not None:
        paid = minor_to_decimal(json.loads(snapshot.payload).get("amount_paid", 0), inv.currency)
    else:  # a refund arriving before the invoice's paid event: the charge itself says what was paid
        paid = sum((minor_to_decimal(c.get("amount_captured", c.get("amount", 0)), inv.currency) for c in charges), ZERO)
    return paid, refunded


def _apply(session: Session, inv: Invoice, event: ProviderEvent, row: PaymentEvent, now: dt.datetime) -> None:
    currency = str(event.obj.get("currency") or "").upper()
    if currency and currency != inv.currency:
        row.status = "unmatched"
        row.detail = f"{inv.number} is billed in {inv.currency}, the Stripe event is in {currency}"
        return
    is_charge = event.type in CHARGE_EVENTS
    types = CHARGE_EVENTS if is_charge else INVOICE_EVENTS
    newer = _latest(session, inv, types, row.object_id if is_charge else None)
    if _is_older(event, newer):
        assert newer is not None
        row.status = "superseded"
        row.detail = f"older than {newer.event_id} ({newer.type}), already applied"
        return
    row.status = "applied"
    session.flush()
    source = f"{STRIPE}:{event.event_id}"
    paid, refunded = _targets(session, inv)
    have = session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(Payment.invoice_id == inv.id, Payment.source.like(f"{STRIPE}:%"))
    )
    diff = paid - refunded - Decimal(str(have)).quantize(Decimal("0.01"))
    balance = max(inv.amount - (inv.amount_paid or ZERO), ZERO)
    if diff > balance:  # paid by hand already: never count the same money twice
        diff = balance
    said = [f"Stripe {event.type} ({event.event_id})"]
    if diff != 0:
        ledger.add_payment(session, inv, amount=diff, paid_at=event.created, source=source)
        what = "payment" if diff > 0 else "refund" if is_charge else "reversal"
        said.append(f"{what} of {format_code(abs(diff), inv.currency)}")
    ledger.record_activity(session, inv, kind="note", at=now, by_id=None, text=": ".join(said), source=source)
    to = _status_for(session, inv, now)
    if to != inv.status:
        ledger.change_status(session, inv, to_status=to, at=now, by_id=None, reason=": ".join(said), source=source)
    row.detail = "; ".join([*said[1:], f"status {inv.status}"])


def _status_for(session: Session, inv: Invoice, now: dt.datetime) -> str:
    latest = _latest(session, inv, INVOICE_EVENTS)
    if latest is not None and latest.type == "invoice.voided":
        return "void"
    if latest is not None and latest.type == "invoice.marked_uncollectible":
        return "written_off"
    balance = inv.amount - (inv.amount_paid or ZERO)
    if balance <= 0:
        return "paid"
    if inv.status in ("paid", "void", "written_off"):  # reopened by a refund or a failed payment
        return status_after_dispute(inv, now.date())
    if inv.status in ("sent", "viewed") and (inv.amount_paid or ZERO) > 0:
        return "partially_paid"
    return inv.status


def unmatched_events(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    """Provider events Lumo could not put on an invoice: finance's to sort out."""
    rows = session.scalars(
        select(PaymentEvent)
        .where(PaymentEvent.status == "unmatched")
        .order_by(PaymentEvent.created_at.desc(), PaymentEvent.id.desc())
        .limit(limit)
    ).all()
    return [event_json(r) for r in rows]


def event_json(r: PaymentEvent) -> dict[str, Any]:
    return {
        "provider": r.provider,
        "event_id": r.event_id,
        "type": r.type,
        "created_at": r.created_at.isoformat(),
        "object_id": r.object_id,
        "status": r.status,
        "detail": r.detail,
        # Waiting for an invoice: finance links it (approved like any action).
        "action": {"tool": "link_payment_event", "args": {"event_id": r.event_id}} if r.invoice_id is None else None,
    }
