"""The integration form: HTML form fields ↔ the config dict of docs/contract.md §3.

Control names are the config's field names; custom headers are rows of
``header_name_<i>``, ``header_value_<i>``, ``header_remove_<i>`` and, for a
header that is already saved, ``header_saved_<i>`` (its saved name: a display hint
for the row's placeholder and messages, never used to pick a value).

Saved header values never go back to the browser: a saved row shows its name
and an empty value box. On save, an empty value keeps the value saved under the
row's header name — unless a URL now goes to another origin (:mod:`.saved`) — a
new value replaces it and the remove box drops the header. Values typed into the
form are shown again only when the same form comes back (Add header, or an
error), like any other typed text.

Signing secrets have no control of their own: the form shows each saved one by its
position and :func:`~stream_wfm.integrations.signing.fingerprint`, and saving keeps
them, as :mod:`.saved` allows. The signing buttons (:mod:`.signing`) save the form with
the secrets they ask for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Final

from multidict import MultiDictProxy

from stream_wfm.console.inputs import strict_int, strict_number
from stream_wfm.console.saved import SavedSecrets
from stream_wfm.integrations.exceptions import FieldError
from stream_wfm.integrations.model import IntegrationConfig
from stream_wfm.integrations.signing import MAX_SIGNING_SECRETS, fingerprint

#: The checkboxes, in the order of the page.
EVENT_FIELDS: Final = (
    "agent_states",
    "send_all_agent_states",
    "agent_login_events",
    "agent_logout_events",
    "end_call_events",
)
BOOL_FIELDS: Final = ("send_body_as_json", *EVENT_FIELDS, "enabled")
#: The page's label of each config field (docs/contract.md §9).
LABELS: Final = {
    "account_id": "Account ID",
    "agent_event_url": "Agent Event URL",
    "call_event_url": "Call Event URL",
    "send_body_as_json": "Send body as JSON",
    "agent_states": "Agent States",
    "send_all_agent_states": "Send All Agent States",
    "agent_login_events": "Agent Login Events",
    "agent_logout_events": "Agent Logout Events",
    "end_call_events": "End Call Events",
    "headers": "Custom Headers",
    "signing_secrets": "Signing secrets",
    "enabled": "Enabled",
    "max_retries": "Max Retries",
    "timeout_seconds": "Timeout (seconds)",
}
#: More rows than this in one post is not a form of ours.
MAX_ROWS: Final = 64
#: Longer numbers than these are passed on as text (and refused by validation).
MAX_INTEGER_DIGITS: Final = 18
MAX_NUMBER_CHARS: Final = 32

ROWS_NEED_ATTENTION: Final = "some rows need attention (see below)"
MOVED_ORIGIN: Final = (
    "a URL now goes to another site (scheme, host or port), so saved header values are "
    "not sent there: type them again (see below)"
)
_ROW_MOVED: Final = (
    "Type this value again: a URL now goes to another site, and a saved value is only "
    "sent to the site it was saved for."
)
MOVED_SIGNING: Final = (
    "a URL now goes to another site (scheme, host or port), and saved signing secrets are "
    "only used for the sites they were made for: Generate secret replaces them with a new "
    "one, or keep the URLs on their sites"
)
_ROW_RENAMED: Final = (
    "Type a value for this header: a saved value stays with the name it was saved under."
)

_ROW_KEY = re.compile(r"header_(?:name|value|saved|remove)_([0-9]{1,3})", re.ASCII)


@dataclass(slots=True)
class HeaderRow:
    name: str = ""
    value: str = ""  # typed in this form; never a saved value
    saved: str = ""  # the saved header this row shows, "" for a new row
    remove: bool = False
    error: str | None = None


@dataclass(slots=True)
class IntegrationForm:
    """What the form shows or what was posted, as text."""

    account_id: str = ""
    agent_event_url: str = ""
    call_event_url: str = ""
    flags: dict[str, bool] = field(default_factory=lambda: {"enabled": True})
    max_retries: str = "3"
    timeout_seconds: str = "10"
    rows: list[HeaderRow] = field(default_factory=list)

    def with_empty_row(self) -> IntegrationForm:
        return replace(self, rows=[*self.rows, HeaderRow()])


def blank_form() -> IntegrationForm:
    return IntegrationForm(rows=[HeaderRow()])


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def form_from_config(config: IntegrationConfig) -> IntegrationForm:
    """The form for a saved config: header names only, values left empty."""
    return IntegrationForm(
        account_id=config.account_id,
        agent_event_url=config.agent_event_url or "",
        call_event_url=config.call_event_url or "",
        flags={name: bool(getattr(config, name)) for name in BOOL_FIELDS},
        max_retries=str(config.max_retries),
        timeout_seconds=_number_text(config.timeout_seconds),
        rows=[HeaderRow(name=name, saved=name) for name in config.headers],
    )


def _text(post: MultiDictProxy[Any], name: str) -> str:
    value = post.get(name)
    return value.strip() if isinstance(value, str) else ""


def _raw(post: MultiDictProxy[Any], name: str) -> str:
    value = post.get(name)
    return value if isinstance(value, str) else ""


def form_from_post(post: MultiDictProxy[Any], account_id: str | None) -> IntegrationForm:
    """The posted form; ``account_id`` is the page's account (None: the new-integration form)."""
    indexes = sorted(
        {
            index
            for key in post
            if (m := _ROW_KEY.fullmatch(key))
            and (index := strict_int(m.group(1), max_digits=3)) is not None
        }
    )
    rows = [
        HeaderRow(
            name=_text(post, f"header_name_{i}"),
            value=_raw(post, f"header_value_{i}"),
            saved=_raw(post, f"header_saved_{i}"),
            remove=f"header_remove_{i}" in post,
        )
        for i in indexes[:MAX_ROWS]
    ]
    return IntegrationForm(
        account_id=account_id if account_id is not None else _text(post, "account_id"),
        agent_event_url=_text(post, "agent_event_url"),
        call_event_url=_text(post, "call_event_url"),
        flags={name: name in post for name in BOOL_FIELDS},
        max_retries=_text(post, "max_retries"),
        timeout_seconds=_text(post, "timeout_seconds"),
        rows=rows,
    )


