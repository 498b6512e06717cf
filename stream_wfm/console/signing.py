"""The integration page's signing buttons (docs/contract.md §9, §11): ``Generate secret``,
``Rotate secret`` and ``Remove secret``.

Each button submits the integration form as it is shown and saves it like ``Save``
(:func:`~stream_wfm.console.views.save_form`: the same checks, the same write and read
back), with the signing secrets it asks for, worked out here from the saved config alone:

* ``Generate secret``: one new secret (``whsec_`` and the base64 of 32 bytes from
  :func:`secrets.token_bytes`) — when there is none, or when a URL of the form goes to
  another site, where the saved ones are not used (:mod:`~stream_wfm.console.saved`): it
  then replaces them;
* ``Rotate secret``: a new secret first, the saved ones kept after it (at most 3 in all);
* ``Remove secret``: the saved secret chosen by its fingerprint is dropped (the last one
  too: requests are then no longer signed).

A new secret is shown once, on the page the save redirects to
(:mod:`~stream_wfm.console.reveal`); no page shows a saved one, and no form field carries
one. Log lines name the action and the number of secrets, never a secret.
"""

from __future__ import annotations

import enum
import logging

from aiohttp import web

from stream_wfm.console.forms import IntegrationForm, form_from_post, signing_view
from stream_wfm.console.pages import entry_or_page, message
from stream_wfm.console.saved import SavedSecrets
from stream_wfm.console.state import console_of, session_of
from stream_wfm.console.views import refused_page, save_form
from stream_wfm.integrations.exceptions import FieldError
from stream_wfm.integrations.signing import MAX_SIGNING_SECRETS, fingerprint, new_signing_secret
from stream_wfm.integrations.store import Entry

log = logging.getLogger(__name__)

__all__ = ["SigningAction", "account_signing", "new_integration_signing"]


class SigningAction(enum.StrEnum):
    """The ``action`` value of each signing button."""

    GENERATE = "generate_secret"
    ROTATE = "rotate_secret"
    REMOVE = "remove_secret"


#: The select that chooses the secret ``Remove secret`` removes (by fingerprint).
REMOVE_FIELD = "remove_secret"


async def account_signing(request: web.Request) -> web.StreamResponse:
    """A signing button of an account's page."""
    account_id = request.match_info["account_id"]
    entry = entry_or_page(request, account_id)
    if isinstance(entry, web.Response):
        return entry
    return await _act(request, account_id, entry)


async def new_integration_signing(request: web.Request) -> web.StreamResponse:
    """``Generate secret`` on the new-integration page: creates it with a secret."""
    if not console_of(request).store.ready:
        return message(request, 503, "Still loading", "Try again in a moment.")
    return await _act(request, None, None)


def _refused(
    request: web.Request,
    account_id: str | None,
    form: IntegrationForm,
    entry: Entry | None,
    problem: str,
) -> web.Response:
    return refused_page(
        request,
        account_id=account_id,
        form=form,
        entry=entry,
        problems=[FieldError("signing_secrets", problem)],
    )


async def _act(request: web.Request, account_id: str | None, entry: Entry | None) -> web.Response:
    post = await request.post()
    try:
        action = SigningAction(str(post.get("action", "")))
    except ValueError:
        return message(request, 400, "Unknown action", "Use one of the buttons of the page.")
    form = form_from_post(post, account_id)
    saved_config = None if entry is None else entry.config
    saved = list(SavedSecrets.of(saved_config).signing)
    new_secret: str | None = None
    if action is SigningAction.GENERATE:
        if not signing_view(form, saved_config).can_generate:
            problem = "this integration has signing secrets already: Rotate secret adds one"
            return _refused(request, account_id, form, entry, problem)
        new_secret = new_signing_secret()
        signing = [new_secret]
    elif action is SigningAction.ROTATE:
        if not saved:
            problem = "there is no signing secret to rotate: Generate secret makes the first"
            return _refused(request, account_id, form, entry, problem)
        if len(saved) >= MAX_SIGNING_SECRETS:
            problem = (
                f"an integration has at most {MAX_SIGNING_SECRETS} signing secrets: remove one "
                "(Remove secret) before rotating"
            )
            return _refused(request, account_id, form, entry, problem)
        new_secret = new_signing_secret()
        signing = [new_secret, *saved]
    else:
        chosen = str(post.get(REMOVE_FIELD, ""))
        signing = [secret for secret in saved if fingerprint(secret) != chosen]
        if len(signing) == len(saved):
            problem = "the secret to remove is not saved (any more): choose one from the list"
            return _refused(request, account_id, form, entry, problem)
    response = await save_form(
        request, account_id, entry, form, signing=signing, new_secret=new_secret
    )
    if response.status == 303:
        log.info(
            "signing secrets changed from the console",
            extra={
                "account_id": form.account_id,
                "user": session_of(request).user,
                "action": str(action),
                "signing_secrets": len(signing),
            },
        )
    return response
