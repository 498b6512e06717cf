"""The integration page's other buttons: ``Send test event`` and ``Delete integration``."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from stream_wfm.console import urls
from stream_wfm.console.forms import form_from_config, form_from_post
from stream_wfm.console.pages import entry_or_page, message, render, see_other
from stream_wfm.console.state import READ_BACK_TIMEOUT, console_of, session_of
from stream_wfm.console.testevent import Sample, send_test_event
from stream_wfm.console.views import check_form, integration_page, refused_page
from stream_wfm.integrations.writer import ConfigWriteError

log = logging.getLogger(__name__)


async def test_event(request: web.Request) -> web.StreamResponse:
    """``Send test event``: the page's form as it is (saved or not) when it was posted —
    the button submits the integration form — else the saved integration."""
    found = entry_or_page(request, request.match_info["account_id"])
    if isinstance(found, web.Response):
        return found
    post = await request.post()
    try:
        sample = Sample(str(post.get("sample", "")))
    except ValueError:
        return message(request, 400, "Unknown sample", "Choose a sample event from the list.")
    account_id = found.config.account_id
    posted_form = "agent_event_url" in post or "call_event_url" in post
    form = form_from_post(post, account_id) if posted_form else form_from_config(found.config)
    config, problems = check_form(form, found)
    if config is None:
        return refused_page(
            request,
            account_id=account_id,
            form=form,
            entry=found,
            problems=problems,
            refused="Nothing was sent",
            sample=sample,
        )
    result = await send_test_event(config, sample, console_of(request).transport)
    log.info(
        "console sent a test event",
        extra={
            "account_id": account_id,
            "event_id": result.event_id,
            "outcome": result.outcome,
            "status": result.status,
            "unsaved": config != found.config,
        },
    )
    return integration_page(
        request,
        account_id=account_id,
        form=form,
        entry=found,
        test=result,
        sample=sample,
        test_unsaved=config != found.config,
    )


async def confirm_delete(request: web.Request) -> web.StreamResponse:
    found = entry_or_page(request, request.match_info["account_id"])
    if isinstance(found, web.Response):
        return found
    account_id = found.config.account_id
    return render(
        request,
        "confirm_delete.html",
        {
            "account_id": account_id,
            "config": found.config,
            "action": urls.account_url(account_id, "/delete"),
            "account_url": urls.account_url(account_id),
        },
    )


async def delete(request: web.Request) -> web.StreamResponse:
    found = entry_or_page(request, request.match_info["account_id"])
    if isinstance(found, web.Response):
        return found
    console = console_of(request)
    account_id = found.config.account_id
    try:
        await asyncio.to_thread(console.writer.delete, account_id)
    except ConfigWriteError as exc:
        return message(
            request,
            503,
            "Not deleted",
            f"Nothing was deleted: {exc}.",
            link=(urls.account_url(account_id), "Back to the integration"),
        )
    log.info(
        "integration deleted from the console",
        extra={"account_id": account_id, "user": session_of(request).user},
    )
    await console.changes.wait_until(
        lambda: console.store.get(account_id) is None, READ_BACK_TIMEOUT
    )
    return see_other(f"{urls.ACCOUNTS}?deleted={urls.quote_param(account_id)}")
