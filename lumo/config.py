"""Settings: the one place that reads the environment."""

from __future__ import annotations

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


def get_settings() -> Settings:
    return Settings()
