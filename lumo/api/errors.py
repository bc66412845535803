"""Every error is JSON `{"error": message}` with a 4xx status; nothing leaks a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lumo.crm.errors import ImportRejected, LumoError
from lumo.crm.outage import DB_UNAVAILABLE, TRANSIENT, is_transient

log = logging.getLogger("lumo.api")


def install(app: FastAPI) -> None:
    @app.exception_handler(LumoError)
    async def lumo_error(_: Request, exc: LumoError) -> JSONResponse:
        body: dict[str, object] = {"error": str(exc)}
        if isinstance(exc, ImportRejected):
            body["problems"] = exc.problems
        body.update(getattr(exc, "body", None) or {})  # e.g. a 409's `outcome`
        return JSONResponse(body, status_code=exc.http_status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(problems) or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):  # down, restarting, or a dropped connection: the client should retry, not report a bug
            log.warning("api.database_unavailable path=%s error=%s", request.url.path, type(exc).__name__)
            return JSONResponse({"error": DB_UNAVAILABLE}, status_code=503, headers={"Retry-After": "5"})
        log.error("api.database_error path=%s", request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error"}, status_code=500)

    for kind in (*TRANSIENT, DBAPIError):
        app.add_exception_handler(kind, database_error)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.crash path=%s", request.url.path)
        return JSONResponse({"error": "internal error"}, status_code=500)
