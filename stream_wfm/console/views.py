"""The accounts list and the "Generic HTTP" integration pages (view and save), with
each account's endpoint health (docs/contract.md §9, §10). The signing buttons save
through :func:`save_form` too (:mod:`~stream_wfm.console.signing`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from aiohttp import web

from stream_wfm.console import urls
from stream_wfm.console.forms import (
    EVENT_FIELDS,
    LABELS,
    IntegrationForm,
    blank_form,
    config_data,
    errors_by_control,
    form_from_config,
    form_from_post,
    signing_view,
)
from stream_wfm.console.healthview import integration_health, labels_of
from stream_wfm.console.pages import message, render, see_other
from stream_wfm.console.state import READ_BACK_TIMEOUT, Console, console_of, session_of
from stream_wfm.console.testevent import SAMPLE_LABELS, Sample, SentTestEvent, default_sample
from stream_wfm.integrations.exceptions import ConfigValidationError, FieldError
from stream_wfm.integrations.model import IntegrationConfig, validate_config
from stream_wfm.integrations.store import Entry
from stream_wfm.integrations.writer import ConfigWriteError

log = logging.getLogger(__name__)

#: Short names of the event selections, for the accounts list.
EVENT_SHORT: Final = {
    "agent_states": "States",
    "send_all_agent_states": "All states",
    "agent_login_events": "Login",
    "agent_logout_events": "Logout",
    "end_call_events": "End call",
}
_EDIT_CONTROLS: Final = frozenset({*LABELS} - {"account_id"})
_NEW_CONTROLS: Final = frozenset(LABELS)


def _account_id(request: web.Request) -> str:
    return request.match_info["account_id"]


def _loading(request: web.Request) -> web.Response:
    store = console_of(request).store
    return message(
        request,
        503,
        "Still loading",
        f"The console is still reading the config topic ({store.status}). Try again in a moment.",
    )


def _matches(config: IntegrationConfig, query: str) -> bool:
    needle = query.casefold()
    return any(
        needle in (text or "").casefold()
        for text in (config.account_id, config.agent_event_url, config.call_event_url)
    )


async def accounts_list(request: web.Request) -> web.StreamResponse:
    store = console_of(request).store
    query = request.query.get("q", "").strip()
    entries = store.accounts()
    health_of = labels_of(console_of(request), entries)
    rows = [
        {
            "config": entry.config,
            "url": urls.account_url(account_id),
            "events": [EVENT_SHORT[name] for name in EVENT_FIELDS if getattr(entry.config, name)],
            "health": health_of(account_id),
        }
        for account_id, entry in sorted(entries.items())
        if not query or _matches(entry.config, query)
    ]
    return render(
        request,
        "accounts.html",
        {
            "rows": rows,
            "query": query,
            "total": len(entries),
            "ready": store.ready,
            "status": store.status,
            "health_status": None if console_of(request).health.ready else "loading",
            "deleted": request.query.get("deleted"),
        },
    )


def integration_page(
    request: web.Request,
    *,
    account_id: str | None,
    form: IntegrationForm,
    entry: Entry | None,
    errors: dict[str, list[str]] | None = None,
    notice: tuple[str, str] | None = None,
    test: SentTestEvent | None = None,
    sample: Sample | None = None,
    status: int = 200,
    refused: str = "Nothing was saved",
    test_unsaved: bool = False,
    revealed: str | None = None,
) -> web.Response:
    """The integration form; ``account_id`` None is the new-integration page. ``refused``
    heads the list of ``errors``: what did not happen; ``test_unsaved``: the ``test``
    was sent with settings that are not saved; ``revealed``: a new signing secret, shown
    this once."""
    if sample is None and entry is not None:
        sample = default_sample(entry.config)
    context: dict[str, Any] = {
        "account_id": account_id,
        "form": form,
        "entry": entry,
        "errors": errors or {},
        "notice": notice,
        "labels": LABELS,
        "event_fields": EVENT_FIELDS,
        "test": test,
        "test_unsaved": test_unsaved,
        "refused": refused,
        "samples": SAMPLE_LABELS,
        "sample": sample,
        "action": urls.NEW_INTEGRATION if account_id is None else urls.account_url(account_id),
        "account_url": None if account_id is None else urls.account_url(account_id),
        "signing": signing_view(form, None if entry is None else entry.config),
        "signing_action": urls.signing_url(account_id),
        "revealed": revealed,
        **integration_health(console_of(request), entry),
    }
    return render(request, "integration.html", context, status)


_NOTICES: Final = {
    "1": ("success", "Saved. This is the integration as read back from the config topic."),
    "0": (
        "warning",
        "Saved to the config topic, but this console has not read it back yet. "
        "Reload the page in a moment.",
    ),
}
#: After a save that enabled an integration the service had disabled.
_NOT_REDRIVEN: Final = (
    "warning",
    "Saved: the integration is enabled again. The dead letters of its failure period were "
    "not redriven (Re-enable does both); redrive them from View dead letters.",
)


async def show_integration(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    account_id = _account_id(request)
    entry = console.store.get(account_id)
    if entry is None:
        if not console.store.ready:
            return _loading(request)
        return message(
            request,
            404,
            "No integration",
            f"Account {account_id} has no Generic HTTP integration.",
            link=(urls.NEW_INTEGRATION, "New integration"),
        )
    token = request.query.get(urls.REVEAL_PARAM)
    revealed = None
    if token:
        revealed = console.reveals.take(session_of(request).sid, account_id, token)
    return integration_page(
        request,
        account_id=account_id,
        form=form_from_config(entry.config),
        entry=entry,
        notice=(
            _NOT_REDRIVEN
            if request.query.get("redriven") == "0" and not entry.disabled_reason
            else _NOTICES.get(request.query.get("saved", ""))
        ),
        revealed=revealed,
    )


async def new_integration(request: web.Request) -> web.StreamResponse:
    form = blank_form()
    form.account_id = request.query.get("account_id", "").strip()
    return integration_page(request, account_id=None, form=form, entry=None)


async def save_integration(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    account_id = _account_id(request)
    entry = console.store.get(account_id)
    if entry is None and not console.store.ready:
        return _loading(request)
    if entry is None:
        return message(
            request,
            404,
            "No integration",
            f"Account {account_id} has no Generic HTTP integration any more; "
            "it was deleted meanwhile.",
            link=(urls.NEW_INTEGRATION, "New integration"),
        )
    return await _save(request, account_id, entry)


async def create_integration(request: web.Request) -> web.StreamResponse:
    if not console_of(request).store.ready:
        return _loading(request)
    return await _save(request, None, None)


def check_form(
    form: IntegrationForm, entry: Entry | None, signing: list[str] | None = None
) -> tuple[IntegrationConfig | None, list[FieldError]]:
    """The config the form asks for, or None and why not. ``entry`` is the account's
    saved integration (None: a new one); its header values and signing secrets are kept
    as :mod:`~stream_wfm.console.saved` allows. ``signing``: the signing secrets a signing
    button asks for (None: the saved ones)."""
    data, row_problems = config_data(form, None if entry is None else entry.config, signing)
    try:
        config = validate_config(data, form.account_id)
    except ConfigValidationError as exc:
        return None, [*exc.field_errors, *row_problems]
    return (None, row_problems) if row_problems else (config, [])


def refused_page(
    request: web.Request,
    *,
    account_id: str | None,
    form: IntegrationForm,
    entry: Entry | None,
    problems: list[FieldError],
    refused: str = "Nothing was saved",
    sample: Sample | None = None,
) -> web.Response:
    """The form again (400) with ``problems`` next to their controls; ``refused``: what
    did not happen."""
    controls = _NEW_CONTROLS if account_id is None else _EDIT_CONTROLS
    return integration_page(
        request,
        account_id=account_id,
        form=form,
        entry=entry,
        errors=errors_by_control(problems, controls),
        sample=sample,
        status=400,
        refused=refused,
    )


async def _save(request: web.Request, account_id: str | None, entry: Entry | None) -> web.Response:
    """Save the posted form of ``account_id``'s page (None: the new-integration page)."""
    post = await request.post()
    form = form_from_post(post, account_id)
    if post.get("action") == "add_header":
        return integration_page(
            request, account_id=account_id, form=form.with_empty_row(), entry=entry
        )
    return await save_form(request, account_id, entry, form)


