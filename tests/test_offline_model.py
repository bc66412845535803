"""The offline model and its intent parser: pure, no database. Tool results are scripted in the tools' shapes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from lumo.agent.intents import DEFAULT_REASON, parse_intent
from lumo.agent.offline import OfflineModel
from tools import schemas

TODAY = dt.date(2026, 11, 25)  # a Wednesday
TOOLS = schemas()


def calls_of(text: str) -> list[tuple[str, dict[str, Any]]]:
    return parse_intent(text, TODAY).calls


# --- scripted conversations -----------------------------------------------------------------------


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def called(*calls: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for cid, name, args in calls
        ],
    }


def result(call_id: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": json.dumps(content)}


def conversation(text: str, name: str, args: dict[str, Any], content: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are Lumo."}, user(text), called(("call_1", name, args)), result("call_1", content)]


async def reply_to(messages: list[dict[str, Any]], tools: list[dict] | None = TOOLS) -> Any:
    return await OfflineModel(TODAY).complete(messages, tools=tools)


PRIORITIES = {
    "date": "2026-11-25",
    "items": [
        {
            "rank": 1,
            "kind": "overdue",
            "invoice_number": "INV-1042",
            "account": "Globex",
            "amount": "12400.00",
            "currency": "EUR",
            "days_overdue": 38,
            "reasons": ["EUR 12,400.00 overdue 38 days", "status still 'sent'", "no contact in 21 days"],
            "action": "Mark it overdue and send the escalation reminder for INV-1042 (Hank Scorpio, hank@globex.test)",
            "score": "91.20",
            "task_id": None,
        },
        {
            "rank": 2,
            "kind": "promise_broken",
            "invoice_number": "INV-0977",
            "account": "Initech",
            "amount": "880.50",
            "currency": "USD",
            "days_overdue": 12,
            "reasons": ["USD 880.50 overdue 12 days", "promise to pay by 2026-11-20 broken"],
            "action": "Call about the broken promise to pay INV-0977 and agree a new date",
            "score": "60.00",
            "task_id": None,
        },
        {
            "rank": 3,
            "kind": "task_due",
            "invoice_number": None,
            "account": "Globex",
            "amount": None,
            "currency": None,
            "days_overdue": 0,
            "reasons": ["task due today (2026-11-25)"],
            "action": "Do the task: Call Hank",
            "score": "20.00",
            "task_id": "t1",
        },
    ],
}

DRAFT = {
    "to": ["hank@globex.test"],
    "cc": ["boss@acme.test"],
    "subject": "Overdue: INV-1042",
    "body": "Hi Hank,\n\nINV-1042 for €12,400.00 is 38 days past due.\n\nBest regards,\nDana",
    "tone": "escalation",
    "invoice_numbers": ["INV-1042"],
    "facts": {},
    "skipped_reason": None,
}


def skipped(reason: str, **invoice: Any) -> dict[str, Any]:
    facts = {"invoices": [{"number": "INV-1042", "due_date": "2026-12-10", "promise_to_pay_date": None, **invoice}]}
    return {
        "draft": {
            "to": [],
            "cc": [],
            "subject": "",
            "body": "",
            "tone": None,
            "invoice_numbers": ["INV-1042"],
            "facts": facts,
            "skipped_reason": reason,
        }
    }


# --- parse_intent: reads --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["what should I do today?", "my priorities", "What's on my plate?"])
def test_priorities_questions_ask_for_todays_priorities(text: str) -> None:
    assert parse_intent(text, TODAY).name == "priorities"
    assert calls_of(text) == [("todays_priorities", {})]


def test_overdue_question_names_the_account() -> None:
    assert calls_of("which invoices of Acme are overdue?") == [("overdue_invoices", {"account": "Acme"})]


def test_overdue_question_keeps_a_multi_word_account_name() -> None:
    assert calls_of("what's overdue for Globex Corp") == [("overdue_invoices", {"account": "Globex Corp"})]


def test_overdue_without_account_lists_everything() -> None:
    assert calls_of("overdue invoices") == [("overdue_invoices", {})]


def test_overdue_in_a_currency_filters_by_its_code() -> None:
    assert calls_of("overdue in EUR") == [("overdue_invoices", {"currency": "EUR"})]


def test_overdue_in_an_aging_range_filters_by_bucket() -> None:
    assert calls_of("invoices 31-60 days overdue") == [("overdue_invoices", {"bucket": "31-60"})]


def test_overdue_over_ninety_days_is_the_90_plus_bucket() -> None:
    assert calls_of("overdue invoices over 90 days") == [("overdue_invoices", {"bucket": "90+"})]


@pytest.mark.parametrize("text", ["stale statuses", "which statuses are stale?"])
def test_stale_questions_ask_for_stale_findings(text: str) -> None:
    assert parse_intent(text, TODAY).name == "stale"
    assert calls_of(text) == [("stale_findings", {})]


@pytest.mark.parametrize("text", ["tell me about INV-1042", "what's the story of INV-1042?", "status of inv-1042"])
def test_invoice_questions_get_the_invoice_by_its_upper_case_number(text: str) -> None:
    assert parse_intent(text, TODAY).name == "invoice"
    assert calls_of(text) == [("get_invoice", {"invoice_number": "INV-1042"})]


@pytest.mark.parametrize("text", ["how healthy is Globex", "why is Globex at risk?"])
def test_health_questions_name_the_account(text: str) -> None:
    assert parse_intent(text, TODAY).name == "health"
    assert calls_of(text) == [("account_health", {"account": "Globex"})]


def test_account_health_without_account_asks_for_the_worst_accounts() -> None:
    assert calls_of("account health") == [("account_health", {})]


@pytest.mark.parametrize("text", ["revenue at risk", "how much revenue is at risk?"])
def test_revenue_at_risk_questions_ask_for_revenue_at_risk(text: str) -> None:
    assert parse_intent(text, TODAY).name == "risk"
    assert calls_of(text) == [("revenue_at_risk", {})]


# --- parse_intent: drafts and actions -------------------------------------------------------------


def test_draft_for_an_invoice_drafts_that_invoice() -> None:
    intent = parse_intent("draft a reminder for INV-1042", TODAY)
    assert intent.name == "draft"
    assert intent.calls == [("draft_followup_email", {"invoice_number": "INV-1042"})]


def test_draft_for_an_account_drafts_for_the_account() -> None:
    assert calls_of("draft a follow-up for Acme") == [("draft_followup_email", {"account": "Acme"})]


def test_send_drafts_first() -> None:
    intent = parse_intent("send the reminder for INV-1042", TODAY)
    assert intent.name == "send"
    assert intent.calls == [("draft_followup_email", {"invoice_number": "INV-1042"})]


def test_task_tomorrow_is_due_the_next_day_and_names_the_invoice() -> None:
    intent = parse_intent("create a task to call Hank about INV-1042 tomorrow", TODAY)
    assert intent.name == "create_task"
    assert intent.calls == [
        ("create_follow_up_task", {"title": "Call Hank about INV-1042", "due_date": "2026-11-26", "invoice_number": "INV-1042"})
    ]


def test_reminder_to_self_on_a_date_is_a_task_due_that_date() -> None:
    assert calls_of("remind me to chase Acme on 2026-12-01") == [
        ("create_follow_up_task", {"title": "Chase Acme", "due_date": "2026-12-01"})
    ]


def test_task_in_some_days_counts_from_today() -> None:
    assert calls_of("remind me in 3 days to call Hank") == [
        ("create_follow_up_task", {"title": "Call Hank", "due_date": "2026-11-28"})
    ]


def test_mark_as_paid_keeps_the_reason_after_because() -> None:
    intent = parse_intent("mark INV-1042 as paid because the wire arrived", TODAY)
    assert intent.name == "change_status"
    assert intent.calls == [
        ("update_invoice_status", {"invoice_number": "INV-1042", "status": "paid", "reason": "the wire arrived"})
    ]


def test_change_status_keeps_the_reason_after_a_colon() -> None:
    assert calls_of("change INV-1042 status to disputed: wrong quantity") == [
        ("update_invoice_status", {"invoice_number": "INV-1042", "status": "disputed", "reason": "wrong quantity"})
    ]


def test_status_change_without_reason_says_the_rep_asked() -> None:
    assert calls_of("mark INV-1042 paid")[0][1]["reason"] == DEFAULT_REASON


def test_log_note_keeps_the_reps_words() -> None:
    intent = parse_intent("log a note on INV-1042: customer says cheque is in the post", TODAY)
    assert intent.name == "log_note"
    assert intent.calls == [("log_note", {"invoice_number": "INV-1042", "text": "customer says cheque is in the post"})]


@pytest.mark.parametrize("text", ["help", "what can you do?"])
def test_help_calls_no_tools(text: str) -> None:
    intent = parse_intent(text, TODAY)
    assert (intent.name, intent.calls) == ("help", [])


def test_draft_without_invoice_or_account_asks_which() -> None:
    intent = parse_intent("draft a reminder", TODAY)
    assert (intent.name, intent.calls) == ("clarify", [])
    assert intent.question and "Which invoice" in intent.question


def test_mark_it_as_paid_without_number_asks_which_invoice() -> None:
    intent = parse_intent("mark it as paid", TODAY)
    assert (intent.name, intent.calls) == ("clarify", [])
    assert intent.question and "paid" in intent.question


def test_unrelated_message_is_unknown() -> None:
    intent = parse_intent("tell me a joke", TODAY)
    assert (intent.name, intent.calls) == ("unknown", [])


# --- OfflineModel: choosing tools -----------------------------------------------------------------


async def test_fresh_message_gets_a_tool_call_with_sorted_json_arguments() -> None:
    reply = await reply_to([user("what's overdue for Globex Corp in EUR?")])
    assert reply.content is None
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_offline_1", "overdue_invoices", json.dumps({"account": "Globex Corp", "currency": "EUR"}, sort_keys=True))
    ]


async def test_reply_reports_the_offline_model_and_an_estimated_prompt_size() -> None:
    messages = [user("x" * 400)]
    reply = await reply_to(messages)
    assert (reply.model, reply.attempts) == ("lumo-offline", 1)
    assert reply.usage.prompt_tokens == 100


async def test_without_tools_it_answers_in_text() -> None:
    reply = await reply_to([user("what should I do today?")], tools=None)
    assert reply.tool_calls == []
    assert reply.content


async def test_help_is_answered_in_text_with_what_lumo_can_do() -> None:
    reply = await reply_to([user("help")])
    assert reply.tool_calls == []
    assert "draft a reminder for INV-1042" in reply.content


async def test_clarify_asks_its_question() -> None:
    reply = await reply_to([user("draft a reminder")])
    assert reply.content.startswith("Which invoice or account")


# --- OfflineModel: composing from tool results ----------------------------------------------------


async def test_priorities_reply_lists_items_in_the_tools_order_with_exact_numbers() -> None:
    reply = await reply_to(conversation("what should I do today?", "todays_priorities", {}, PRIORITIES))
    lines = [line for line in reply.content.splitlines() if line[:2] in ("1.", "2.", "3.")]
    assert lines[0] == (
        "1. INV-1042 (Globex): EUR 12,400.00, 38 days overdue — EUR 12,400.00 overdue 38 days; "
        "status still 'sent'; no contact in 21 days; next: Mark it overdue and send the escalation "
        "reminder for INV-1042 (Hank Scorpio, hank@globex.test)"
    )
    assert lines[1].startswith("2. INV-0977 (Initech): USD 880.50, 12 days overdue")
    assert lines[2] == "3. Task (Globex) — task due today (2026-11-25); next: Do the task: Call Hank"


async def test_overdue_reply_cites_totals_and_rows() -> None:
    content = {
        "total": 1,
        "totals": [{"currency": "EUR", "amount": "12400.00"}],
        "invoices": [
            {
                "invoice_number": "INV-1042",
                "account": "Globex",
                "status": "sent",
                "balance": "12400.00",
                "currency": "EUR",
                "due_date": "2026-10-18",
                "days_overdue": 38,
            }
        ],
    }
    reply = await reply_to(conversation("overdue for Globex", "overdue_invoices", {"account": "Globex"}, content))
    assert "1 overdue invoice for Globex" in reply.content
    assert "- INV-1042 (Globex): EUR 12,400.00, 38 days overdue (due 2026-10-18, status 'sent')" in reply.content


async def test_draft_reply_shows_recipients_subject_and_body() -> None:
    reply = await reply_to(
        conversation("draft a reminder for INV-1042", "draft_followup_email", {"invoice_number": "INV-1042"}, {"draft": DRAFT})
    )
    assert "To: hank@globex.test" in reply.content
    assert "Cc: boss@acme.test" in reply.content
    assert "Subject: Overdue: INV-1042" in reply.content
    assert DRAFT["body"] in reply.content


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("paid", "already paid"),
        ("cooldown", "too soon to chase again"),
        ("do_not_contact", "do-not-contact"),
        ("not_due", "isn't due yet (due 2026-12-10)"),
    ],
)
async def test_skipped_draft_is_explained_in_words(reason: str, words: str) -> None:
    reply = await reply_to(
        conversation("draft a reminder for INV-1042", "draft_followup_email", {"invoice_number": "INV-1042"}, skipped(reason))
    )
    assert reply.content.startswith("No reminder for INV-1042:")
    assert words in reply.content


async def test_skipped_for_a_pending_promise_names_the_promised_date() -> None:
    reply = await reply_to(
        conversation(
            "draft a reminder for INV-1042",
            "draft_followup_email",
            {"invoice_number": "INV-1042"},
            skipped("promise_pending", promise_to_pay_date="2026-12-01"),
        )
    )
    assert "promised to pay by 2026-12-01" in reply.content


async def test_not_found_error_says_what_could_not_be_found() -> None:
    reply = await reply_to(
        conversation(
            "tell me about INV-9999", "get_invoice", {"invoice_number": "INV-9999"}, {"error": "invoice INV-9999 not found"}
        )
    )
    assert reply.content == "I couldn't find invoice INV-9999."


async def test_other_errors_say_what_failed_in_one_line() -> None:
    reply = await reply_to(
        conversation("overdue in XYZ", "overdue_invoices", {"currency": "XYZ"}, {"error": "no exchange rate for XYZ to USD"})
    )
    assert reply.content == "I couldn't list the overdue invoices: no exchange rate for XYZ to USD."


async def test_rejected_action_is_acknowledged_with_the_feedback() -> None:
    args = {"invoice_number": "INV-1042", "status": "paid", "reason": "the wire arrived"}
    reply = await reply_to(
        conversation(
            "mark INV-1042 as paid because the wire arrived",
            "update_invoice_status",
            args,
            {"rejected": True, "feedback": "wait for the bank statement"},
        )
    )
    assert "didn't change INV-1042 to 'paid'" in reply.content
    assert "wait for the bank statement" in reply.content


async def test_done_status_change_says_what_changed() -> None:
    args = {"invoice_number": "INV-1042", "status": "paid", "reason": "the wire arrived"}
    reply = await reply_to(
        conversation(
            "mark INV-1042 as paid because the wire arrived",
            "update_invoice_status",
            args,
            {"done": True, "result": {"invoice_number": "INV-1042", "from": "sent", "to": "paid"}},
        )
    )
    assert reply.content == "Done: INV-1042 changed from 'sent' to 'paid' (the wire arrived)."


async def test_results_after_the_last_user_message_are_answered_even_without_tools() -> None:
    reply = await reply_to(conversation("what should I do today?", "todays_priorities", {}, PRIORITIES), tools=None)
    assert reply.tool_calls == []
    assert "1. INV-1042 (Globex)" in reply.content


# --- OfflineModel: the send flow ------------------------------------------------------------------


async def test_send_flow_emits_send_email_with_the_drafts_fields_after_the_draft() -> None:
    messages = conversation(
        "send the reminder for INV-1042", "draft_followup_email", {"invoice_number": "INV-1042"}, {"draft": DRAFT}
    )
    reply = await reply_to(messages)
    assert reply.content is None
    [call] = reply.tool_calls
    assert call.name == "send_email"
    assert call.id == "call_offline_2"  # unique after the draft's call
    assert json.loads(call.arguments) == {k: DRAFT[k] for k in ("to", "cc", "subject", "body", "invoice_numbers")}


async def test_send_flow_with_a_skipped_draft_explains_instead_of_sending() -> None:
    reply = await reply_to(
        conversation("send the reminder for INV-1042", "draft_followup_email", {"invoice_number": "INV-1042"}, skipped("paid"))
    )
    assert reply.tool_calls == []
    assert "already paid" in reply.content


async def test_send_flow_after_the_send_reports_it_and_does_not_send_again() -> None:
    email = {k: DRAFT[k] for k in ("to", "cc", "subject", "body", "invoice_numbers")}
    messages = [
        *conversation("send the reminder for INV-1042", "draft_followup_email", {"invoice_number": "INV-1042"}, {"draft": DRAFT}),
        called(("call_offline_2", "send_email", email)),
        result("call_offline_2", {"done": True, "result": {"outbox_id": 7, "status": "queued", "to": ["hank@globex.test"]}}),
    ]
    reply = await reply_to(messages)
    assert reply.tool_calls == []
    assert reply.content == 'Done: the email "Overdue: INV-1042" to hank@globex.test is queued in the outbox (#7).'


async def test_send_flow_rejected_send_is_acknowledged_with_the_feedback() -> None:
    email = {k: DRAFT[k] for k in ("to", "cc", "subject", "body", "invoice_numbers")}
    messages = [
        *conversation("send the reminder for INV-1042", "draft_followup_email", {"invoice_number": "INV-1042"}, {"draft": DRAFT}),
        called(("call_offline_2", "send_email", email)),
        result("call_offline_2", {"rejected": True, "feedback": "too harsh, call first"}),
    ]
    reply = await reply_to(messages)
    assert reply.content == 'OK, I didn\'t send the email "Overdue: INV-1042". Your feedback: "too harsh, call first"'


async def test_send_flow_without_send_email_offered_shows_the_draft() -> None:
    messages = conversation(
        "send the reminder for INV-1042", "draft_followup_email", {"invoice_number": "INV-1042"}, {"draft": DRAFT}
    )
    reply = await reply_to(messages, tools=None)
    assert reply.tool_calls == []
    assert "Subject: Overdue: INV-1042" in reply.content
