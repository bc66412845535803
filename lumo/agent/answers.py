"""Whether a model reply can be shown, and the notes a rep reads when it cannot or was cut short.

`finish_reason` says why a reply ended: `content_filter` (withheld), `length` (out of output tokens: a reasoning
model may have spent them all thinking), `stop`/`tool_calls` (done). A reply that would show the rep nothing, or
raw tool-call text, is never shown: the offline model answers and the note says why.
"""

from __future__ import annotations

from lumo.llm import ModelReply

OFFLINE_PREFIX = "(Answered by Lumo's offline mode: "
OFFLINE_NOTE = f"{OFFLINE_PREFIX}the AI model is unavailable right now.)"
CUT_NOTE = "(The answer was cut off: the model reached its output limit.)"


def unusable(reply: ModelReply, final_step: bool) -> str | None:
    """The offline note to answer with instead of this reply, or None when the reply can be used."""
    if reply.tool_calls and not final_step:
        return None
    if reply.unreadable_tool_call:
        return (
            f"{OFFLINE_PREFIX}the model wrote a tool call as text that Lumo could not read; "
            "the server may need a tool-call parser, e.g. vLLM --tool-call-parser.)"
        )
    if (reply.content or "").strip():
        return None
    if reply.finish_reason == "content_filter":
        return f"{OFFLINE_PREFIX}the model's content filter withheld its answer.)"
    if reply.finish_reason == "length":
        spent = " on reasoning" if reply.reasoning else ""
        return f"{OFFLINE_PREFIX}the model used its whole output limit{spent} without answering.)"
    if reply.tool_calls:
        return f"{OFFLINE_PREFIX}the model kept calling tools past the last step.)"
    return f"{OFFLINE_PREFIX}the model returned an empty answer.)"


def offline_because(reason: str) -> str:
    """The note of an offline answer given for `reason` (one or more sentences)."""
    return f"{OFFLINE_PREFIX}{reason})"


def offline_note(notes: list[str]) -> str | None:
    """The first note saying the offline model answered this turn."""
    return next((n for n in notes if n.startswith(OFFLINE_PREFIX)), None)


def went_offline(notes: list[str]) -> bool:
    return offline_note(notes) is not None
