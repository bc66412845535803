"""An instant, local, OpenAI-compatible Chat Completions stand-in for the agent benchmarks.

    python evals/perf/standin.py --port 8401 [--delay-ms 300]

It listens on 127.0.0.1 only and answers `POST /v1/chat/completions` by rule, never by a model:

- the last message is a tool result -> a short text answer ("Here is your plan for today."), which
  states no amount, date or invoice number, so Lumo's fact guard has nothing to object to;
- tools are offered, `todays_priorities` is among them and no tool result follows the last user
  message -> one tool call to `todays_priorities` with `{}` arguments;
- otherwise -> the same text answer.

`--delay-ms` sleeps that long before each answer (a model that takes 300 ms); the sleep holds no CPU.

Usage is an estimate: prompt_tokens = len(request body JSON) / 4, the usual rule of thumb of ~4
characters per token for English and JSON (tiktoken needs to download its encodings, so it cannot be
used offline). It is the same estimate for every client, so ratios between agents hold.

Every request is recorded (bounded to the last 100,000): `GET /_stats?since=N` returns the total count
and the records from index N on; `POST /_reset` forgets them. `GET /healthz` says the process is up.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HOST = "127.0.0.1"  # loopback only, whatever the caller wants
ANSWER = "Here is your plan for today."
PRIORITIES_TOOL = "todays_priorities"
CHARS_PER_TOKEN = 4
MAX_RECORDS = 100_000


def estimate_tokens(text: str | bytes) -> int:
    """A prompt size estimate from the request's JSON length (see the module docstring)."""
    return max(1, len(text) // CHARS_PER_TOKEN)


def _tool_names(request: dict[str, Any]) -> list[str]:
    names = []
    for spec in request.get("tools") or []:
        fn = spec.get("function") if isinstance(spec, dict) else None
        if isinstance(fn, dict) and fn.get("name"):
            names.append(fn["name"])
    return names


def _tool_result_after_last_user(messages: list[dict[str, Any]]) -> bool:
    for message in reversed(messages):
        role = message.get("role")
        if role == "tool":
            return True
        if role == "user":
            return False
    return False


def decide(request: dict[str, Any]) -> str:
    """'text' or 'tool_call': what the stand-in answers to this request."""
    messages = request.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return "text"
    if PRIORITIES_TOOL in _tool_names(request) and not _tool_result_after_last_user(messages):
        return "tool_call"
    return "text"


class StandIn:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_RECORDS)
        self.total = 0  # requests ever recorded (indexes for `since`); records may have dropped the oldest
        self.ids = itertools.count(1)

    def completion(self, request: dict[str, Any], body: bytes) -> dict[str, Any]:
        kind = decide(request)
        n = next(self.ids)
        prompt_tokens = estimate_tokens(body)
        if kind == "tool_call":
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": f"call_standin_{n}", "type": "function", "function": {"name": PRIORITIES_TOOL, "arguments": "{}"}}
                ],
            }
            finish, completion_tokens = "tool_calls", 10
        else:
            message = {"role": "assistant", "content": ANSWER}
            finish, completion_tokens = "stop", estimate_tokens(ANSWER)
        self.records.append(
            {
                "n": self.total,
                "prompt_tokens": prompt_tokens,
                "bytes": len(body),
                "messages": len(request.get("messages") or []),
                "tools": len(request.get("tools") or []),
                "reply": kind,
                "at": time.time(),
            }
        )
        self.total += 1
        return {
            "id": f"chatcmpl-standin-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model") or "standin",
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def chat_completions(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list) or not payload["messages"]:
            return _error(400, "`messages` must be a non-empty list")
        if payload.get("stream"):
            return _error(400, "the stand-in does not stream")
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        return JSONResponse(self.completion(payload, body))

    async def stats(self, request: Request) -> JSONResponse:
        since = int(request.query_params.get("since", "0"))
        first = self.total - len(self.records)
        records = list(itertools.islice(self.records, max(0, since - first), None))
        return JSONResponse({"total": self.total, "delay_ms": self.delay_s * 1000, "records": records})

    async def reset(self, request: Request) -> JSONResponse:
        self.records.clear()
        self.total = 0
        return JSONResponse({"total": 0})

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)


def create_app(delay_ms: float = 0) -> Starlette:
    standin = StandIn(delay_ms / 1000)
    return Starlette(
        routes=[
            Route("/v1/chat/completions", standin.chat_completions, methods=["POST"]),
            Route("/_stats", standin.stats, methods=["GET"]),
            Route("/_reset", standin.reset, methods=["POST"]),
            Route("/healthz", standin.healthz, methods=["GET"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8401)
    parser.add_argument("--delay-ms", type=float, default=0, help="sleep this long before each answer")
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    # Keep idle connections open long (uvicorn's default is 5 s): a client on a CPU-bound event loop can leave a
    # pooled connection idle that long, and the race with the server closing it is not what is measured here.
    uvicorn.run(
        create_app(args.delay_ms),
        host=HOST,
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=120,
    )


if __name__ == "__main__":
    main()
