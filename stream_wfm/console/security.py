"""Security headers on every console response."""

from __future__ import annotations

from typing import Final

from aiohttp import web

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


async def add_security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` signal handler: runs for pages, redirects, errors and files."""
    response.headers.update(HEADERS)
    if response.content_type == "text/html":
        response.headers["Cache-Control"] = "no-store"
