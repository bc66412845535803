"""Connecting a rep's mailbox: the OAuth authorization-code flow of a server app, and the stored grant.

`start` gives the provider's consent URL, with a `state` that carries who asked (sealed: it cannot be forged
or reused after STATE_TTL_S); `finish` takes the code the provider sends back to /mail/callback/<provider>
(or that the rep pastes into `lumo mail connect`), keeps the refresh token encrypted and starts the reply
sync's cursor. Google's flow uses PKCE: its verifier travels inside the sealed state.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from requests.exceptions import RequestException
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lumo.crm.errors import InvalidInput, NotFound
from lumo.crm.tasks import create_task
from lumo.db.models import MAIL_PROVIDERS, Mailbox, MailMessage, MailThread, User
from lumo.mail.config import GMAIL_SCOPES, GOOGLE_AUTH_URI, GOOGLE_TOKEN_URI, GRAPH_SCOPES, MailConfig
from lumo.mail.graph import microsoft_app, token_error
from lumo.mail.providers import Providers
from lumo.mail.secrets import Vault

log = logging.getLogger("lumo.mail")

PROVIDER_NAMES = {"gmail": "Gmail", "outlook": "Outlook"}


def check_provider(provider: str) -> str:
    if provider not in MAIL_PROVIDERS:
        raise InvalidInput(f"unknown mail provider {provider!r}: use {' or '.join(MAIL_PROVIDERS)}")
    return provider


def _google_flow(config: MailConfig, verifier: str) -> Flow:
    client = {
        "web": {
            "client_id": config.google_client_id,
            "client_secret": config.google_client_secret,
            "auth_uri": GOOGLE_AUTH_URI,
            "token_uri": GOOGLE_TOKEN_URI,
        }
    }
    return Flow.from_client_config(
        client,
        scopes=list(GMAIL_SCOPES),
        redirect_uri=config.redirect_uri("gmail"),
        code_verifier=verifier,
        autogenerate_code_verifier=False,
    )


def start(providers: Providers, provider: str, user: User, *, now: dt.datetime) -> str:
    """The URL where the rep consents to Lumo sending and reading mail as them."""
    config = providers.config
    check_provider(provider)
    config.require(provider)
    vault = Vault(config.token_key)
    verifier = secrets.token_urlsafe(48)
    state = vault.seal_state({"user": user.id, "provider": provider, "verifier": verifier}, now_s=int(now.timestamp()))
    if provider == "gmail":
        # offline + consent: Google returns a refresh token even to a rep who consented before.
        url, _ = _google_flow(config, verifier).authorization_url(
            access_type="offline", prompt="consent", include_granted_scopes="true", state=state, login_hint=user.email
        )
        return str(url)
    app = microsoft_app(config, providers.http())
    url = app.get_authorization_request_url(
        list(GRAPH_SCOPES),
        state=state,
        redirect_uri=config.redirect_uri("outlook"),
        login_hint=user.email,
        prompt="select_account",
    )
    return str(url)


@dataclass(frozen=True)
class Grant:
    refresh_token: str
    access_token: str


def finish(
    session: Session,
    providers: Providers,
    provider: str,
    *,
    code: str,
    state: str,
    now: dt.datetime,
) -> Mailbox:
    """Exchange the code for a refresh token, find the mailbox's address and cursor, and keep them (encrypted)."""
    config = providers.config
    check_provider(provider)
    config.require(provider)
    vault = Vault(config.token_key)
    data = vault.open_state(state, now_s=int(now.timestamp()))
    if data.get("provider") != provider:
        raise InvalidInput(f"this sign-in was started for {data.get('provider')}, not {provider}: connect again")
    user = session.get(User, str(data.get("user")))
    if user is None:
        raise NotFound("the user who started this sign-in no longer exists")
    if not code:
        raise InvalidInput(f"{PROVIDER_NAMES[provider]} sent no authorization code back: connect again")
    cursor: str | None
    if provider == "gmail":
        grant = _google_grant(config, code, str(data.get("verifier", "")))
        profile = providers.gmail(grant.refresh_token, access_token=grant.access_token).profile()
        address, cursor = str(profile["emailAddress"]), str(profile["historyId"])
    else:
        grant = _microsoft_grant(config, code, providers.http())
        me = providers.graph(grant.refresh_token, access_token=grant.access_token).me()
        address, cursor = str(me.get("mail") or me.get("userPrincipalName") or ""), None
    mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == user.id)).one_or_none()
    if mailbox is None:
        mailbox = Mailbox(user_id=user.id)
        session.add(mailbox)
    mailbox.provider, mailbox.address, mailbox.status = provider, address, "connected"
    mailbox.refresh_token, mailbox.cursor = vault.seal(grant.refresh_token), cursor
    mailbox.connected_at, mailbox.synced_at, mailbox.last_error = now, None, None
    session.flush()
    return mailbox