async def save_form(
    request: web.Request,
    account_id: str | None,
    entry: Entry | None,
    form: IntegrationForm,
    *,
    signing: list[str] | None = None,
    new_secret: str | None = None,
) -> web.Response:
    """Check and write ``form`` (with the ``signing`` secrets a signing button asks for),
    then redirect to the integration as read back; that page shows ``new_secret``, once."""
    console = console_of(request)
    config, problems = check_form(form, entry, signing)
    if account_id is None and console.store.get(form.account_id) is not None:
        problems.append(
            FieldError(
                "account_id",
                "already has an integration; open it from the accounts list to change it",
            )
        )
    if problems or config is None:
        return refused_page(
            request, account_id=account_id, form=form, entry=entry, problems=problems
        )
    try:
        await asyncio.to_thread(console.writer.put, config)
    except ConfigWriteError as exc:
        log.warning(
            "console could not save an integration",
            extra={"account_id": config.account_id, "error": str(exc)},
        )
        return integration_page(
            request,
            account_id=account_id,
            form=form,
            entry=entry,
            errors={"": [f"Nothing was saved: {exc}."]},
            status=503,
        )
    log.info(
        "integration saved from the console",
        extra={
            "account_id": config.account_id,
            "user": session_of(request).user,
            "header_names": ",".join(config.headers),
            "signing_secrets": len(config.signing_secrets),
        },
    )
    saved_config = config
    seen = await console.changes.wait_until(lambda: _has(console, saved_config), READ_BACK_TIMEOUT)
    query = "?saved=1" if seen else "?saved=0"
    if entry is not None and entry.disabled_reason is not None and config.disabled_reason is None:
        query += "&redriven=0"  # enabled with the form: nothing was redriven
    if new_secret is not None:
        token = console.reveals.put(session_of(request).sid, config.account_id, new_secret)
        query += f"&{urls.REVEAL_PARAM}={token}"
    return see_other(urls.account_url(config.account_id) + query)


def _has(console: Console, config: IntegrationConfig) -> bool:
    entry = console.store.get(config.account_id)
    return entry is not None and entry.config == config
