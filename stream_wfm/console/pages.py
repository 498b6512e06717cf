"""Rendering pages: every template gets the session's CSRF token and user."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from stream_wfm.console.state import console_of, session_of


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


def see_other(location: str) -> web.Response:
    """A 303 redirect (POST/redirect/GET)."""
    return web.Response(status=303, headers={"Location": location})
