"""An account's dead letters and the ``Redrive`` button.

Reading and redriving use :mod:`stream_wfm.retry.redrive`, the code behind
``stream-wfm dlq list|redrive``; both block, so they run in a thread. The
page lists the newest :data:`SHOWN` dead letters. ``Redrive`` re-delivers the
account's dead letters up to the moment the page was shown (``until_ms``), so
letters that arrive while the administrator reads the page are not redriven
unseen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from stream_wfm.console import urls
from stream_wfm.console.inputs import strict_int
from stream_wfm.console.pages import message, render
from stream_wfm.console.state import console_of, session_of
from stream_wfm.retry.dead_letters import DlqEntry, DlqFilter, read_dead_letters
from stream_wfm.retry.exceptions import DlqError, RedriveError
from stream_wfm.retry.redrive import RedriveReport, redrive

log = logging.getLogger(__name__)

SHOWN: Final = 50
READ_TIMEOUT: Final = 20.0
#: Unix milliseconds have 13 digits until the year 2286.
MAX_MS_DIGITS: Final = 15


def utc_ms(ms: int | None) -> str:
    """Unix milliseconds as ``YYYY-MM-DD HH:MM:SS UTC`` (a Jinja filter)."""
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def _read(request: web.Request, flt: DlqFilter, limit: int | None) -> list[DlqEntry]:
    settings = console_of(request).settings
    return await asyncio.to_thread(
        read_dead_letters, settings, flt, limit=limit, timeout=READ_TIMEOUT
    )


def _page(
    request: web.Request,
    account_id: str,
    *,
    letters: list[DlqEntry] | None,
    error: str | None = None,
    report: RedriveReport | None = None,
    status: int = 200,
) -> web.Response:
    newest_first = list(reversed(letters or []))
    until_ms = max((dl.record.dead_lettered_at_ms for dl in newest_first), default=0) + 1
    return render(
        request,
        "dead_letters.html",
        {
            "account_id": account_id,
            "letters": newest_first,
            "error": error,
            "report": report,
            "shown": SHOWN,
            "until_ms": until_ms,
            "account_url": urls.account_url(account_id),
            "action": urls.account_url(account_id, "/dead-letters"),
            "utc_ms": utc_ms,
        },
        status,
    )


async def dead_letters(request: web.Request) -> web.StreamResponse:
    account_id = request.match_info["account_id"]
    try:
        letters = await _read(request, DlqFilter(account_id=account_id), SHOWN)
    except DlqError as exc:
        return _page(request, account_id, letters=None, error=str(exc), status=503)
    return _page(request, account_id, letters=letters)


async def redrive_dead_letters(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    account_id = request.match_info["account_id"]
    post = await request.post()
    raw_until = post.get("until_ms")
    until_ms: int | None = None
    if isinstance(raw_until, str) and raw_until:
        until_ms = strict_int(raw_until, max_digits=MAX_MS_DIGITS)
        if until_ms is None or until_ms < 0:
            return message(
                request,
                400,
                "Bad request",
                "The page's time bound (until_ms) is not a number of milliseconds. "
                "Reload the dead letters and try again.",
                link=(urls.account_url(account_id, "/dead-letters"), "Dead letters"),
            )
    flt = DlqFilter(account_id=account_id, until_ms=until_ms or int(time.time() * 1000))
    report: RedriveReport | None = None
    error: str | None = None
    try:
        letters = await _read(request, flt, None)
        report = await asyncio.to_thread(redrive, console.settings, letters)
    except RedriveError as exc:
        report, error = exc.report, str(exc)
    except DlqError as exc:
        error = f"Nothing was redriven: {exc}"
    log.info(
        "console redrive",
        extra={
            "account_id": account_id,
            "user": session_of(request).user,
            "redriven": report.redriven if report else 0,
        },
    )
    try:
        shown = await _read(request, DlqFilter(account_id=account_id), SHOWN)
    except DlqError as exc:
        return _page(request, account_id, letters=None, error=str(exc), report=report, status=503)
    return _page(
        request,
        account_id,
        letters=shown,
        error=error,
        report=report,
        status=200 if error is None else 503,
    )