def _integer_or_text(text: str) -> int | str:
    number = strict_int(text, max_digits=MAX_INTEGER_DIGITS)
    return text if number is None else number


def _number_or_text(text: str) -> float | int | str:
    number = strict_number(text, max_chars=MAX_NUMBER_CHARS)
    return text if number is None else number


def _headers(rows: list[HeaderRow], saved: SavedSecrets, moved: bool) -> dict[str, str]:
    """The headers the rows ask for; sets ``row.error`` on rows that make no sense.

    An empty value keeps the value saved under the row's own name (``row.saved`` only
    words the message), and only when no URL ``moved`` to another origin."""
    headers: dict[str, str] = {}
    for row in rows:
        row.error = None
        if row.remove:
            continue
        if not row.name:
            if row.value or row.saved:
                row.error = "Enter a header name, or tick Remove."
            continue
        value = row.value
        if not value:
            kept = saved.value(row.name)
            if kept is None:
                if row.saved and saved.value(row.saved) is not None:
                    row.error = _ROW_RENAMED
                elif row.saved:
                    row.error = "This header is no longer saved; enter its value again."
                else:
                    row.error = "Enter a header value."
                continue
            if moved:
                row.error = _ROW_MOVED
                continue
            value = kept
        if row.name in headers:
            row.error = "This header name is given more than once."
            continue
        headers[row.name] = value
    return headers


def _kept_disabling(form: IntegrationForm, saved: IntegrationConfig | None) -> dict[str, Any]:
    """``disabled_reason`` and ``disabled_at`` of a saved integration the service disabled
    (docs/contract.md §10), kept while ``Enabled`` stays unticked: its events stay
    dead-lettered, to be redriven on re-enable, rather than becoming an operator's
    disabling (nothing sent, nothing kept). Ticking ``Enabled`` clears them."""
    if saved is None or saved.disabled_reason is None or form.flags.get("enabled", False):
        return {}
    return {"disabled_reason": saved.disabled_reason, "disabled_at": saved.disabled_at}


