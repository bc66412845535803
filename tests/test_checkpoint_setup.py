"""Hosts and workers that open the checkpointer at once on a new PostgreSQL database: one sets the tables up, the
others wait for it, none fails (LangGraph's migrations deadlock when two connections run them together)."""

from __future__ import annotations

import asyncio

from lumo.agent.checkpoint import open_checkpointer
from tests.conftest import new_pg_database


async def test_checkpointers_opened_at_once_on_a_new_database_all_start() -> None:
    async def open_one(url: str) -> object:
        async with open_checkpointer(url, pool_size=1) as saver:  # a pool of one: the set-up needs no second connection
            return await saver.aget_tuple({"configurable": {"thread_id": "none"}})

    with new_pg_database("lumo_setup") as (url, _admin):
        assert await asyncio.gather(*(open_one(url) for _ in range(4))) == [None] * 4
