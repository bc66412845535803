"""What may go into an email's headers: one addr-spec per address, and header text on one line.

Addresses are parsed, not pattern-matched: `ap,attacker@evil.test` or `billing<attacker@evil.test>`
look like one address to a regex and are two (or an outside one) to an SMTP server.
"""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

from lumo.crm.errors import InvalidInput

MAX_ADDRESS = 320
MAX_SUBJECT = 300
# Any control character (line breaks above all) would end a header or start a new one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def parse_address(value: object) -> str:
    """The address as one normalized addr-spec (`name@domain`), or InvalidInput saying why not.

    Display names, angle brackets, lists, quoted local parts and IP literals are refused; so is
    non-ASCII before the @ (the sender does not speak SMTPUTF8). `.test` domains are allowed.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("must be an email address like dana@acme.test")
    if len(value) > MAX_ADDRESS:
        raise InvalidInput(f"must be at most {MAX_ADDRESS} characters")
    try:
        parsed = validate_email(
            value.strip(), check_deliverability=False, test_environment=True, allow_smtputf8=False, allow_quoted_local=False
        )
    except EmailNotValidError as exc:
        raise InvalidInput(f"{_shown(value)} is not one email address: {exc}") from None
    return str(parsed.normalized)


def address_key(value: str) -> str | None:
    """The form two addresses are compared in, or None for a value that is not one address."""
    try:
        return parse_address(value).casefold()
    except InvalidInput:
        return None


def header_text(value: str, *, name: str = "subject", limit: int = MAX_SUBJECT) -> str:
    """Header text as given when it fits on one line; InvalidInput naming the problem otherwise."""
    if _CONTROL.search(value):
        raise InvalidInput(f"the {name} must be one line: it contains a line break or control character")
    if len(value) > limit:
        raise InvalidInput(f"the {name} must be at most {limit} characters")
    if not value.strip():
        raise InvalidInput(f"the {name} is empty")
    return value


def one_line(value: str) -> str:
    """Text from data made fit for a header: control characters and runs of spaces become one space."""
    return " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", value)).split())


def _shown(value: str) -> str:
    return repr(value[:80])
