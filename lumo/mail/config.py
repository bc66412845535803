"""What lumo.mail needs from the settings, in one value handed to it (the CLI and the API build it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lumo.config import Settings
from lumo.crm.errors import InvalidInput

GMAIL_SCOPES = (
    "https://www.googleapis.com/auth/gmail.send",  # send as the rep
    "https://www.googleapis.com/auth/gmail.readonly",  # read replies (history, messages) and the address
)
# offline_access (a refresh token), openid and profile are added by MSAL itself.
GRAPH_SCOPES = (
    "https://graph.microsoft.com/Mail.Send",
    "https://graph.microsoft.com/Mail.Read",
    "https://graph.microsoft.com/User.Read",
)
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GRAPH_URL = "https://graph.microsoft.com/v1.0"
MICROSOFT_LOGIN = "https://login.microsoftonline.com"


@dataclass(frozen=True)
class MailConfig:
    token_key: str = field(repr=False)
    google_client_id: str = ""
    google_client_secret: str = field(default="", repr=False)
    microsoft_client_id: str = ""
    microsoft_client_secret: str = field(default="", repr=False)
    microsoft_tenant: str = "common"
    public_url: str = "http://127.0.0.1:8000"

    @classmethod
    def from_settings(cls, s: Settings) -> MailConfig:
        return cls(
            token_key=s.mail_token_key,
            google_client_id=s.google_client_id,
            google_client_secret=s.google_client_secret,
            microsoft_client_id=s.microsoft_client_id,
            microsoft_client_secret=s.microsoft_client_secret,
            microsoft_tenant=s.microsoft_tenant,
            public_url=s.public_url,
        )

    def redirect_uri(self, provider: str) -> str:
        return f"{self.public_url.rstrip('/')}/mail/callback/{provider}"

    @property
    def microsoft_authority(self) -> str:
        return f"{MICROSOFT_LOGIN}/{self.microsoft_tenant}"

    def require(self, provider: str) -> None:
        """Refuse a provider whose app is not configured, naming the settings to set."""
        if provider == "gmail" and not (self.google_client_id and self.google_client_secret):
            raise InvalidInput("Gmail is not set up: set LUMO_GOOGLE_CLIENT_ID and LUMO_GOOGLE_CLIENT_SECRET (README, Mailboxes)")
        if provider == "outlook" and not (self.microsoft_client_id and self.microsoft_client_secret):
            raise InvalidInput(
                "Outlook is not set up: set LUMO_MICROSOFT_CLIENT_ID and LUMO_MICROSOFT_CLIENT_SECRET (README, Mailboxes)"
            )
