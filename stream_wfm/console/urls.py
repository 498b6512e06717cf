"""URLs of the console's pages. Account ids may hold ``/``, ``?`` or ``#``, so
they are percent-encoded as one path segment."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

ACCOUNTS = "/accounts"
NEW_INTEGRATION = "/integrations/new"
SIGN_IN = "/sign-in"
SIGN_OUT = "/sign-out"
READYZ = "/readyz"


def account_url(account_id: str, suffix: str = "") -> str:
    """``/accounts/<id>`` followed by ``suffix`` (e.g. ``/delete``)."""
    return f"{ACCOUNTS}/{quote(account_id, safe='')}{suffix}"


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
