"""The outcome of one delivery attempt (docs/contract.md §5) and ``Retry-After`` parsing.

* 2xx: delivered.
* 408, 425, 429, 5xx, a timeout, a connection error: retryable.
* Any other status (1xx, 3xx — redirects are not followed —, other 4xx):
  permanent, reason ``permanent_status``.
* A destination the guard refuses: permanent, reason ``destination_not_allowed``.

The statuses are classified by :func:`classify_status`; an attempt with no response
ends in a :class:`~stream_wfm.delivery.exceptions.NoResponseError` (the transports
wrap what their client raises) and :func:`outcome_for_error` reads its flags.

``status_class`` is the ``status_class`` label of ``stream_wfm_deliveries_total``
(see ``stream_wfm.ops.metrics.STATUS_CLASSES``). A status outside 100..599
counts in the nearest class (below 200: ``1xx``, 600 and above: ``5xx``) but
only 500..599 is retryable.
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

from stream_wfm.delivery.exceptions import (
    ConnectionFailedError,
    NoResponseError,
)

__all__ = [
    "DEFERRALS",
    "DEFERRAL_REASONS",
    "RETRYABLE_STATUSES",
    "Outcome",
    "OutcomeKind",
    "classify_status",
    "connection_error_outcome",
    "outcome_for_error",
    "parse_retry_after",
]

#: Non-5xx statuses that are retried.
RETRYABLE_STATUSES: Final = frozenset({408, 425, 429})
#: Longest Retry-After we keep (the retry policy caps it at the last tier anyway).
MAX_RETRY_AFTER_SECONDS: Final = 10.0**9
MAX_ERROR_LENGTH: Final = 200
_STATUS_CLASSES: Final = ("1xx", "1xx", "2xx", "3xx", "4xx", "5xx")


class OutcomeKind(enum.StrEnum):
    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one attempt.

    ``error`` is short, one-line text for logs and retry/DLQ records
    (``"HTTP 503"``, ``"timeout after 10s"``...); ``retry_after`` is the
    receiver's ``Retry-After`` in seconds from now, when it sent one;
    ``reason`` is set on permanent outcomes (``permanent_status`` or
    ``destination_not_allowed``).
    """

    kind: OutcomeKind
    status: int | None
    error: str | None
    status_class: str
    retry_after: float | None = None
    reason: str | None = None

    @property
    def retriable(self) -> bool:
        return self.kind is OutcomeKind.RETRYABLE


_DELIVERED: Final = {
    status: Outcome(OutcomeKind.DELIVERED, status, None, "2xx") for status in range(200, 300)
}


def _status_class(status: int) -> str:
    return _STATUS_CLASSES[min(max(status // 100, 0), 5)]


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > MAX_ERROR_LENGTH:
        return flat[: MAX_ERROR_LENGTH - 3] + "..."
    return flat


def classify_status(
    status: int, retry_after: str | None = None, now: float | None = None
) -> Outcome:
    """The outcome of a response with ``status``; ``retry_after`` is the raw
    ``Retry-After`` header (parsed for retryable statuses only), ``now`` the
    current unix time (default: the clock)."""
    delivered = _DELIVERED.get(status)
    if delivered is not None:
        return delivered
    status_class = _status_class(status)
    error = f"HTTP {status}"
    if status in RETRYABLE_STATUSES or 500 <= status <= 599:
        delay = None
        if retry_after is not None:
            delay = parse_retry_after(retry_after, time.time() if now is None else now)
        return Outcome(OutcomeKind.RETRYABLE, status, error, status_class, delay)
    return Outcome(OutcomeKind.PERMANENT, status, error, status_class, None, "permanent_status")


def outcome_for_error(error: NoResponseError) -> Outcome:
    """The outcome of an attempt that ended with ``error`` instead of a response: retryable
    when it is ``retriable``, else permanent with its ``reason``; its ``status_class`` and
    text. Transports wrap what their client raises into a :class:`NoResponseError`."""
    kind = OutcomeKind.RETRYABLE if error.retriable else OutcomeKind.PERMANENT
    return Outcome(kind, None, _one_line(error.describe()), error.status_class, None, error.reason)


def connection_error_outcome(exc: BaseException) -> Outcome:
    """The request failed without a response (DNS, refused, reset, TLS...)."""
    return outcome_for_error(ConnectionFailedError(cause=exc))


#: Why an event is deferred without an attempt (``stream_wfm_events_deferred_total{reason}``).
DEFERRAL_REASONS: Final = ("circuit_open", "fair_share", "order")
#: The outcome a deferred event's retry record carries, by reason: retryable, no status.
DEFERRALS: Final = {
    reason: Outcome(OutcomeKind.RETRYABLE, None, f"deferred: {reason}", "deferred")
    for reason in DEFERRAL_REASONS
}


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds from ``now`` (unix time) that a ``Retry-After`` value asks to wait.

    Accepts delta-seconds (a non-negative integer) or an HTTP-date; a date in
    the past gives 0. Anything else gives None. Never raises.
    """
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        if len(text) > 10:
            return MAX_RETRY_AFTER_SECONDS
        return min(float(int(text)), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        delay = when.timestamp() - now
    except (OverflowError, ValueError):
        return None
    if math.isnan(delay):
        return None
    return min(max(delay, 0.0), MAX_RETRY_AFTER_SECONDS)
