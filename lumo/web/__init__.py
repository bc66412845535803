"""The web app for reps: a static page (HTML, ES modules, CSS) served by the API process at `/`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install(app: FastAPI) -> None:
    """`/` is the page; its scripts and styles are under `/static` (the page routes itself with `#/...`)."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        # no-cache: a new release's page is picked up at once. The policy lets only this server's own scripts
        # and styles run, so text that slipped into an answer could not run as script even past the sanitizer.
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