def _google_grant(config: MailConfig, code: str, verifier: str) -> Grant:
    flow = _google_flow(config, verifier)
    try:
        flow.fetch_token(code=code)
    except (OAuth2Error, RequestException, ValueError, Warning) as exc:
        raise InvalidInput(f"Google refused the authorization code: {exc}".splitlines()[0]) from None
    credentials = flow.credentials
    if not credentials.refresh_token:
        raise InvalidInput("Google granted no offline access (no refresh token): connect again and accept every scope")
    return Grant(str(credentials.refresh_token), str(credentials.token))


def _microsoft_grant(config: MailConfig, code: str, http: httpx.Client) -> Grant:
    try:
        result = microsoft_app(config, http).acquire_token_by_authorization_code(
            code, scopes=list(GRAPH_SCOPES), redirect_uri=config.redirect_uri("outlook")
        )
    except (httpx.HTTPError, ValueError) as exc:
        raise InvalidInput(f"Microsoft sign-in could not be reached: {type(exc).__name__}: {exc}") from None
    error = token_error(result)
    if error is not None:
        raise InvalidInput(f"Microsoft refused the authorization code: {error}")
    if not result.get("refresh_token"):
        raise InvalidInput("Microsoft granted no offline access (no refresh token): connect again and accept every permission")
    return Grant(str(result["refresh_token"]), str(result["access_token"]))


def code_and_state(redirected_to: str) -> tuple[str, str]:
    """The code and state in the address the provider sent the rep back to (what `lumo mail connect` asks for)."""
    query = parse_qs(urlsplit(redirected_to.strip()).query)
    if "error" in query:
        raise InvalidInput(f"the provider said: {query['error'][0]} {query.get('error_description', [''])[0]}".strip())
    code, state = query.get("code", [""])[0], query.get("state", [""])[0]
    if not code or not state:
        raise InvalidInput("that address has no code and state: paste the whole address the provider sent you back to")
    return code, state


# --- status and disconnect ----------------------------------------------------------------------


def mailbox_of(session: Session, user_id: str) -> Mailbox | None:
    return session.scalars(select(Mailbox).where(Mailbox.user_id == user_id)).one_or_none()


def disconnect(session: Session, user: User) -> Mailbox:
    """Forget the user's mailbox and its grant: emails go by SMTP again (revoke Lumo at the provider too)."""
    mailbox = mailbox_of(session, user.id)
    if mailbox is None:
        raise NotFound(f"{user.email} has no connected mailbox")
    session.execute(delete(MailThread).where(MailThread.mailbox_id == mailbox.id))
    session.execute(delete(MailMessage).where(MailMessage.mailbox_id == mailbox.id))
    session.delete(mailbox)
    session.flush()
    return mailbox


def reconnect_words(mailbox: Mailbox, user: User) -> str:
    command = f"lumo mail connect {mailbox.provider} --user {user.email}"
    return f"{PROVIDER_NAMES[mailbox.provider]} mailbox {mailbox.address} needs reconnecting: `{command}`"


def lose_grant(session: Session, mailbox: Mailbox, user: User, reason: str, now: dt.datetime) -> None:
    """The provider refused the grant: the mailbox waits for the rep, who gets one task (not one per email)."""
    was = mailbox.status
    mailbox.status, mailbox.last_error = "needs_reconnect", reason
    if was == "connected":
        today = now.astimezone(ZoneInfo(user.timezone or "UTC")).date()
        why = reason.split(":")[0]
        title = f"Reconnect your {PROVIDER_NAMES[mailbox.provider]} mailbox in Lumo ({why}): {reconnect_words(mailbox, user)}"
        create_task(session, owner_id=user.id, title=title[:500], due_date=today)
    log.warning("mail.needs_reconnect user=%s provider=%s reason=%s", user.email, mailbox.provider, reason)
