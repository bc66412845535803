"""The model's last known state, for /readyz: what the most recent call said about the set-up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lumo.llm.problems import ModelProblem


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ModelHealth:
    model: str
    base_url: str | None
    clock: Callable[[], dt.datetime] = field(default=_utcnow, repr=False)
    state: str = "unchecked"  # unchecked | ok | misconfigured | unavailable
    problem: ModelProblem | None = None
    since: dt.datetime | None = None

    def record_ok(self) -> None:
        self._set("ok", None)

    def record(self, problem: ModelProblem) -> None:
        self._set("misconfigured" if problem.configuration else "unavailable", problem)

    def _set(self, state: str, problem: ModelProblem | None) -> None:
        if state != self.state or problem != self.problem:
            self.since = self.clock()
        self.state, self.problem = state, problem

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "model": self.model,
            "base_url": self.base_url,
            "problem": self.problem.message if self.problem else None,
            "kind": self.problem.kind if self.problem else None,
            "since": self.since.isoformat() if self.since else None,
        }
