"""Opening Lumo once per process: the database engine, the checkpointer and the model, handed to the agent.

The composition lives here, above the agent, so that the agent reaches data only through tools and crm; the API's
lifespan and the CLI open Lumo through it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

from lumo.agent.checkpoint import open_checkpointer
from lumo.agent.service import Lumo
from lumo.config import model_settings, settings_from
from lumo.db.session import make_engine, make_sessionmaker
from lumo.llm import LLMSettings, ModelClient


def model_from_env(env: Mapping[str, str] | None = None) -> ModelClient | None:
    """The real model when OPENAI_API_KEY is set (LUMO_LLM=offline forces the offline model)."""
    if not model_settings(env).live:
        return None
    return ModelClient(LLMSettings.from_env(env))


def connection_split(total: int) -> tuple[int, int]:
    """(engine, checkpointer) PostgreSQL connections of one process out of LUMO_DB_CONNECTIONS: a third for the
    checkpointer, whose calls are one or two short statements; the rest for the tools' sessions."""
    checkpointer = max(2, total // 3)
    return total - checkpointer, checkpointer


@asynccontextmanager
async def open_lumo(database_url: str, env: Mapping[str, str] | None = None) -> AsyncIterator[Lumo]:
    """`env` None: the process environment, read by lumo.config."""
    settings = settings_from(env)
    engine_size, checkpointer_size = connection_split(settings.db_connections)
    postgres = make_url(database_url).get_backend_name() == "postgresql"
    # A fixed pool on PostgreSQL: the process never holds more than its share, whatever the load.
    engine = make_engine(database_url, pool_size=engine_size, max_overflow=0) if postgres else make_engine(database_url)
    model = model_from_env(env)
    try:
        async with open_checkpointer(database_url, pool_size=checkpointer_size) as checkpointer:
            yield Lumo.create(
                checkpointer,
                make_sessionmaker(engine),
                model,
                turn_deadline_s=settings.turn_deadline_s,
                strict_tools=settings.strict_tools,
            )
    finally:
        if model is not None:
            await model.aclose()
        engine.dispose()
