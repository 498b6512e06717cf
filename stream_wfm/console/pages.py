"""Rendering pages: every template gets the session's CSRF token and user."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from stream_wfm.console import urls
from stream_wfm.console.state import console_of, session_of
from stream_wfm.integrations.store import Entry


def render(
    request: web.Request, template: str, context: Mapping[str, Any], status: int = 200
) -> web.Response:
    session = session_of(request)
    full = {
        "csrf_token": console_of(request).sessions.csrf_token(session),
        "user": session.user,
        **context,
    }
    return aiohttp_jinja2.render_template(template, request, full, status=status)


def message(
    request: web.Request, status: int, title: str, text: str, *, link: tuple[str, str] | None = None
) -> web.Response:
    """A short page that explains a refusal or a missing thing."""
    return render(request, "message.html", {"title": title, "text": text, "link": link}, status)


def entry_or_page(request: web.Request, account_id: str) -> Entry | web.Response:
    """The account's integration, or the page saying why there is none: 503 while the
    config topic is still being read, 404 when the account has no integration."""
    store = console_of(request).store
    entry = store.get(account_id)
    if entry is not None:
        return entry
    if not store.ready:
        return message(
            request,
            503,
            "Still loading",
            "The console is still reading the config topic. Try again in a moment.",
        )
    return message(
        request,
        404,
        "No integration",
        f"Account {account_id} has no Generic HTTP integration.",
        link=(urls.ACCOUNTS, "Back to accounts"),
    )


def see_other(location: str) -> web.Response:
    """A 303 redirect (POST/redirect/GET)."""
    return web.Response(status=303, headers={"Location": location})
