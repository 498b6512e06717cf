"""Endpoint health on the console's pages (docs/contract.md §10, §9): the label of each
account in the accounts list, and the details on its integration page.

Only what health records carry is shown: breaker state, counts, times, and
``last_error``, an outcome's short text (``HTTP 503``, ``timeout after 10s``, an
error class) that never holds a header value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from stream_wfm.console.health import (
    AccountHealth,
    EndpointHealth,
    Health,
    health_label,
    merge_health,
    parse_time,
)
from stream_wfm.console.state import Console
from stream_wfm.integrations.store import Entry

KIND_LABELS: Final = {"agent": "Agent events", "call": "Call events"}
STATE_TEXT: Final = {"closed": "Closed", "half_open": "Half-open (probing)", "open": "Open"}


def ago(seconds: float) -> str:
    """``seconds`` in the past as ``12 s ago``, ``5 min ago``, ``3 h ago``, ``4 days ago``."""
    if seconds < 1:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86_400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86_400)} days ago"


def moment(when: float | None, now: float) -> str:
    """A Unix time as ``2026-12-07 10:00:00 UTC (3 min ago)``; ``—`` for None."""
    if when is None:
        return "—"
    text = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{text} ({ago(now - when)})"


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """One endpoint's line on the integration page, as text."""

    kind: str
    state: str
    state_class: str
    failing_since: str | None
    last_success: str
    last_failure: str
    failures: str
    last_error: str
    deferred: str
    instances: int


def endpoint_row(endpoint: EndpointHealth, now: float) -> EndpointRow:
    attempts = endpoint.attempts_5m
    return EndpointRow(
        kind=KIND_LABELS.get(endpoint.kind, endpoint.kind),
        state=STATE_TEXT[endpoint.state],
        state_class=f"breaker-{endpoint.state.replace('_', '-')}",
        failing_since=(
            None if endpoint.failing_since is None else moment(endpoint.failing_since, now)
        ),
        last_success=moment(endpoint.last_success_at, now),
        last_failure=moment(endpoint.last_failure_at, now),
        failures=f"{endpoint.failures_5m} of {attempts} attempt{'' if attempts == 1 else 's'}",
        last_error=endpoint.last_error or "—",
        deferred=str(endpoint.deferred_5m),
        instances=endpoint.instances,
    )


def account_health(console: Console, entry: Entry, now: float) -> tuple[AccountHealth, Health]:
    """The account's merged health and label as of ``now``."""
    merged = merge_health(console.health.records_of(entry.account_id), now)
    label = health_label(merged, enabled=entry.enabled, disabled_reason=entry.disabled_reason)
    return merged, label


def labels_of(console: Console, entries: dict[str, Entry]) -> Callable[[str], Health]:
    """The label of each of ``entries``' accounts (for the accounts list), all merged with
    one snapshot of the health feed and one clock reading."""
    now = console.health.now()
    records = console.health.accounts()

    def label(account_id: str) -> Health:
        entry = entries[account_id]
        merged = merge_health(records.get(account_id, ()), now)
        return health_label(merged, enabled=entry.enabled, disabled_reason=entry.disabled_reason)

    return label


def integration_health(console: Console, entry: Entry | None) -> dict[str, Any]:
    """What the integration page shows of the account's health, the service's disabling,
    and a re-enable running or done."""
    if entry is None:
        return {"health_label": None, "endpoint_rows": [], "disabled_since": None, "job": None}
    now = console.health.now()
    merged, label = account_health(console, entry, now)
    disabled_at = entry.config.disabled_at if entry.disabled_reason is not None else None
    return {
        "health_label": label,
        "endpoint_rows": [endpoint_row(e, now) for e in merged.endpoints.values()],
        "disabled_since": None if disabled_at is None else moment(parse_time(disabled_at), now),
        "job": console.jobs.get(entry.account_id),
    }
