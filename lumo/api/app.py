"""The FastAPI app: the database, checkpointer and model are opened once, in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from lumo import __version__, gc_tuning, web
from lumo.api import docs, errors, routes_chat, routes_mail, routes_payments, routes_reads, routes_record, routes_web
from lumo.api.deps import no_nul_characters
from lumo.api.limits import BodySizeLimit
from lumo.api.schemas import Health, Readiness
from lumo.compose import open_lumo
from lumo.config import Settings, get_settings
from lumo.jobs.queue import serving_jobs
from lumo.slack import routes as slack_routes
from lumo.slack.client import SlackClient
from lumo.slack.handlers import SlackRuntime

serving_log = logging.getLogger("uvicorn.error")  # the served process's log, beside "Application startup complete."


def create_app(settings: Settings | None = None, env: Mapping[str, str] | None = None, *, serving: bool = False) -> FastAPI:
    """`env` picks the model (see lumo.config.model_settings); None: the process environment. `serving`: this
    process is a server that runs the app until it exits (`lumo serve`), so its collector is set for that."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_lumo(settings.database_url, env) as lumo:
            app.state.lumo = lumo
            app.state.session_factory = lumo.session_factory
            app.state.settings = settings
            app.state.slack = SlackRuntime(lumo, lumo.session_factory, SlackClient.from_settings(settings))
            # The jobs: enqueued here; run by `lumo worker` on PostgreSQL, in this process on SQLite (lumo.jobs).
            async with serving_jobs(settings, lumo.session_factory, app.state.slack) as jobs:
                app.state.jobs = jobs
                if serving:
                    frozen = gc_tuning.settle()
                    serving_log.info(
                        "Collector settled: %d start-up objects frozen, young generation every %d.",
                        frozen,
                        gc_tuning.YOUNG_THRESHOLD,
                    )
                yield

    app = FastAPI(
        title="Lumo API",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served by lumo.api.docs from local assets
        redoc_url=None,  # ReDoc only ships from a CDN
        description="Lumo, the assistant of Lumenbase CRM. Authenticate with `Authorization: Bearer <token>`.",
    )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        paths={routes_payments.IMPORT_PATH: settings.max_statement_bytes},
    )
    errors.install(app)
    docs.install(app)
    v1_guards = [Depends(no_nul_characters)]
    app.include_router(routes_chat.router, dependencies=v1_guards)
    app.include_router(routes_reads.router, dependencies=v1_guards)
    app.include_router(routes_record.router, dependencies=v1_guards)
    app.include_router(routes_payments.router, dependencies=v1_guards)
    app.include_router(routes_payments.webhooks)
    app.include_router(routes_web.router, dependencies=v1_guards)
    app.include_router(routes_mail.router, dependencies=v1_guards)
    app.include_router(routes_mail.callbacks, dependencies=v1_guards)
    app.include_router(slack_routes.router)
    web.install(app)

    @app.get("/healthz", response_model=Health, tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["health"],
        summary="The database answers; the model's last known state",
        responses={503: {"model": Readiness}},
    )
    def readyz() -> JSONResponse:
        try:
            with app.state.session_factory() as session:
                session.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001  (any failure means not ready)
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        health = getattr(app.state.lumo.model, "health", None)
        if health is None:  # the offline model: nothing to report
            return JSONResponse({"status": "ready"})
        # A misconfigured model degrades chat, not reads: still ready, and saying what is wrong.
        status = "degraded" if health.state == "misconfigured" else "ready"
        return JSONResponse({"status": status, "model": health.as_json()})

    return app
