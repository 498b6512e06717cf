"""An account's endpoint health as the console shows it (docs/contract.md §10, §9).

Every instance publishes, for each account it delivers to, one health record on the
compacted health topic (:mod:`stream_wfm.health.records`). :func:`merge_health`
merges the records of one account's instances — pure: the clock is a parameter —
and :func:`health_label` gives the account's label for the accounts list:

* a record whose ``at`` is more than :data:`FRESH_SECONDS` before ``now`` is ignored
  (a stopped instance's last word, or an endpoint no longer in use);
* per kind (``agent``, ``call``): the worst breaker state (open > half-open > closed),
  the counts summed, the latest success and failure, the last error of the latest
  failure, the earliest ``failing_since``;
* the label: ``Disabled: endpoint failing`` when the config says the service disabled
  it; else ``Circuit open`` when any endpoint's breaker is open or half-open; else
  ``Failing`` when an endpoint failed in the last 5 minutes and failed more recently
  than it succeeded; else ``Healthy`` when any instance reported; else no data (``—``).

A time that does not parse counts as unknown, and a record without a readable ``at``
is not fresh: what an instance wrote can never break a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from stream_wfm.health.records import BreakerState, EndpointReport, HealthRecord, parse_iso_utc

__all__ = [
    "FRESH_SECONDS",
    "NO_DATA_TITLE",
    "AccountHealth",
    "EndpointHealth",
    "Health",
    "health_label",
    "merge_health",
    "parse_time",
]

#: Records older than this (seconds) are ignored.
FRESH_SECONDS: Final = 120.0
NO_DATA_TITLE: Final = "no deliveries reported in the last 2 minutes"
_SEVERITY: Final[dict[BreakerState, int]] = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """One endpoint (an account's URL for ``kind``) merged over the instances that
    reported it; times are Unix seconds."""

    kind: str
    state: BreakerState
    attempts_5m: int
    failures_5m: int
    deferred_5m: int
    last_success_at: float | None
    last_failure_at: float | None
    last_error: str | None
    failing_since: float | None
    instances: int

    @property
    def failing(self) -> bool:
        """Failures in the last 5 minutes, and the latest attempt we know of failed."""
        if self.failures_5m <= 0 or self.last_failure_at is None:
            return False
        return self.last_success_at is None or self.last_failure_at > self.last_success_at


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """``endpoints`` by kind (sorted); ``fresh_records``: how many instances reported."""

    endpoints: dict[str, EndpointHealth]
    fresh_records: int


class Health(StrEnum):
    """An account's health label; the value is the text shown."""

    DISABLED = "Disabled: endpoint failing"
    CIRCUIT_OPEN = "Circuit open"
    FAILING = "Failing"
    HEALTHY = "Healthy"
    NO_DATA = "—"

    @property
    def css_class(self) -> str:
        return _CSS_CLASSES[self]

    @property
    def description(self) -> str:
        """A longer explanation (the label's tooltip and accessible description)."""
        return _DESCRIPTIONS[self]


_CSS_CLASSES: Final = {
    Health.DISABLED: "health-disabled",
    Health.CIRCUIT_OPEN: "health-open",
    Health.FAILING: "health-failing",
    Health.HEALTHY: "health-ok",
    Health.NO_DATA: "health-none",
}
_DESCRIPTIONS: Final = {
    Health.DISABLED: "the service disabled this integration because its endpoint kept failing",
    Health.CIRCUIT_OPEN: "an endpoint's circuit breaker is open: its events wait in the "
    "retry tiers instead of being sent",
    Health.FAILING: "an endpoint failed in the last 5 minutes, more recently than it succeeded",
    Health.HEALTHY: "deliveries reported in the last 2 minutes, none failing",
    Health.NO_DATA: NO_DATA_TITLE,
}


def parse_time(text: str | None) -> float | None:
    """The Unix time of an ISO-8601 time from a record; None when absent or unreadable."""
    if text is None:
        return None
    try:
        return parse_iso_utc(text)
    except ValueError:
        return None


def _fresh(record: HealthRecord, now: float, max_age: float) -> bool:
    at = parse_time(record.at)
    return at is not None and now - at <= max_age


def merge_health(
    records: Iterable[HealthRecord], now: float, *, max_age: float = FRESH_SECONDS
) -> AccountHealth:
    """Merge one account's records (one per instance) as of ``now`` (Unix seconds)."""
    fresh = [record for record in records if _fresh(record, now, max_age)]
    by_kind: dict[str, list[EndpointReport]] = {}
    for record in fresh:
        for kind, report in record.endpoints.items():
            by_kind.setdefault(kind, []).append(report)
    endpoints = {kind: _merge(kind, reports) for kind, reports in sorted(by_kind.items())}
    return AccountHealth(endpoints=endpoints, fresh_records=len(fresh))


def _merge(kind: str, reports: Sequence[EndpointReport]) -> EndpointHealth:
    successes = [t for r in reports if (t := parse_time(r.last_success_at)) is not None]
    since = [t for r in reports if (t := parse_time(r.failing_since)) is not None]
    failures = [
        (t, r.last_error) for r in reports if (t := parse_time(r.last_failure_at)) is not None
    ]
    # Ties (two instances' failures in the same second) are broken by the text, so the
    # result does not depend on the order the records came in.
    latest = max(failures, key=lambda f: (f[0], f[1] is not None, f[1] or ""), default=None)
    return EndpointHealth(
        kind=kind,
        state=max((r.state for r in reports), key=_SEVERITY.__getitem__),
        attempts_5m=sum(r.attempts_5m for r in reports),
        failures_5m=sum(r.failures_5m for r in reports),
        deferred_5m=sum(r.deferred_5m for r in reports),
        last_success_at=max(successes, default=None),
        last_failure_at=None if latest is None else latest[0],
        last_error=None if latest is None else latest[1],
        failing_since=min(since, default=None),
        instances=len(reports),
    )


def health_label(health: AccountHealth, *, enabled: bool, disabled_reason: str | None) -> Health:
    """The account's label, from its merged health and its config's ``enabled`` and
    ``disabled_reason``."""
    if not enabled and disabled_reason is not None:
        return Health.DISABLED
    endpoints = health.endpoints.values()
    if any(endpoint.state != "closed" for endpoint in endpoints):
        return Health.CIRCUIT_OPEN
    if any(endpoint.failing for endpoint in endpoints):
        return Health.FAILING
    if health.fresh_records:
        return Health.HEALTHY
    return Health.NO_DATA
