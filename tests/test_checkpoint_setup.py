"""Hosts and workers that open the checkpointer at once on a new PostgreSQL database: one sets the tables up, the
others wait for it, none fails (LangGraph's migrations deadlock when two connections run them together)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lumo.agent.checkpoint import open_checkpointer
from tests.conftest import PG_SKIP, PG_URL


async def test_checkpointers_opened_at_once_on_a_new_database_all_start() -> None:
    if not PG_URL:
        pytest.skip(PG_SKIP)
    name = f"lumo_setup_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    async def open_one() -> object:
        async with open_checkpointer(url, pool_size=1) as saver:  # a pool of one: the set-up needs no second connection
            return await saver.aget_tuple({"configurable": {"thread_id": "none"}})

    try:
        assert await asyncio.gather(*(open_one() for _ in range(4))) == [None] * 4
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
