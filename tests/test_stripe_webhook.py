"""POST /webhooks/stripe: signed by the stripe library's own helper, stored once, applied once in any order."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.api.app import create_app
from lumo.auth import create_token
from lumo.config import Settings
from lumo.crm.invoices import actionable_rows, invoice_history
from lumo.crm.priorities import compute_priorities
from lumo.crm.stale import stale_findings
from lumo.db.models import Invoice, Payment, PaymentEvent
from tests.agent_support import AS_OF, NOW, build_book, scope_of

SECRET = "whsec_test_secret"
T0 = 1_764_000_000  # the events' own clock (Stripe's `created`)


@pytest.fixture
def client(db_url: str, session: Session) -> Any:
    build_book(session)
    tokens = {who: create_token(session, f"{who}@acme.test", NOW, "test") for who in ("u1", "m1")}
    session.commit()
    app = create_app(Settings(database_url=db_url, stripe_webhook_secret=SECRET), env={"LUMO_LLM": "offline"})
    with TestClient(app, raise_server_exceptions=False) as c:
        c.tokens = tokens  # type: ignore[attr-defined]
        yield c


def invoice_event(event_id: str, kind: str, *, amount_paid: int, created: int = T0, **obj: Any) -> dict[str, Any]:
    body = {"id": "in_2001", "object": "invoice", "currency": "usd", "amount_paid": amount_paid, "number": "STRIPE-77"}
    body["metadata"] = {"lumo_invoice_number": "INV-2001"}
    body.update(obj)
    return {"id": event_id, "object": "event", "type": kind, "created": created, "data": {"object": body}}


def refund_event(event_id: str, refunded: int, created: int) -> dict[str, Any]:
    charge = {"id": "ch_1", "object": "charge", "invoice": "in_2001", "currency": "usd", "amount": 90000}
    charge.update({"amount_captured": 90000, "amount_refunded": refunded})
    return {"id": event_id, "object": "event", "type": "charge.refunded", "created": created, "data": {"object": charge}}


def send(client: TestClient, event: dict[str, Any], secret: str = SECRET) -> Any:
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret)
    return client.post(
        "/webhooks/stripe", content=payload, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


def _inv(factory: sessionmaker[Session], number: str = "INV-2001") -> Invoice:
    with factory() as s:
        inv = s.scalar(select(Invoice).where(Invoice.number == number))
        assert inv is not None
        return inv


def _payments(factory: sessionmaker[Session]) -> list[Decimal]:
    with factory() as s:
        inv_id = s.scalar(select(Invoice.id).where(Invoice.number == "INV-2001"))
        return list(s.scalars(select(Payment.amount).where(Payment.invoice_id == inv_id).order_by(Payment.id)))


def test_a_paid_event_marks_the_invoice_paid_exactly_once_even_when_replayed(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    event = invoice_event("evt_paid", "invoice.paid", amount_paid=90000)
    first = send(client, event)
    assert first.status_code == 200 and first.json() == {
        "received": True,
        "event_id": "evt_paid",
        "duplicate": False,
        "status": "applied",
    }
    again = send(client, event)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    twin = send(client, invoice_event("evt_succeeded", "invoice.payment_succeeded", amount_paid=90000, created=T0 + 1))
    assert twin.json()["status"] == "applied"
    assert _payments(session_factory) == [Decimal("900.00")]
    inv = _inv(session_factory)
    assert inv.status == "paid" and inv.amount_paid == Decimal("900.00") and inv.external_id == "in_2001"


def test_the_history_says_stripe_and_the_event_id(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    send(client, invoice_event("evt_paid", "invoice.paid", amount_paid=90000))
    with session_factory() as s:
        detail = invoice_history(s, scope_of(session_factory, "u1@acme.test"), "INV-2001", AS_OF)
    stripe_events = [h for h in detail["history"] if h["by"] == "stripe"]
    assert stripe_events and all("evt_paid" in h["text"] for h in stripe_events)
    assert any(h["kind"] == "status_change" and h["to"] == "paid" for h in stripe_events)


def test_a_failed_payment_older_than_the_payment_changes_nothing(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    send(client, invoice_event("evt_paid", "invoice.paid", amount_paid=90000, created=T0 + 60))
    late = send(client, invoice_event("evt_failed", "invoice.payment_failed", amount_paid=0, created=T0))
    assert late.json()["status"] == "superseded"
    assert _inv(session_factory).status == "paid" and _payments(session_factory) == [Decimal("900.00")]


def test_events_in_either_order_end_the_same(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    send(client, invoice_event("evt_failed", "invoice.payment_failed", amount_paid=0, created=T0))
    send(client, invoice_event("evt_paid", "invoice.paid", amount_paid=90000, created=T0 + 60))
    assert _inv(session_factory).status == "paid" and _payments(session_factory) == [Decimal("900.00")]


def test_a_refund_reopens_the_invoice_and_puts_it_back_in_the_chase(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    send(client, invoice_event("evt_paid", "invoice.paid", amount_paid=90000))
    with session_factory() as s:
        assert "INV-2001" not in [i.invoice.number for i in compute_priorities(s, scope, AS_OF) if i.invoice]
    send(client, refund_event("evt_refund", 90000, T0 + 120))
    send(client, refund_event("evt_refund", 90000, T0 + 120))  # a retry
    inv = _inv(session_factory)
    assert inv.amount_paid == Decimal("0.00") and inv.status == "overdue"
    assert _payments(session_factory) == [Decimal("900.00"), Decimal("-900.00")]
    with session_factory() as s:
        assert "INV-2001" in [i.invoice.number for i in compute_priorities(s, scope, AS_OF) if i.invoice]


def test_a_payment_leaves_no_paid_not_marked_finding(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    send(client, invoice_event("evt_partial", "invoice.payment_succeeded", amount_paid=40000))
    inv = _inv(session_factory)
    assert inv.status == "partially_paid" and inv.amount_paid == Decimal("400.00")
    send(client, invoice_event("evt_rest", "invoice.paid", amount_paid=90000, created=T0 + 5))
    with session_factory() as s:
        rows = actionable_rows(s, scope_of(session_factory, "u1@acme.test"))
        kinds = {(f.invoice_number, f.kind) for f in stale_findings(rows, AS_OF)}
    assert not any(number == "INV-2001" for number, _ in kinds)
    assert _payments(session_factory) == [Decimal("400.00"), Decimal("500.00")]


def test_voided_and_uncollectible_set_the_status(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    send(client, invoice_event("evt_void", "invoice.voided", amount_paid=0))
    assert _inv(session_factory).status == "void"
    send(client, invoice_event("evt_unc", "invoice.marked_uncollectible", amount_paid=0, created=T0 + 9))
    assert _inv(session_factory).status == "written_off"


def test_an_unknown_invoice_is_stored_unmatched_and_shown_to_managers(client: TestClient) -> None:
    event = invoice_event("evt_unknown", "invoice.paid", amount_paid=100, id="in_nope", metadata={}, number="ZZZ-1")
    assert send(client, event).json()["status"] == "unmatched"
    manager = client.get("/v1/payments/unmatched", headers={"Authorization": f"Bearer {client.tokens['m1']}"})  # type: ignore[attr-defined]
    assert manager.status_code == 200
    [found] = manager.json()["provider_events"]
    assert found["event_id"] == "evt_unknown" and "in_nope" in found["detail"]
    rep = client.get("/v1/payments/unmatched", headers={"Authorization": f"Bearer {client.tokens['u1']}"})  # type: ignore[attr-defined]
    assert rep.status_code == 403 and "managers" in rep.json()["error"]


def test_a_bad_signature_is_400_and_stores_nothing(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    event = invoice_event("evt_forged", "invoice.paid", amount_paid=90000)
    forged = send(client, event, secret="whsec_someone_else")
    assert forged.status_code == 400 and forged.json() == {"error": "bad Stripe signature"}
    unsigned = client.post("/webhooks/stripe", content=json.dumps(event))
    assert unsigned.status_code == 400
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(PaymentEvent)) == 0
    assert _inv(session_factory).status == "sent"


def test_a_signed_body_that_is_not_an_event_is_400(client: TestClient) -> None:
    response = send(client, {"id": "evt_x", "type": "invoice.paid"})
    assert response.status_code == 400 and "created" in response.json()["error"]


def test_an_unconfigured_webhook_says_so(db_url: str, session: Session) -> None:
    build_book(session)
    app = create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"})
    with TestClient(app) as c:
        response = c.post("/webhooks/stripe", content="{}")
    assert response.status_code == 503 and "LUMO_STRIPE_WEBHOOK_SECRET" in response.json()["error"]
