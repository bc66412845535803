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
from lumo.config import Settings
from lumo.crm.invoices import actionable_rows, invoice_history
from lumo.crm.priorities import compute_priorities
from lumo.crm.stale import stale_findings
from lumo.db.models import Invoice, Payment, PaymentEvent
from tests import factories as f
from tests.agent_support import AS_OF, NOW, TODAY, build_book, scope_of
from tests.clients import Api, Cli, OpenApi

SECRET = "whsec_test_secret"
T0 = 1_764_000_000  # the events' own clock (Stripe's `created`)


@pytest.fixture
def opened(api: OpenApi, session: Session) -> Api:
    build_book(session)
    return api("u1", "m1", stripe_webhook_secret=SECRET)


@pytest.fixture
def client(opened: Api) -> TestClient:
    return opened.client


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
    inv = f.by_number(session_factory, "INV-2001")
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
    assert f.by_number(session_factory, "INV-2001").status == "paid" and _payments(session_factory) == [Decimal("900.00")]


def test_events_in_either_order_end_the_same(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    send(client, invoice_event("evt_failed", "invoice.payment_failed", amount_paid=0, created=T0))
    send(client, invoice_event("evt_paid", "invoice.paid", amount_paid=90000, created=T0 + 60))
    assert f.by_number(session_factory, "INV-2001").status == "paid" and _payments(session_factory) == [Decimal("900.00")]


def test_a_refund_reopens_the_invoice_and_puts_it_back_in_the_chase(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    send(client, invoice_event("evt_paid", "invoice.paid", amount_paid=90000))
    with session_factory() as s:
        assert "INV-2001" not in [i.invoice.number for i in compute_priorities(s, scope, AS_OF) if i.invoice]
    send(client, refund_event("evt_refund", 90000, T0 + 120))
    send(client, refund_event("evt_refund", 90000, T0 + 120))  # a retry
    inv = f.by_number(session_factory, "INV-2001")
    assert inv.amount_paid == Decimal("0.00") and inv.status == "overdue"
    assert _payments(session_factory) == [Decimal("900.00"), Decimal("-900.00")]
    with session_factory() as s:
        assert "INV-2001" in [i.invoice.number for i in compute_priorities(s, scope, AS_OF) if i.invoice]


def test_a_payment_leaves_no_paid_not_marked_finding(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    send(client, invoice_event("evt_partial", "invoice.payment_succeeded", amount_paid=40000))
    inv = f.by_number(session_factory, "INV-2001")
    assert inv.status == "partially_paid" and inv.amount_paid == Decimal("400.00")
    send(client, invoice_event("evt_rest", "invoice.paid", amount_paid=90000, created=T0 + 5))
    with session_factory() as s:
        rows = actionable_rows(s, scope_of(session_factory, "u1@acme.test"))
        kinds = {(f.invoice_number, f.kind) for f in stale_findings(rows, AS_OF)}
    assert not any(number == "INV-2001" for number, _ in kinds)
    assert _payments(session_factory) == [Decimal("400.00"), Decimal("500.00")]


def test_voided_and_uncollectible_set_the_status(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    send(client, invoice_event("evt_void", "invoice.voided", amount_paid=0))
    assert f.by_number(session_factory, "INV-2001").status == "void"
    send(client, invoice_event("evt_unc", "invoice.marked_uncollectible", amount_paid=0, created=T0 + 9))
    assert f.by_number(session_factory, "INV-2001").status == "written_off"


def test_an_unknown_invoice_is_stored_unmatched_and_shown_to_managers(opened: Api) -> None:
    client = opened.client
    event = invoice_event("evt_unknown", "invoice.paid", amount_paid=100, id="in_nope", metadata={}, number="ZZZ-1")
    assert send(client, event).json()["status"] == "unmatched"
    manager = client.get("/v1/payments/unmatched", headers=opened.auth("m1"))
    assert manager.status_code == 200
    [found] = manager.json()["provider_events"]
    assert found["event_id"] == "evt_unknown" and "in_nope" in found["detail"]
    assert found["action"] == {"tool": "link_payment_event", "args": {"event_id": "evt_unknown"}}
    rep = client.get("/v1/payments/unmatched", headers=opened.auth("u1"))
    assert rep.status_code == 403 and "managers" in rep.json()["error"]


def test_a_bad_signature_is_400_and_stores_nothing(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    event = invoice_event("evt_forged", "invoice.paid", amount_paid=90000)
    forged = send(client, event, secret="whsec_someone_else")
    assert forged.status_code == 400 and forged.json() == {"error": "bad Stripe signature"}
    unsigned = client.post("/webhooks/stripe", content=json.dumps(event))
    assert unsigned.status_code == 400
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(PaymentEvent)) == 0
    assert f.by_number(session_factory, "INV-2001").status == "sent"


def test_a_signed_body_that_is_not_an_event_is_400(client: TestClient) -> None:
    response = send(client, {"id": "evt_x", "type": "invoice.paid"})
    assert response.status_code == 400 and "created" in response.json()["error"]


def test_an_unconfigured_webhook_says_so(db_url: str, session: Session) -> None:
    build_book(session)
    app = create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"})
    with TestClient(app) as c:
        response = c.post("/webhooks/stripe", content="{}")
    assert response.status_code == 503 and "LUMO_STRIPE_WEBHOOK_SECRET" in response.json()["error"]


# --- an unmatched event applied once its invoice is known --------------------------------------------

# A Stripe invoice Lumo does not know yet: no external id on any invoice, and a number no invoice has (yet).
UNKNOWN = {"id": "in_9001", "metadata": {"lumo_invoice_number": "INV-9001"}, "number": "STRIPE-90"}


def _stripe_history(factory: sessionmaker[Session], number: str) -> list[dict[str, Any]]:
    with factory() as s:
        detail = invoice_history(s, scope_of(factory, "m1@acme.test"), number, AS_OF)
    return [h for h in detail["history"] if h["by"] == "stripe"]


def test_an_earlier_event_is_applied_when_a_later_one_names_the_invoice(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    nameless = {"metadata": {}, "number": None}
    late = invoice_event("evt_full", "invoice.paid", amount_paid=90000, created=T0 + 60, **nameless)
    assert send(client, late).json()["status"] == "unmatched"  # nothing says which Lumo invoice in_2001 is
    named = send(client, invoice_event("evt_part", "invoice.payment_succeeded", amount_paid=40000, created=T0))
    assert named.json()["status"] == "applied"  # its number links in_2001 to INV-2001, and evt_full follows
    assert _payments(session_factory) == [Decimal("400.00"), Decimal("500.00")]
    assert f.by_number(session_factory, "INV-2001").status == "paid"
    history = _stripe_history(session_factory, "INV-2001")
    assert any(h["to"] == "paid" and "evt_full" in h["text"] for h in history)
    send(client, late)  # Stripe retries it: stored once, applied once
    assert _payments(session_factory) == [Decimal("400.00"), Decimal("500.00")]


def _snapshot_with_invoice(cli: Cli, tmp_path: Any) -> Any:
    """The workspace as exported, plus INV-9001 on Hooli: what a CRM sync would bring."""
    path = tmp_path / "snapshot.json"
    code, _, err = cli("export", str(path))
    assert code == 0, err
    data = json.loads(path.read_text())
    data["invoices"].append(
        {
            "id": "inv-9001",
            "number": "INV-9001",
            "account_id": "a3",
            "contact_ids": ["c3"],
            "issue_date": "2026-10-01",
            "due_date": "2026-10-31",
            "amount": "2500.00",
            "currency": "USD",
            "status": "overdue",
            "status_updated_at": "2026-11-01T09:00:00+00:00",
        }
    )
    path.write_text(json.dumps(data))
    return path


def test_an_unmatched_event_is_applied_when_an_import_brings_its_invoice(
    client: TestClient, cli: Cli, session_factory: sessionmaker[Session], tmp_path: Any
) -> None:
    event = invoice_event("evt_9001", "invoice.paid", amount_paid=250000, **UNKNOWN)
    assert send(client, event).json()["status"] == "unmatched"
    path = _snapshot_with_invoice(cli, tmp_path)
    code, out, err = cli("import", str(path))
    assert code == 0, err
    assert "applied 1 Stripe event(s) that waited for these invoices: evt_9001" in out
    inv = f.by_number(session_factory, "INV-9001")
    assert inv.status == "paid" and inv.amount_paid == Decimal("2500.00") and inv.external_id == "in_9001"
    assert any(h["to"] == "paid" and "evt_9001" in h["text"] for h in _stripe_history(session_factory, "INV-9001"))
    code, out, err = cli("import", str(path))  # the same snapshot again: the event is applied already
    assert code == 0 and "Stripe event" not in out
    assert f.by_number(session_factory, "INV-9001").amount_paid == Decimal("2500.00")


def test_finance_links_an_unmatched_event_through_approval_once(
    client: TestClient, cli: Cli, session_factory: sessionmaker[Session]
) -> None:
    event = invoice_event("evt_lost", "invoice.paid", amount_paid=90000, id="in_lost", metadata={}, number="X-1")
    assert send(client, event).json()["status"] == "unmatched"
    manager = ("--rep", "m1@acme.test", "--date", TODAY.isoformat())
    code, out, err = cli("payments", "unmatched", "--rep", "m1@acme.test")
    assert code == 0 and "evt_lost" in out and "lumo payments link EVENT_ID INVOICE" in out
    code, out, err = cli("payments", "link", "evt_lost", "INV-2001", *manager, "--json")
    assert code == 0, err
    proposed = json.loads(out)
    [action] = proposed["pending_actions"]
    assert action["tool"] == "link_payment_event" and "evt_lost" in action["description"]
    assert f.by_number(session_factory, "INV-2001").amount_paid == Decimal("0")  # nothing yet: it waits for approval
    code, out, err = cli("approve", proposed["thread_id"], *manager, "--json")
    assert code == 0, err
    inv = f.by_number(session_factory, "INV-2001")
    assert inv.status == "paid" and inv.external_id == "in_lost" and _payments(session_factory) == [Decimal("900.00")]
    assert any(h["to"] == "paid" and "evt_lost" in h["text"] for h in _stripe_history(session_factory, "INV-2001"))
    code, out, err = cli("payments", "link", "evt_lost", "INV-2001", *manager)
    assert code == 2 and err.strip() == "error: payment event evt_lost is applied already"
    code, out, err = cli("payments", "link", "evt_lost", "INV-2001", "--rep", "u1@acme.test")
    assert code == 2 and "for managers and finance" in err
    send(client, invoice_event("evt_lost_2", "invoice.paid", amount_paid=90000, id="in_lost", created=T0 + 5))
    assert _payments(session_factory) == [Decimal("900.00")]  # the next event of in_lost finds INV-2001 by its id


def test_http_link_is_proposed_and_refused_clearly(opened: Api, session_factory: sessionmaker[Session]) -> None:
    client = opened.client
    send(client, invoice_event("evt_eur", "invoice.paid", amount_paid=100, id="in_e", metadata={}, number="", currency="eur"))
    body = {"invoice_number": "INV-2001", "date": TODAY.isoformat()}
    wrong_currency = client.post("/v1/payments/events/evt_eur/link", json=body, headers=opened.auth("m1"))
    assert wrong_currency.status_code == 422 and "billed in USD, the Stripe event is in EUR" in wrong_currency.json()["error"]
    unknown = client.post("/v1/payments/events/evt_none/link", json=body, headers=opened.auth("m1"))
    assert unknown.status_code == 404 and unknown.json()["error"] == "payment event evt_none not found"
    rep = client.post("/v1/payments/events/evt_eur/link", json=body, headers=opened.auth("u1"))
    assert rep.status_code == 403
    send(client, invoice_event("evt_usd", "invoice.paid", amount_paid=90000, id="in_u", metadata={}, number=""))
    proposed = client.post("/v1/payments/events/evt_usd/link", json=body, headers=opened.auth("m1"))
    assert proposed.status_code == 200, proposed.text
    decision = {"decision": "approve", "date": TODAY.isoformat()}
    decided = client.post(f"/v1/threads/{proposed.json()['thread_id']}/decision", json=decision, headers=opened.auth("m1"))
    assert decided.status_code == 200 and "evt_usd" in decided.json()["reply"]
    assert f.by_number(session_factory, "INV-2001").status == "paid"


def test_two_relinks_racing_apply_the_event_once(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    from lumo.crm import provider_events

    event = invoice_event("evt_race", "invoice.paid", amount_paid=90000, id="in_race", metadata={}, number="")
    send(client, event)
    with session_factory() as first, session_factory() as second:
        waiting = first.scalar(select(PaymentEvent).where(PaymentEvent.event_id == "evt_race"))
        inv = first.scalar(select(Invoice).where(Invoice.number == "INV-2001"))
        assert waiting is not None and inv is not None
        inv.external_id = "in_race"
        first.flush()
        # The other request links it and commits between this one's read and its claim.
        theirs = second.scalar(select(Invoice).where(Invoice.number == "INV-2001"))
        assert theirs is not None
        first.commit()
        second.refresh(theirs)
        assert [r.event_id for r in provider_events.relink(second, now=NOW)] == ["evt_race"]
        second.commit()
        assert provider_events._claim(first, waiting, inv) is False
        assert provider_events.relink(first, now=NOW) == []
        first.commit()
    assert _payments(session_factory) == [Decimal("900.00")]
