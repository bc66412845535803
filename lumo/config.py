"""Settings: the one place that reads the environment."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LUMO_", extra="ignore")

    database_url: str = "sqlite:///lumo.db"
    locale: str = "en_US"
    # Domain thresholds (DESIGN section 3), named so each rule reads its own.
    stale_activity_days: int = 14
    dispute_stalled_days: int = 14
    draft_unsent_days: int = 7
    contact_cooldown_days: int = 3
    due_soon_days: int = 3
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
