"""What Lumo does with a Slack message, slash command or button click, once Slack has been acked.

Everything here runs as a job (lumo.jobs): errors end up as a message in the thread, never as an exception.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import weakref
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lumo.agent.contracts import Decision, PendingAction, TurnResult
from lumo.agent.decisions import AlreadyDecided
from lumo.agent.service import Lumo
from lumo.crm.errors import InvalidInput, LumoError, NotFound
from lumo.crm.lifecycle import AsOf
from lumo.crm.scope import Scope, scope_for_user
from lumo.db.models import SlackEvent, User
from lumo.slack.client import SlackClient

log = logging.getLogger("lumo.slack")

REFUSAL = "I don't know you yet — ask your Lumenbase admin to link your Slack account."
HELP = (
    "Ask me about your book, for example `/lumo what should I do today?`, `/lumo which invoices of Acme are "
    "overdue?` or `/lumo draft a reminder for INV-1042`. Mention me in a channel or message me directly to "
    "keep talking in a thread."
)
WORKING = "Working on it…"
ALREADY_RECEIVED = "I already have that request; the answer goes in its thread."
FAILED = "Sorry, something went wrong on my side. Please try again in a moment."
NOT_WAITING = "That action is not waiting for you any more: it was decided already, or it belongs to someone else's conversation."
WAITING_HINT = "I'm waiting for your decision first: reply `approve` or `reject &lt;reason&gt;`, or use the buttons."
DEFAULT_REJECT_REASON = "rejected in Slack"
APPROVE_ID, REJECT_ID = "lumo_approve", "lumo_reject"
SECTION_LIMIT = 2900  # Block Kit section text is capped at 3,000 characters
MAX_ACTIONS_SHOWN = 20  # two blocks each, within Slack's 50 blocks a message


# ---- what arrived ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
    """A message for Lumo: who wrote it, where, and the Slack thread to answer in."""

    user: str
    channel: str
    text: str
    thread_ts: str


@dataclass(frozen=True)
class Click:
    """An Approve or Reject button pressed on a message Lumo posted."""

    user: str
    channel: str
    thread_ts: str
    thread_id: str
    action_id: str
    decision: str  # "approve" or "reject"


_APPROVE = re.compile(r"(?:approve|approved|yes)[\s.!]*", re.IGNORECASE)
_REJECT = re.compile(r"(?:reject|no)\b[\s:,.\-]*(.*)", re.IGNORECASE | re.DOTALL)
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


def parse_decision(text: str) -> Decision | None:
    """ "approve" / "yes", or "reject <reason>" / "no <reason>"; anything else is a question. (No edits in Slack.)"""
    text = text.strip()
    if _APPROVE.fullmatch(text):
        return Decision("approve")
    match = _REJECT.fullmatch(text)
    if match:
        return Decision("reject", match.group(1).strip() or DEFAULT_REJECT_REASON)
    return None


def thread_id_for(channel: str, thread_ts: str) -> str:
    """One Lumo thread per Slack thread (and, inside Lumo, per user)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"slack-{channel}-{thread_ts}")


def strip_mentions(text: str, bot_ids: frozenset[str]) -> str:
    """Drop the bot's own mention; when the bot's id is unknown, the leading mention (an app_mention starts with it)."""
    if not bot_ids:
        return re.sub(r"^\s*<@[^>]+>", "", text).strip()
    return _MENTION.sub(lambda m: "" if m.group(1) in bot_ids else m.group(0), text).strip()


