"""Security headers on every console response; ``Strict-Transport-Security`` over https."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from stream_wfm.console.state import client_of

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: Sent over https only (directly, or as a trusted proxy says): browsers ignore it over http.
STRICT_TRANSPORT_SECURITY: Final = "max-age=31536000"


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` signal handler: runs for pages, redirects, errors and files."""
    response.headers.update(HEADERS)
    if client_of(request).https:
        response.headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
    if response.content_type == "text/html":
        response.headers["Cache-Control"] = "no-store"
