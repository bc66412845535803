"""The hand-written book the browser tests serve: dates are relative to the day the tests run.

Rep Dana (Globex: INV-1001, INV-1002; Hooli: INV-1003; Umbrella: INV-1004; Stark: INV-1005), rep Rob (Initech: INV-2001), their
manager Mia. Each flow that sends or drafts works on invoices of its own, so the tests do not depend on their order.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

DANA, ROB, MIA = "dana@acme.test", "rob@acme.test", "mia@acme.test"


def snapshot(today: dt.date) -> dict[str, Any]:
    def day(offset: int) -> str:
        return (today + dt.timedelta(days=offset)).isoformat()

    def moment(offset: int) -> str:
        return f"{day(offset)}T10:00:00+00:00"

    def invoice(
        iid: str, number: str, account: str, contact: str, due: int, amount: str, currency: str, status: str, **more: Any
    ):
        return {
            "id": iid,
            "number": number,
            "account_id": account,
            "contact_ids": [contact],
            "issue_date": day(due - 30),
            "due_date": day(due),
            "amount": amount,
            "currency": currency,
            "status": status,
            "status_updated_at": moment(due - 30),
            "payment_url": f"https://pay.example/{number}",
            **more,
        }

    def contact(cid: str, account: str, name: str, email: str) -> dict[str, Any]:
        return {"id": cid, "account_id": account, "name": name, "email": email, "role": "billing", "do_not_contact": False}

    return {
        "workspace": {"name": "Acme Corp", "base_currency": "USD", "fx_rates": {"EUR": "1.08"}},
        "users": [
            {"id": "m1", "email": MIA, "name": "Mia Manager", "role": "manager", "timezone": "UTC"},
            {"id": "u1", "email": DANA, "name": "Dana Reyes", "role": "rep", "manager_id": "m1", "timezone": "UTC"},
            {"id": "u2", "email": ROB, "name": "Rob Stone", "role": "rep", "manager_id": "m1", "timezone": "UTC"},
        ],
        "accounts": [
            {"id": "a1", "name": "Globex", "owner_id": "u1", "tier": "key"},
            {"id": "a2", "name": "Hooli", "owner_id": "u1", "tier": "standard"},
            {"id": "a3", "name": "Initech", "owner_id": "u2", "tier": "standard"},
            {"id": "a4", "name": "Umbrella", "owner_id": "u1", "tier": "standard"},
            {"id": "a5", "name": "Stark", "owner_id": "u1", "tier": "standard"},
        ],
        "contacts": [
            contact("c1", "a1", "Hank Scorpio", "hank@globex.test"),
            contact("c2", "a2", "Gavin Belson", "gavin@hooli.test"),
            contact("c3", "a3", "Bill Lumbergh", "bill@initech.test"),
            contact("c4", "a4", "Alice Wesker", "alice@umbrella.test"),
            contact("c5", "a5", "Pepper Potts", "pepper@stark.test"),
        ],
        "deals": [],
        "invoices": [
            invoice("i1", "INV-1001", "a1", "c1", -40, "12400.00", "EUR", "sent"),
            invoice("i2", "INV-1002", "a1", "c1", -20, "5000.00", "USD", "partially_paid", promise_to_pay_date=day(-5)),
            invoice("i3", "INV-1003", "a2", "c2", -8, "900.00", "USD", "overdue"),
            invoice("i4", "INV-2001", "a3", "c3", -15, "7777.00", "USD", "sent"),
            invoice("i5", "INV-1004", "a4", "c4", -3, "2500.00", "USD", "sent"),
            invoice("i6", "INV-1005", "a5", "c5", -5, "3100.00", "USD", "sent"),
        ],
        "payments": [{"invoice_id": "i2", "amount": "1000.00", "paid_at": moment(-12)}],
        "activities": [
            {"invoice_id": "i2", "kind": "call", "at": moment(-10), "by": "u1", "text": "Hank promised the rest within a week"},
        ],
        "tasks": [],
    }
