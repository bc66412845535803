"""The agent end to end with the offline model: real graph, tools, database and checkpointer."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lumo.crm.drafts import draft_for_invoice
from lumo.crm.errors import InvalidInput, NotFound
from lumo.crm.grounding import check_grounding
from lumo.crm.priorities import compute_priorities
from lumo.db.models import Activity, AgentAction, Invoice, Task
from tests.agent_support import AS_OF, approve, ask, build_book, open_lumo, scope_of


@pytest.fixture
def book(session: Session) -> dict[str, Any]:
    return build_book(session)


async def test_what_should_i_do_today_gives_the_engines_ranking_in_one_model_call(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    with session_factory() as s:
        ranked = [i.as_json() for i in compute_priorities(s, scope, AS_OF, limit=10)]
    expected = [{k: v for k, v in i.items() if k != "score"} for i in ranked]
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "What should I do today?")
    assert out["model"] == "lumo-offline" and out["usage"]["model_calls"] == 1
    assert out["items"] == expected
    positions = [out["reply"].index(i["invoice_number"]) for i in expected]
    assert positions == sorted(positions)
    assert "EUR 12,400.00" in out["reply"] and expected[0]["reasons"][0] in out["reply"]


async def test_draft_reminder_passes_the_guard(db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Draft a reminder for INV-1042")
    [draft] = out["drafts"]
    assert draft["tone"] == "escalation" and draft["invoice_numbers"] == ["INV-1042"]
    assert check_grounding(draft["subject"] + "\n" + draft["body"], draft["facts"]) == []
    assert draft["subject"] in out["reply"] and out["pending_actions"] == []


async def test_disputed_invoice_gets_no_collection_draft(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Draft a reminder for INV-2002")
    assert out["drafts"][0]["tone"] == "dispute_resolution"
    assert "overdue" not in out["drafts"][0]["body"].lower()


def _count(session_factory: sessionmaker[Session], model: Any, *where: Any) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def test_task_waits_for_approval_then_is_created_exactly_once(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Create a task to call Hank about INV-1042 tomorrow")
        [action] = out["pending_actions"]
        assert action["tool"] == "create_follow_up_task" and action["args"]["due_date"] == "2026-11-26"
        assert _count(session_factory, Task) == 0  # nothing before the approval
        done = await approve(lumo, scope, out["thread_id"])
        assert done["pending_actions"] == [] and "task" in done["reply"].lower()
        assert _count(session_factory, Task) == 1
        with pytest.raises(NotFound):
            await approve(lumo, scope, out["thread_id"])
    assert _count(session_factory, Task) == 1 and _count(session_factory, AgentAction) == 1


async def test_edit_changes_the_arguments_before_running(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Mark INV-1042 as overdue because it is past due")
        [action] = out["pending_actions"]
        await approve(
            lumo,
            scope,
            out["thread_id"],
            action_id=action["id"],
            edit={"status": "disputed", "reason": "customer disputes the rate"},
        )
    with session_factory() as s:
        inv = s.scalar(select(Invoice).where(Invoice.number == "INV-1042"))
        assert inv is not None and inv.status == "disputed"
        event = s.scalar(select(Activity).where(Activity.invoice_id == inv.id, Activity.kind == "status_change"))
        assert event is not None and (event.from_status, event.to_status, event.text) == (
            "sent",
            "disputed",
            "customer disputes the rate",
        )


async def test_reject_changes_nothing_and_tells_the_model_why(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Mark INV-1042 as paid because the wire arrived")
        done = await approve(lumo, scope, out["thread_id"], reject="the wire has not cleared yet")
    assert "the wire has not cleared yet" in done["reply"]
    with session_factory() as s:
        assert s.scalar(select(Invoice.status).where(Invoice.number == "INV-1042")) == "sent"


async def test_injected_note_changes_nothing(db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Tell me about INV-2001")
    assert out["pending_actions"] == []
    with session_factory() as s:
        assert s.scalars(select(Invoice.status).order_by(Invoice.number)).all() == ["sent", "sent", "disputed", "sent"]


async def test_rep_gets_nothing_of_another_reps_account(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        for question in (
            "Which invoices of Initech are overdue?",
            "Tell me about INV-3001",
            "Why is Initech at risk?",
            "Draft a reminder for INV-3001",
        ):
            out = await ask(lumo, scope, question)
            text = str(out)
            assert out["items"] == [] and out["drafts"] == [] and out["pending_actions"] == []
            assert "7,777" not in text and "7777" not in text and "Bill Lumbergh" not in text


async def test_new_message_while_waiting_for_approval_is_refused(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Log a note on INV-1042: customer says the cheque is in the post")
        with pytest.raises(InvalidInput):
            await ask(lumo, scope, "What should I do today?", thread_id=out["thread_id"])


async def test_thread_ids_are_scoped_to_the_user(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    u1 = scope_of(session_factory, "u1@acme.test")
    u2 = scope_of(session_factory, "u2@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, u1, "Log a note on INV-1042: called, no answer")
        with pytest.raises(NotFound):
            await approve(lumo, u2, out["thread_id"])
    assert _count(session_factory, Activity, Activity.kind == "note", Activity.text == "called, no answer") == 0


async def test_pending_approval_survives_a_process_restart(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Log a note on INV-1042: promised payment Friday")
    async with open_lumo(db_url, session_factory, None) as restarted:  # a new checkpointer, as a new process would
        done = await approve(restarted, scope, out["thread_id"])
    assert done["pending_actions"] == []
    assert _count(session_factory, Activity, Activity.text == "promised payment Friday") == 1


async def test_offline_answers_carry_the_engines_numbers(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    scope = scope_of(session_factory, "u1@acme.test")
    with session_factory() as s:
        draft = draft_for_invoice(s, scope, "INV-2001", AS_OF)
    async with open_lumo(db_url, session_factory, None) as lumo:
        overdue = await ask(lumo, scope, "Which invoices of Globex are overdue?")
        assert "INV-1042" in overdue["reply"] and "EUR 12,400.00" in overdue["reply"] and "INV-2001" not in overdue["reply"]
        stale = await ask(lumo, scope, "Which statuses are stale?")
        assert "overdue_not_marked" in str(stale["items"]) and "INV-1042" in stale["reply"]
        story = await ask(lumo, scope, "Tell me about INV-1042")
        assert "INV-1042" in story["reply"] and "38" in story["reply"]
        health = await ask(lumo, scope, "Why is Globex at risk?")
        assert health["items"][0]["account"] == "Globex" and "overdue" in health["reply"]
        risk = await ask(lumo, scope, "How much revenue is at risk?")
        assert risk["model"] == "lumo-offline" and "USD" in risk["reply"]
        reminder = await ask(lumo, scope, "Draft a reminder for Hooli")
        assert reminder["drafts"][0]["invoice_numbers"] == draft.invoice_numbers
        helped = await ask(lumo, scope, "help")
        assert "today's work" in helped["reply"].lower()


async def test_send_reminder_queues_one_email_only_after_approval(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any]
) -> None:
    from lumo.db.models import OutboxEmail

    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Send the reminder for INV-1042")
        [action] = out["pending_actions"]
        assert action["tool"] == "send_email" and action["args"]["to"] == ["c1@customer.test"]
        assert _count(session_factory, OutboxEmail) == 0
        await approve(lumo, scope, out["thread_id"])
    with session_factory() as s:
        [email] = s.scalars(select(OutboxEmail)).all()
    assert email.status == "queued" and email.invoice_numbers == "INV-1042" and "€12,400.00" in email.body


async def test_a_new_thread_is_not_looked_up_and_a_continued_one_is(
    db_url: str, session_factory: sessionmaker[Session], book: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread id Lumo just made up cannot have a checkpoint: its first turn skips LangGraph's read of the latest."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    reads: list[str] = []
    for saver in (AsyncSqliteSaver, AsyncPostgresSaver):
        original = saver.aget_tuple

        async def counted(self: Any, config: Any, original: Any = original) -> Any:
            reads.append(config["configurable"]["thread_id"])
            return await original(self, config)

        monkeypatch.setattr(saver, "aget_tuple", counted)
    scope = scope_of(session_factory, "u1@acme.test")
    async with open_lumo(db_url, session_factory, None) as lumo:
        out = await ask(lumo, scope, "Log a note on INV-1042: called, no answer")
        assert reads == []
        done = await approve(lumo, scope, out["thread_id"])  # a thread that exists is read, and resumes
        assert reads and done["pending_actions"] == []
    assert _count(session_factory, Activity, Activity.kind == "note", Activity.text == "called, no answer") == 1