def config_data(
    form: IntegrationForm, saved: IntegrationConfig | None, signing: list[str] | None = None
) -> tuple[dict[str, Any], list[FieldError]]:
    """The config dict to validate, and the problems of the header rows and the signing
    secrets (empty when everything made sense).

    ``saved`` is the account's saved config (None: a new integration); rows whose value
    box is left empty keep its values as :class:`~.saved.SavedSecrets` allows, and its
    ``disabled_reason``/``disabled_at`` are kept while ``Enabled`` stays unticked.
    ``signing``: the signing secrets a signing button asks for, newest first (None: the
    saved ones); saved ones among them are kept only as :class:`~.saved.SavedSecrets`
    allows.
    """
    secrets = SavedSecrets.of(saved)
    moved = not secrets.may_go_to((form.agent_event_url, form.call_event_url))
    headers = _headers(form.rows, secrets, moved)
    signing_secrets = list(secrets.signing) if signing is None else signing
    carried = any(secret in secrets.signing for secret in signing_secrets)
    data: dict[str, Any] = {
        "account_id": form.account_id,
        "agent_event_url": form.agent_event_url,
        "call_event_url": form.call_event_url,
        **{name: form.flags.get(name, False) for name in BOOL_FIELDS},
        "headers": headers,
        "max_retries": _integer_or_text(form.max_retries),
        "timeout_seconds": _number_or_text(form.timeout_seconds),
        **_kept_disabling(form, saved),
    }
    if signing_secrets and not (carried and moved):
        data["signing_secrets"] = signing_secrets
    problems: list[FieldError] = []
    if any(row.error == _ROW_MOVED for row in form.rows):
        problems.append(FieldError("headers", MOVED_ORIGIN))
    elif any(row.error is not None for row in form.rows):
        problems.append(FieldError("headers", ROWS_NEED_ATTENTION))
    if carried and moved:
        problems.append(FieldError("signing_secrets", MOVED_SIGNING))
    return data, problems


@dataclass(frozen=True, slots=True)
class SavedSigningSecret:
    """A saved signing secret as the page shows it: never the secret itself."""

    position: int  # 1 is the newest
    fingerprint: str


@dataclass(frozen=True, slots=True)
class SigningView:
    """The ``Signing secrets`` section of the form: the saved secrets, and which buttons
    make sense. ``moved``: a URL of the form goes to another site than the saved ones,
    where the saved secrets are not used (``Generate secret`` then replaces them)."""

    secrets: tuple[SavedSigningSecret, ...] = ()
    moved: bool = False

    @property
    def can_generate(self) -> bool:
        return not self.secrets or self.moved

    @property
    def can_rotate(self) -> bool:
        return 0 < len(self.secrets) < MAX_SIGNING_SECRETS and not self.moved


def signing_view(form: IntegrationForm, saved: IntegrationConfig | None) -> SigningView:
    """The signing section for ``form`` over the account's ``saved`` config."""
    if saved is None or not saved.signing_secrets:
        return SigningView()
    shown = tuple(
        SavedSigningSecret(position, fingerprint(secret.get_secret_value()))
        for position, secret in enumerate(saved.signing_secrets, start=1)
    )
    moved = not SavedSecrets.of(saved).may_go_to((form.agent_event_url, form.call_event_url))
    return SigningView(shown, moved)


def _sentence(field_name: str, message: str) -> str:
    label = LABELS.get(field_name)
    if label is None or field_name in ("headers", "signing_secrets"):
        text = f"{field_name}: {message}" if label is None and field_name else message
    else:
        text = f"{label} {message}"
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def errors_by_control(errors: list[FieldError], controls: frozenset[str]) -> dict[str, list[str]]:
    """Validation messages as sentences, keyed by the control they belong to;
    ``""`` collects those that belong to no control (shown at the top of the form)."""
    grouped: dict[str, list[str]] = {}
    for error in errors:
        key = error.field if error.field in controls else ""
        grouped.setdefault(key, []).append(_sentence(error.field, error.message))
    return grouped
