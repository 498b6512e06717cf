"""The ``Re-enable`` button of an integration the service disabled, and its progress page
(docs/contract.md §10, §9).

``POST /accounts/<id>/reenable`` (CSRF-checked like every form) starts the account's
re-enable in the background (:mod:`~stream_wfm.console.jobs`) — or, while one runs,
starts nothing — and redirects to ``GET /accounts/<id>/reenable``, which shows its
progress (``Redriving 120 of 400 dead letters``), reloading itself every
:data:`REFRESH_SECONDS` until it is done, then the result.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from stream_wfm.console import urls
from stream_wfm.console.healthview import moment
from stream_wfm.console.pages import entry_or_page, message, render, see_other
from stream_wfm.console.state import console_of, session_of

REFRESH_SECONDS: Final = 2


def _account_id(request: web.Request) -> str:
    return request.match_info["account_id"]


async def reenable_integration(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    account_id = _account_id(request)
    progress = urls.account_url(account_id, "/reenable")
    if console.jobs.running(account_id) is not None:
        return see_other(progress)  # a second click: the same job, not a second redrive
    entry = entry_or_page(request, account_id)
    if isinstance(entry, web.Response):
        return entry
    if entry.disabled_reason is None:
        return message(
            request,
            409,
            "Nothing to re-enable",
            f"The integration of account {account_id} was not disabled by the service: "
            "it is enabled, or an operator disabled it. Use Enabled in the form.",
            link=(urls.account_url(account_id), "Back to the integration"),
        )
    console.jobs.start(account_id, session_of(request).user)
    return see_other(progress)


async def reenable_status(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    account_id = _account_id(request)
    job = console.jobs.get(account_id)
    if job is None:
        return message(
            request,
            404,
            "No re-enable",
            f"No re-enable of account {account_id} was started from this console since it started.",
            link=(urls.account_url(account_id), "Back to the integration"),
        )
    now = console.health.now()
    result = job.result
    return render(
        request,
        "reenable.html",
        {
            "account_id": account_id,
            "account_url": urls.account_url(account_id),
            "job": job,
            "result": result,
            "refresh": REFRESH_SECONDS if job.running else None,
            "since": (
                None
                if result is None or result.failing_since is None
                else moment(result.failing_since, now)
            ),
            "started": moment(job.started_at, now),
        },
    )
