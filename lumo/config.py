"""Settings: the one place that reads the environment."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # HTTP API limits.
    max_request_bytes: int = 64_000
    # The model: one time budget per chat turn (every call and retry of the turn), then the offline model;
    # tool schemas in OpenAI's strict mode (for servers that enforce them).
    turn_deadline_s: float = Field(default=45.0, gt=0)
    strict_tools: bool = False


def settings_from(env: Mapping[str, str]) -> Settings:
    """Settings from an environment mapping (os.environ, or a dict in tests)."""
    prefix = "LUMO_"
    given = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    try:
        return Settings(**{k: v for k, v in given.items() if k in Settings.model_fields})
    except ValidationError as exc:  # one line naming the variable, not pydantic's report
        first = exc.errors()[0]
        name = prefix + str(first["loc"][0]).upper() if first["loc"] else "a LUMO_ setting"
        raise ValueError(f"{name}: {first['msg']}") from None


def get_settings() -> Settings:
    return Settings()
