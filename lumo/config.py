"""Settings: the one place that reads the environment.

`Settings` (LUMO_*) configures a process; `model_settings` says which model answers (OPENAI_API_KEY,
OPENAI_BASE_URL, LUMO_MODEL, LUMO_LLM); `debug_enabled` reads LUMO_DEBUG. Everything else is handed
these values: no other module reads or writes os.environ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

_N = TypeVar("_N", int, float)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LUMO_", extra="ignore")

    # The domain's thresholds live beside their rules (stale.StaleThresholds, priorities.Weights,
    # drafts.COOLDOWN_DAYS, tone.LADDER), not here: they are product rules, not deployment settings.
    database_url: str = "sqlite:///lumo.db"
    # Mail: digest and approved emails leave through this server (smtp://user:pass@host:port, smtps://...).
    smtp_url: str = "smtp://127.0.0.1:25"
    mail_from: str = "Lumo <lumo@lumenbase.test>"
    # When set (HH:MM), a serving process sends each rep's digest at that local time, and the outbox.
    digest_at: str | None = None
    # Slack: the app's signing secret and bot token; the Web API base URL is configurable for tests.
    slack_signing_secret: str = ""
    slack_bot_token: str = ""
    slack_api_url: str = "https://slack.com/api/"
    # Stripe: the webhook endpoint's signing secret (whsec_...); unset, POST /webhooks/stripe answers 503.
    stripe_webhook_secret: str = ""
    # Reps' own mailboxes (lumo.mail): the Fernet key that encrypts their refresh tokens at rest
    # (`lumo mail key` makes one), the OAuth apps registered with Google and Microsoft (README), and the
    # public address of this server, where the providers send the rep back (+ /mail/callback/<provider>).
    mail_token_key: str = Field(default="", repr=False)
    google_client_id: str = ""
    google_client_secret: str = Field(default="", repr=False)
    microsoft_client_id: str = ""
    microsoft_client_secret: str = Field(default="", repr=False)
    microsoft_tenant: str = "common"
    public_url: str = "http://127.0.0.1:8000"
    # HTTP API limits.
    max_request_bytes: int = 64_000
    # A bank statement (POST /v1/payments/import) may be larger than any other body.
    max_statement_bytes: int = Field(default=5_000_000, gt=0)
    # The model: one time budget per chat turn (every call and retry of the turn), then the offline model;
    # tool schemas in OpenAI's strict mode (for servers that enforce them).
    turn_deadline_s: float = Field(default=45.0, gt=0)
    strict_tools: bool = False
    # PostgreSQL connections one serving process holds at most (its engine and its checkpointer share them):
    # `lumo serve --workers N` opens up to N times this, and PostgreSQL allows 100 by default.
    db_connections: int = Field(default=12, ge=3, le=500)


def settings_from(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from an environment mapping (a dict in tests) or, by default, the process environment."""
    env = os.environ if env is None else env
    prefix = "LUMO_"
    given = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    try:
        return Settings.model_validate({k: v for k, v in given.items() if k in Settings.model_fields})
    except ValidationError as exc:  # one line naming the variable, not pydantic's report
        first = exc.errors()[0]
        name = prefix + str(first["loc"][0]).upper() if first["loc"] else "a LUMO_ setting"
        raise ValueError(f"{name}: {first['msg']}") from None


def get_settings() -> Settings:
    return Settings()


@dataclass(frozen=True)
class ModelSettings:
    """Which model answers: a real one when OPENAI_API_KEY is set, unless LUMO_LLM=offline."""

    api_key: str = field(repr=False)  # never show the key in logs or tracebacks
    base_url: str | None = None  # OPENAI_BASE_URL: any OpenAI-compatible server
    model: str | None = None  # LUMO_MODEL; None: the client's default
    offline: bool = False  # LUMO_LLM=offline forces the offline model
    max_attempts: int | None = None  # LUMO_MODEL_MAX_ATTEMPTS; None: the client's default
    request_timeout_s: float | None = None  # LUMO_MODEL_TIMEOUT_S; None: the client's default

    @property
    def live(self) -> bool:
        return bool(self.api_key) and not self.offline


def model_settings(env: Mapping[str, str] | None = None) -> ModelSettings:
    """From `env` (a test's or a tool's mapping) or, by default, the process environment."""
    env = os.environ if env is None else env
    return ModelSettings(
        api_key=env.get("OPENAI_API_KEY", "").strip(),
        base_url=env.get("OPENAI_BASE_URL", "").strip() or None,
        model=env.get("LUMO_MODEL", "").strip() or None,
        offline=env.get("LUMO_LLM", "").strip().lower() == "offline",
        max_attempts=_number(env, "LUMO_MODEL_MAX_ATTEMPTS", int),
        request_timeout_s=_number(env, "LUMO_MODEL_TIMEOUT_S", float),
    )


def _number(env: Mapping[str, str], key: str, kind: type[_N]) -> _N | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, not {raw!r}") from None


def debug_enabled(env: Mapping[str, str] | None = None) -> bool:
    """LUMO_DEBUG set (and not 0/false): the CLI shows a crash's traceback instead of one line."""
    value = (os.environ if env is None else env).get("LUMO_DEBUG", "").strip().lower()
    return value not in ("", "0", "false", "no")
