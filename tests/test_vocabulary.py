"""One vocabulary: the statuses, aging buckets and tones of lumo.crm are the ones every interface offers."""

from __future__ import annotations

import json
from typing import Any

from lumo.api.app import create_app
from lumo.config import Settings
from lumo.crm.lifecycle import BUCKETS, STATUSES, aging_bucket
from lumo.crm.snapshot import LISTS
from lumo.crm.tone import LADDER, TONES
from lumo.templates import PROMPTS_DIR
from tools import schemas


def _tool_properties(name: str) -> dict[str, Any]:
    spec = next(s for s in schemas() if s["function"]["name"] == name)
    properties: dict[str, Any] = spec["function"]["parameters"]["properties"]
    return properties


def _query_parameter(path: str, name: str) -> dict[str, Any]:
    app = create_app(Settings(database_url="sqlite://"), env={})
    parameters = app.openapi()["paths"][path]["get"]["parameters"]
    schema: dict[str, Any] = next(p for p in parameters if p["name"] == name)["schema"]
    return schema


def _enum(schema: dict[str, Any]) -> list[str]:
    """The enum of a schema, looking through arrays and optionals (anyOf with null)."""
    if "enum" in schema:
        return list(schema["enum"])
    if "items" in schema:
        return _enum(schema["items"])
    return next(_enum(s) for s in schema.get("anyOf", []) if s.get("type") != "null")


def test_the_aging_rule_yields_exactly_the_named_buckets() -> None:
    assert {aging_bucket(days) for days in range(-5, 400)} == set(BUCKETS)


def test_the_tools_offer_the_lifecycle_statuses_and_buckets() -> None:
    assert _enum(_tool_properties("search_invoices")["status"]) == list(STATUSES)
    assert _enum(_tool_properties("update_invoice_status")["status"]) == list(STATUSES)
    assert _enum(_tool_properties("search_invoices")["bucket"]) == list(BUCKETS)
    assert _enum(_tool_properties("overdue_invoices")["bucket"]) == list(BUCKETS)


def test_the_http_api_offers_the_lifecycle_statuses_and_buckets() -> None:
    assert _enum(_query_parameter("/v1/invoices", "status")) == list(STATUSES)
    assert _enum(_query_parameter("/v1/invoices", "bucket")) == list(BUCKETS)


def test_the_exchange_contract_takes_the_lifecycle_statuses() -> None:
    schema = LISTS["invoices"].model_json_schema()
    assert json.dumps(schema["properties"]["status"]["enum"]) == json.dumps(list(STATUSES))


def test_every_tone_has_its_email_template_and_no_template_lacks_a_tone() -> None:
    templates = {p.name.removesuffix(".txt.j2") for p in (PROMPTS_DIR / "emails").glob("*.txt.j2")}
    assert {t for t in templates if not t.startswith("_")} == set(TONES)


def test_the_ladder_climbs_through_the_tones_in_their_order() -> None:
    assert [tone for _, tone in LADDER] == [t for t in TONES if t != "dispute_resolution"]
