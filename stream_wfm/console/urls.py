"""URLs of the console's pages. Account ids may hold ``/``, ``?`` or ``#``, so
they are percent-encoded as one path segment."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

ACCOUNTS = "/accounts"
NEW_INTEGRATION = "/integrations/new"
SIGN_IN = "/sign-in"
SIGN_OUT = "/sign-out"
READYZ = "/readyz"
#: The query parameter of the one-time token of a new signing secret (never the secret).
REVEAL_PARAM = "reveal"


def account_url(account_id: str, suffix: str = "") -> str:
    """``/accounts/<id>`` followed by ``suffix`` (e.g. ``/delete``)."""
    return f"{ACCOUNTS}/{quote(account_id, safe='')}{suffix}"


def signing_url(account_id: str | None) -> str:
    """Where the signing buttons post: the account's, or the new-integration page's."""
    return (
        NEW_INTEGRATION + "/signing" if account_id is None else account_url(account_id, "/signing")
    )


def safe_next(target: str | None) -> str:
    """A local path to go to after signing in; anything else gives the accounts list."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return ACCOUNTS
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return ACCOUNTS
    return target


def quote_param(value: str) -> str:
    """``value`` percent-encoded for a query string."""
    return quote(value, safe="")
