"""Access: sign-in, sign-out, the session middleware and CSRF checks.

Every request except the sign-in page and static files needs a signed-in
session. Every POST, the sign-in form included, must carry the session's CSRF
token in the ``csrf_token`` field, or it is refused with 403. Cookies are
``Secure`` when the request came over https (directly, or as a trusted proxy
says: :mod:`~stream_wfm.console.clients`). Sign-in attempts go through the
limiter (:mod:`~stream_wfm.console.ratelimit`) first.
"""

from __future__ import annotations

import hmac
import logging
from typing import Final
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from stream_wfm.console import urls
from stream_wfm.console.pages import message, render, see_other
from stream_wfm.console.ratelimit import Attempt, seconds_text
from stream_wfm.console.sessions import COOKIE_NAME, DEVICE_COOKIE_NAME, DEVICE_SECONDS, Session
from stream_wfm.console.state import SESSION, client_of, console_of, session_of

log = logging.getLogger(__name__)

CSRF_FIELD: Final = "csrf_token"
_PUBLIC_PATHS: Final = frozenset({urls.SIGN_IN})
_NO_SESSION_PATHS: Final = frozenset({urls.READYZ})
_STATIC_PREFIX: Final = "/static/"


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, session: Session
) -> None:
    console = console_of(request)
    response.set_cookie(
        COOKIE_NAME,
        console.sessions.dump(session),
        max_age=max(0, session.expires - int(console.sessions.now())),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=client_of(request).https,
    )


def _set_device_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    response.set_cookie(
        DEVICE_COOKIE_NAME,
        value,
        max_age=DEVICE_SECONDS,
        path=urls.SIGN_IN,
        httponly=True,
        samesite="Strict",
        secure=client_of(request).https,
    )


def _client(request: web.Request) -> str:
    return client_of(request).address


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(_STATIC_PREFIX) or request.path in _NO_SESSION_PATHS:
        return await handler(request)
    console = console_of(request)
    session = console.sessions.load(request.cookies.get(COOKIE_NAME))
    fresh = session is None
    if session is None:
        session = console.sessions.anonymous()
    request[SESSION] = session
    response = await _guarded(request, handler, session)
    if COOKIE_NAME not in response.cookies:
        # A new visitor's session, or a signed-in one with this request as its last activity.
        renewed = session if fresh else console.sessions.touch(session)
        if renewed is not None:
            set_session_cookie(request, response, renewed)
    return response


async def _guarded(request: web.Request, handler: Handler, session: Session) -> web.StreamResponse:
    if request.method == "POST":
        form = await request.post()
        token = form.get(CSRF_FIELD)
        if not isinstance(token, str) or not console_of(request).sessions.csrf_ok(session, token):
            log.warning(
                "console form refused: missing or wrong CSRF token",
                extra={"path": request.path, "client": _client(request)},
            )
            return message(
                request,
                403,
                "Form refused",
                "This form was not sent from a page of this console, or it has expired. "
                "Go back, reload the page and try again.",
            )
    if session.user is None and request.path not in _PUBLIC_PATHS:
        if request.method in ("GET", "HEAD"):
            return see_other(f"{urls.SIGN_IN}?next={quote(request.path_qs, safe='')}")
        return message(request, 403, "Signed out", "Sign in first.", link=(urls.SIGN_IN, "Sign in"))
    return await handler(request)


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    if session_of(request).user is not None:
        return see_other(urls.safe_next(request.query.get("next")))
    return render(
        request,
        "sign_in.html",
        {"next": request.query.get("next", ""), "error": None, "username": ""},
    )


async def sign_in(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    form = await request.post()
    username = form.get("username")
    password = form.get("password")
    target = form.get("next")
    next_path = target if isinstance(target, str) else ""
    client = _client(request)
    user = username if isinstance(username, str) else ""
    device_cookie = request.cookies.get(DEVICE_COOKIE_NAME)
    attempt = Attempt(user, client, console.sessions.device_of(device_cookie, user))
    wait = console.limiter.retry_after(attempt)
    if wait is not None:
        seconds = seconds_text(wait)
        log.warning("console sign-in refused: too many failures", extra={"client": client})
        response = render(
            request,
            "sign_in.html",
            {
                "next": next_path,
                "username": user,
                "error": f"Too many failed sign-in attempts. Try again in {seconds} seconds.",
            },
            status=429,
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    if isinstance(password, str) and _credentials_ok(request, user, password):
        console.limiter.success(attempt)
        session = console.sessions.signed_in(user)
        log.info("console sign-in", extra={"user": user, "client": client})
        response = see_other(urls.safe_next(next_path))
        set_session_cookie(request, response, session)
        known = device_cookie if attempt.device is not None else None
        _set_device_cookie(request, response, known or console.sessions.device_cookie(user))
        return response
    console.limiter.failure(attempt)
    log.warning(
        "console sign-in failed",
        extra={"client": client, "known_browser": attempt.device is not None},
    )
    return render(
        request,
        "sign_in.html",
        {
            "next": next_path,
            "username": username if isinstance(username, str) else "",
            "error": "Wrong username or password.",
        },
        status=401,
    )


def _credentials_ok(request: web.Request, username: str, password: str) -> bool:
    settings = console_of(request).settings
    secret = settings.console_password
    if secret is None:
        return False
    user_ok = hmac.compare_digest(username.encode(), settings.console_username.encode())
    password_ok = hmac.compare_digest(password.encode(), secret.get_secret_value().encode())
    return user_ok & password_ok


async def sign_out(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    console.sessions.revoke(session_of(request))
    response = see_other(urls.SIGN_IN)
    response.del_cookie(
        COOKIE_NAME, path="/", secure=client_of(request).https, httponly=True, samesite="Strict"
    )
    return response
