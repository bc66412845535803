"""What the OpenAPI spec says about errors and dates: every error is `{"error": message}`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

# A day, as every `date` field and parameter takes it.
DATE_SCHEMA: dict[str, Any] = {"format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$", "examples": ["2026-11-25"]}
DATE_HELP = "YYYY-MM-DD (ISO 8601 calendar date), between 1970-01-01 and 2200-12-31"
# Documented, not enforced by pydantic: the domain's parse_day refuses a bad day with a message that says why.
DateText = Annotated[str, Field(json_schema_extra=DATE_SCHEMA)]


class ErrorBody(BaseModel):
    error: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("A malformed request"),
    401: _error("Missing, invalid, revoked or expired bearer token (with `WWW-Authenticate: Bearer`)"),
    404: _error("Unknown, or outside the caller's scope (the two look the same)"),
    409: _error("The action was already decided (the body says how), or a decision on the thread is in progress"),
    413: _error("Request body too large"),
    422: _error("Invalid input: the message says which field and why"),
    503: _error("The database is unavailable; retry shortly"),
}
