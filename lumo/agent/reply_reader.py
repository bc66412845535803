"""The model's reading of a customer's reply, asked only when the rules of lumo.crm.replies found no meaning.

It proposes, never decides: its answer picks among the same meanings as the rules, and what that meaning
suggests goes through approval like everything else (lumo.crm.replies.proposals). A promise date is kept
only when it is today or later; an unusable answer, or a model that fails, leaves the reply "other".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence

from lumo.crm.replies import MEANINGS, Meaning
from lumo.llm import LLMSettings, ModelClient, ModelError, ModelUnavailable
from lumo.templates import render

log = logging.getLogger("lumo.agent")

READ_REPLY = {
    "type": "function",
    "function": {
        "name": "read_reply",
        "description": "Say what the customer's reply means.",
        "parameters": {
            "type": "object",
            "properties": {
                "meaning": {"type": "string", "enum": list(MEANINGS)},
                "promise_date": {"type": ["string", "null"], "description": "YYYY-MM-DD, for a promise naming a day."},
            },
            "required": ["meaning"],
        },
    },
}
Reader = Callable[[str, Sequence[str], dt.date], Meaning | None]


def reply_reader(settings: LLMSettings) -> Reader:
    """A reader for `sync_mailboxes`: one model call per reply the rules could not read."""

    def read(text: str, numbers: Sequence[str], today: dt.date) -> Meaning | None:
        async def ask() -> Meaning | None:
            prompt = render("reply_meaning.md.j2", text=text[:4000], numbers=list(numbers), today=today.isoformat())
            async with ModelClient(settings) as client:
                reply = await client.complete(
                    [{"role": "user", "content": prompt}],
                    tools=[READ_REPLY],
                    tool_choice={"type": "function", "function": {"name": "read_reply"}},
                )
            return meaning_of(reply.tool_calls[0].arguments if reply.tool_calls else "", today)

        try:
            return asyncio.run(ask())
        except (ModelError, ModelUnavailable) as exc:
            log.warning("mail.reply_reader_failed error=%s", exc)
            return None

    return read


def meaning_of(arguments: str, today: dt.date) -> Meaning | None:
    """The model's tool call as a meaning, or None when it is unusable or says nothing more than the rules."""
    try:
        args = json.loads(arguments)
    except ValueError:
        return None
    if not isinstance(args, dict):
        return None
    kind = args.get("meaning")
    if kind not in MEANINGS or kind == "other":
        return None
    day: dt.date | None = None
    if kind == "promise" and isinstance(args.get("promise_date"), str):
        try:
            day = dt.date.fromisoformat(str(args["promise_date"]))
        except ValueError:
            day = None
        day = day if day is not None and day >= today else None
    return Meaning(str(kind), day, evidence="read by the model")
