"""`/docs` works offline: its HTML names only assets the app serves itself."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from lumo.api.app import create_app
from lumo.config import Settings


def _client() -> TestClient:
    # No lifespan: the docs need no database.
    return TestClient(create_app(Settings(database_url="sqlite://"), env={"LUMO_LLM": "offline"}))


def test_docs_reference_only_local_assets_and_those_are_served() -> None:
    client = _client()
    page = client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    refs = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]|url:\s*['"]([^'"]+)['"]""", page.text)
    urls = [a or b for a, b in refs]
    assert urls and not [u for u in urls if "://" in u or u.startswith("//")], urls
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 100, url
    assert (
        client.get("/docs-assets/swagger-ui-bundle.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )


def test_redoc_is_not_offered_because_it_needs_a_cdn() -> None:
    assert _client().get("/redoc").status_code == 404
