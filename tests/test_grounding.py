from __future__ import annotations

from typing import Any

from lumo.crm.grounding import check_grounding


def facts() -> dict[str, Any]:
    return {
        "today": "2026-11-25",
        "invoices": [
            {
                "number": "INV-1042",
                "amount": "12000.00",
                "original_amount": "12400.00",
                "currency": "EUR",
                "issue_date": "2026-10-01",
                "due_date": "2026-10-31",
                "promise_to_pay_date": None,
            },
        ],
        "totals": [{"currency": "EUR", "amount": "12000.00"}],
    }


GOOD = "Hi Hank, INV-1042 for €12,000.00 was due on October 31, 2026 (2026-10-31). Total: EUR 12,000.00."


def kinds(text: str) -> list[str]:
    return [m.kind for m in check_grounding(text, facts())]


def test_correct_draft_passes() -> None:
    assert check_grounding(GOOD, facts()) == []


def test_wrong_amount_is_caught() -> None:
    assert kinds(GOOD.replace("€12,000.00", "€12,500.00")) == ["amount"]


def test_bare_wrong_amount_is_caught() -> None:
    assert kinds("INV-1042: please pay 9,999.00 by now.") == ["amount"]


def test_wrong_invoice_number_is_caught() -> None:
    found = check_grounding(GOOD.replace("INV-1042", "INV-1043"), facts())
    assert {m.kind for m in found} == {"invoice_number", "missing_invoice_number"}
    assert any(m.found == "INV-1043" for m in found)


def test_wrong_date_is_caught() -> None:
    assert kinds(GOOD.replace("October 31, 2026", "November 30, 2026")) == ["date"]
    assert kinds(GOOD.replace("2026-10-31", "2026-10-30")) == ["date"]


def test_wrong_currency_is_caught() -> None:
    found = check_grounding(GOOD.replace("€12,000.00", "$12,000.00"), facts())
    assert [m.kind for m in found] == ["currency"] and "EUR" in found[0].detail


def test_currency_code_not_in_facts_is_caught() -> None:
    assert kinds(GOOD + " We also accept GBP.") == ["currency"]


def test_day_counts_and_urls_are_not_amounts() -> None:
    text = GOOD + " It is 25 days overdue. Pay at https://pay.example/INV-1042?amt=99.50"
    assert check_grounding(text, facts()) == []


def test_amounts_in_words_and_shorthand_are_checked() -> None:
    assert kinds("INV-1042: please pay 13000 euros.") == ["amount"]
    assert kinds("INV-1042: about €13k is open.") == ["amount"]
    assert kinds("INV-1042: about €12k is open.") == []  # 12,000 is the balance


def test_a_bucket_before_an_amount_is_not_read_as_money() -> None:
    facts_ = facts()
    facts_["totals"].append({"currency": "USD", "amount": "3492.50"})
    assert check_grounding("INV-1042 aging: 1-30 USD 3,492.50", facts_) == []
