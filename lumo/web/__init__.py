"""The web app for reps: a static page (HTML, ES modules, CSS) served by the API process at `/`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """`/` is the page; its scripts and styles are under `/static` (the page routes itself with `#/...`)."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        # no-cache: a new release's page is picked up at once; the assets it names are revalidated too.
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