def plain_text(text: str) -> str:
    """Slack sends &, < and > escaped in message and command text; Lumo reads them as typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def bot_user_ids(payload: dict[str, Any]) -> frozenset[str]:
    return frozenset(
        a["user_id"] for a in payload.get("authorizations") or [] if isinstance(a, dict) and a.get("is_bot") and a.get("user_id")
    )


def incoming_from_event(payload: dict[str, Any]) -> Incoming | None:
    """The message to answer in an event_callback, or None: only app mentions and direct messages from people."""
    event = payload.get("event") or {}
    kind = event.get("type")
    if kind not in ("app_mention", "message"):
        return None
    if kind == "message" and event.get("channel_type") != "im":
        return None  # channel messages reach Lumo as app_mention; answering both would answer twice
    if event.get("subtype") or event.get("bot_id") or event.get("bot_profile"):
        return None  # edits, joins, and bots (Lumo itself included) are not questions
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    bots = bot_user_ids(payload)
    if not (isinstance(user, str) and isinstance(channel, str) and isinstance(ts, str)) or user in bots:
        return None
    text = plain_text(strip_mentions(str(event.get("text") or ""), bots))
    return Incoming(user, channel, text, str(event.get("thread_ts") or ts))


def clicks_from_interaction(payload: dict[str, Any]) -> list[Click]:
    """The Approve/Reject buttons pressed in a block_actions payload; anything else is ignored."""
    if payload.get("type") != "block_actions":
        return []
    user = (payload.get("user") or {}).get("id")
    channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get("channel_id")
    message = payload.get("message") or {}
    thread_ts = message.get("thread_ts") or message.get("ts") or (payload.get("container") or {}).get("message_ts")
    if not (user and channel and thread_ts):
        return []
    clicks = []
    for action in payload.get("actions") or []:
        if action.get("action_id") not in (APPROVE_ID, REJECT_ID):
            continue
        try:
            value = json.loads(action.get("value") or "")
            clicks.append(
                Click(
                    user,
                    channel,
                    thread_ts,
                    str(value["thread_id"]),
                    str(value["action_id"]),
                    "reject" if value.get("decision") == "reject" else "approve",
                )
            )
        except (ValueError, KeyError, TypeError):
            log.warning("slack.bad_button_value user=%s", user)
    return clicks


# ---- the runtime: Lumo, the database, the Web API, the background tasks ----------------------------------------


@dataclass
class SlackRuntime:
    lumo: Lumo
    session_factory: sessionmaker[Session]
    client: SlackClient
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(default_factory=weakref.WeakValueDictionary)

    @asynccontextmanager
    async def thread_lock(self, scope: Scope, thread_id: str) -> AsyncIterator[None]:
        """One turn at a time per thread: a double click or a fast retry must not resume a turn twice."""
        key = Lumo.thread_key(scope, thread_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            yield

    async def scope_for_slack_user(self, slack_user_id: str) -> Scope | None:
        return await asyncio.to_thread(_scope_for_slack_user, self.session_factory, slack_user_id)

    async def claim_event(self, event_id: str, now: dt.datetime) -> bool:
        return await asyncio.to_thread(_claim_event, self.session_factory, event_id, now)

    async def release_event(self, event_id: str) -> None:
        """Forget a claim whose answer could not be queued, so that Slack's retry is answered."""
        await asyncio.to_thread(_release_event, self.session_factory, event_id)


def _scope_for_slack_user(session_factory: sessionmaker[Session], slack_user_id: str) -> Scope | None:
    with session_factory() as session:
        user = session.scalar(select(User).where(User.slack_user_id == slack_user_id))
        return None if user is None else scope_for_user(session, user)


def _claim_event(session_factory: sessionmaker[Session], event_id: str, now: dt.datetime) -> bool:
    """True the first time an event id is seen; the primary key decides, so concurrent retries agree too."""
    with session_factory() as session:
        session.add(SlackEvent(event_id=event_id[:100], received_at=now))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
    return True


def _release_event(session_factory: sessionmaker[Session], event_id: str) -> None:
    with session_factory() as session:
        session.execute(delete(SlackEvent).where(SlackEvent.event_id == event_id[:100]))
        session.commit()


# ---- the jobs ---------------------------------------------------------------------------------------------------


async def answer_message(rt: SlackRuntime, msg: Incoming, now: dt.datetime) -> None:
    """An app mention or a DM: a question, or a decision on the actions its thread waits for."""
    scope = await rt.scope_for_slack_user(msg.user)
    if scope is None:
        log.info("slack.unknown_user user=%s", msg.user)
        await rt.client.post_message(msg.channel, REFUSAL, thread_ts=msg.thread_ts)
        return
    if not msg.text:
        await rt.client.post_message(msg.channel, HELP, thread_ts=msg.thread_ts)
        return
    thread_id = thread_id_for(msg.channel, msg.thread_ts)
    await _run_and_post(rt, msg.channel, msg.thread_ts, _turn(rt, scope, thread_id, msg.text, now), thread_id)


async def answer_command(rt: SlackRuntime, scope: Scope, msg: Incoming, now: dt.datetime) -> None:
    """`/lumo question`: the question opens a thread in the channel, the answer goes in it, so replies continue there."""
    root_ts = await rt.client.post_message(msg.channel, f"<@{msg.user}> asked: {_escape(msg.text)}")
    if root_ts is None:
        log.warning("slack.command_unposted user=%s channel=%s", msg.user, msg.channel)
        return
    thread_id = thread_id_for(msg.channel, root_ts)
    await _run_and_post(rt, msg.channel, root_ts, _turn(rt, scope, thread_id, msg.text, now), thread_id)


async def answer_click(rt: SlackRuntime, click: Click, now: dt.datetime) -> None:
    """A button: decide that action as the Slack user who clicked (thread ids are per user, so only its owner can)."""
    scope = await rt.scope_for_slack_user(click.user)
    if scope is None:
        await rt.client.post_ephemeral(click.channel, click.user, REFUSAL, thread_ts=click.thread_ts)
        return
    reject = DEFAULT_REJECT_REASON if click.decision == "reject" else None
    try:
        async with rt.thread_lock(scope, click.thread_id):
            result = await rt.lumo.approve(
                scope, click.thread_id, as_of=AsOf.at(now, scope.tz), now=now, action_id=click.action_id, reject=reject
            )
    except AlreadyDecided as exc:  # another click or reply won: say what really happened, to the clicker only
        await rt.client.post_ephemeral(click.channel, click.user, _escape(str(exc)), thread_ts=click.thread_ts)
        return
    except NotFound:
        log.info("slack.click_not_waiting user=%s thread=%s action=%s", click.user, click.thread_id, click.action_id)
        await rt.client.post_ephemeral(click.channel, click.user, NOT_WAITING, thread_ts=click.thread_ts)
        return
    except LumoError as exc:
        await rt.client.post_message(click.channel, _escape(str(exc)), thread_ts=click.thread_ts)
        return
    except Exception:  # noqa: BLE001  (the rep gets a line, the log gets the trace)
        log.exception("slack.click_failed thread=%s", click.thread_id)
        await rt.client.post_message(click.channel, FAILED, thread_ts=click.thread_ts)
        return
    verb = "rejected" if reject else "approved"
    await _post_result(rt, click.channel, click.thread_ts, result, lead=f"<@{click.user}> {verb} {click.action_id}.")


