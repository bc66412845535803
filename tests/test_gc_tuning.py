"""The collector of a long-running process (lumo.gc_tuning): set once start-up is over, in `lumo serve` and `lumo worker`."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from fastapi.testclient import TestClient

from lumo import gc_tuning
from lumo.api.app import create_app
from lumo.config import Settings


def test_settle_freezes_start_up_and_collects_the_young_generation_less_often() -> None:
    # In a process of its own: the freeze and the threshold are process-wide.
    code = (
        "import gc, json; from lumo import gc_tuning; before = gc.get_threshold(); frozen = gc_tuning.settle(); "
        "print(json.dumps([before, gc.get_threshold(), frozen, gc.get_freeze_count()]))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, frozen, counted = json.loads(run.stdout)
    assert after == [gc_tuning.YOUNG_THRESHOLD, before[1], before[2]]
    assert frozen == counted > 1_000  # what importing lumo.api allocated, at least


def test_an_app_not_served_leaves_the_collector_alone(db_url: str) -> None:
    """Tests and embedders run the app in their own process: its collector is theirs."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    with TestClient(create_app(Settings(database_url=db_url), env={"LUMO_LLM": "offline"})) as client:
        assert client.get("/healthz").status_code == 200
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