async def _turn(rt: SlackRuntime, scope: Scope, thread_id: str, text: str, now: dt.datetime) -> TurnResult:
    as_of = AsOf.at(now, scope.tz)
    async with rt.thread_lock(scope, thread_id):
        if await _waiting(rt.lumo, scope, thread_id):
            decision = parse_decision(text)
            if decision is None:
                raise InvalidInput(WAITING_HINT)
            return await rt.lumo.approve(
                scope, thread_id, as_of=as_of, now=now, reject=decision.reason if decision.type == "reject" else None
            )
        return await rt.lumo.ask(scope, text, as_of=as_of, now=now, thread_id=thread_id, start_if_new=True)


async def _waiting(lumo: Lumo, scope: Scope, thread_id: str) -> bool:
    try:
        return bool((await lumo.result(scope, thread_id))["pending_actions"])
    except NotFound:  # a new Slack thread: nothing waits
        return False


async def _run_and_post(
    rt: SlackRuntime, channel: str, thread_ts: str, job: Coroutine[Any, Any, TurnResult], thread_id: str
) -> None:
    try:
        result = await job
    except LumoError as exc:
        await rt.client.post_message(channel, _escape(str(exc)), thread_ts=thread_ts)
        return
    except Exception:  # noqa: BLE001  (the rep gets a line, the log gets the trace)
        log.exception("slack.turn_failed thread=%s", thread_id)
        await rt.client.post_message(channel, FAILED, thread_ts=thread_ts)
        return
    await _post_result(rt, channel, thread_ts, result)


async def _post_result(rt: SlackRuntime, channel: str, thread_ts: str, result: TurnResult, lead: str = "") -> None:
    reply = to_mrkdwn(result.get("reply") or "Done.")
    text = f"{lead}\n{reply}" if lead else reply
    pending = result.get("pending_actions") or []
    blocks = approval_blocks(lead, result["thread_id"], pending) if pending else None
    ts = await rt.client.post_message(channel, text, thread_ts=thread_ts, blocks=blocks)
    log.info("slack.answered thread=%s pending=%d posted=%s", result["thread_id"], len(pending), ts is not None)


# ---- formatting ---------------------------------------------------------------------------------------------------


def approval_blocks(lead: str, thread_id: str, pending: list[PendingAction]) -> list[dict[str, Any]]:
    """Each pending action with its own Approve / Reject buttons (the message text lists them for notifications)."""
    shown = pending[:MAX_ACTIONS_SHOWN]
    blocks: list[dict[str, Any]] = [_section(lead[:SECTION_LIMIT])] if lead else []
    blocks.append(_section("I need your approval before I do this:"))
    for action in shown:
        blocks.append(_section(f"*{_escape(action['description'])[:SECTION_LIMIT]}*"))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"lumo-action-{action['id']}"[:255],
                "elements": [
                    _button("Approve", APPROVE_ID, "primary", thread_id, action["id"], "approve"),
                    _button("Reject", REJECT_ID, "danger", thread_id, action["id"], "reject"),
                ],
            }
        )
    more = len(pending) - len(shown)
    hint = f"{more} more waiting: reply `approve` to approve them all. " if more else ""
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": hint + "Or reply `approve` or `reject &lt;reason&gt;` in this thread."}],
        }
    )
    return blocks


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(label: str, action_id: str, style: str, thread_id: str, lumo_action: str, decision: str) -> dict[str, Any]:
    value = json.dumps({"thread_id": thread_id, "action_id": lumo_action, "decision": decision})
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "style": style,
        "action_id": action_id,
        "value": value,
    }


def _escape(text: str) -> str:
    """Slack reads <, > and & as markup: escape them in text that is not ours."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Lumo writes Markdown; Slack reads mrkdwn: **bold** is *bold*.

    Markdown links are left as typed, never turned into <url|text>: a reply quotes notes and names from the
    data, and a masked link there (`[pay now](https://evil.test)`) would look like Lumo's own. Slack still
    links a bare URL, showing its real address.
    """
    text = _escape(markdown)
    text = re.sub(r"\*\*(.+?)\*\*", r"*\1*", text)
    return re.sub(r"^#{1,6}\s+(.+)$", r"*\1*", text, flags=re.MULTILINE)
