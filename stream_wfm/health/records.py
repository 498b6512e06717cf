"""The records of endpoint health (docs/contract.md §10): health reports and notices.

A *health record* goes to the compacted health topic, key ``{account_id}/{instance_id}``:
one instance's view of one account's endpoints (one per event kind it delivered to)::

    {"account_id": "acme", "instance_id": "stream-wfm-0", "at": "2026-12-07T10:00:00Z",
     "endpoints": {"agent": {"state": "open", "attempts_5m": 40, "failures_5m": 40,
                             "deferred_5m": 310, "last_success_at": null,
                             "last_failure_at": "2026-12-07T09:59:58Z",
                             "last_error": "HTTP 503",
                             "failing_since": "2026-12-07T09:40:12Z"}}}

A *notice* goes to the notices topic, key ``account_id``: today one type,
``integration.disabled``, with the fields the contract names. Times are ISO-8601
UTC strings with a ``Z``. Nothing here ever holds a header value or a signing
secret: ``last_error`` is an outcome's short text (``HTTP 503``, ``timeout after
10s``, an error class).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

from stream_wfm.health.exceptions import InvalidHealthRecordError

__all__ = [
    "BREAKER_STATES",
    "NOTICE_DISABLED",
    "BreakerState",
    "EndpointReport",
    "HealthRecord",
    "Notice",
    "decode_health_record",
    "decode_notice",
    "encode_health_record",
    "encode_notice",
    "health_key",
    "iso_utc",
    "notice_id_for",
    "parse_iso_utc",
]

BreakerState = Literal["closed", "open", "half_open"]
BREAKER_STATES: Final = ("closed", "open", "half_open")
NOTICE_DISABLED: Final = "integration.disabled"
#: Namespace of the notice ids (UUID version 5 over the failure period's identity).
_NOTICE_NAMESPACE: Final = uuid.UUID("6f1d8c1e-6a4b-4d3e-9b8e-2f5c7a1d0e42")


def iso_utc(when: float) -> str:
    """Unix time ``when`` as ISO-8601 UTC, to the second: ``2026-12-07T10:00:00Z``."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_utc(text: str) -> float:
    """The Unix time of an ISO-8601 time with a zone (``Z`` or an offset)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.timestamp()


def health_key(account_id: str, instance_id: str) -> str:
    return f"{account_id}/{instance_id}"


@dataclass(frozen=True, slots=True)
class EndpointReport:
    """One endpoint (an account's URL for one event kind) as one instance sees it."""

    state: BreakerState
    attempts_5m: int
    failures_5m: int
    deferred_5m: int
    last_success_at: str | None
    last_failure_at: str | None
    last_error: str | None
    failing_since: str | None


@dataclass(frozen=True, slots=True)
class HealthRecord:
    account_id: str
    instance_id: str
    at: str
    endpoints: dict[str, EndpointReport] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return health_key(self.account_id, self.instance_id)


def encode_health_record(record: HealthRecord) -> bytes:
    return orjson.dumps(asdict(record))


def decode_health_record(value: bytes) -> HealthRecord:
    """Raises :class:`InvalidHealthRecordError` for anything but a health record."""
    try:
        data = orjson.loads(value)
        endpoints = {str(kind): _report(report) for kind, report in dict(data["endpoints"]).items()}
        record = HealthRecord(
            account_id=_text(data["account_id"]),
            instance_id=_text(data["instance_id"]),
            at=_text(data["at"]),
            endpoints=endpoints,
        )
        parse_iso_utc(record.at)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidHealthRecordError(f"not a health record: {exc}") from None
    return record


def _report(data: Any) -> EndpointReport:
    state = data["state"]
    if state not in BREAKER_STATES:
        raise ValueError(f"unknown breaker state {state!r}")
    return EndpointReport(
        state=state,
        attempts_5m=_count(data["attempts_5m"]),
        failures_5m=_count(data["failures_5m"]),
        deferred_5m=_count(data["deferred_5m"]),
        last_success_at=_optional_text(data.get("last_success_at")),
        last_failure_at=_optional_text(data.get("last_failure_at")),
        last_error=_optional_text(data.get("last_error")),
        failing_since=_optional_text(data.get("failing_since")),
    )


@dataclass(frozen=True, slots=True)
class Notice:
    """``integration.disabled``: the service disabled an integration (docs/contract.md §10)."""

    notice_id: str
    account_id: str
    kind: str
    url: str | None
    failing_since: str
    last_error: str | None
    at: str
    type: str = NOTICE_DISABLED


def notice_id_for(account_id: str, kind: str, config_version: tuple[int, int] | None) -> str:
    """The id of the notice that one failure period produces.

    A failure period is one config record in force (its partition and offset on the
    config topic) failing for one kind: every instance that sees the endpoint fail
    under that config — and the same instance after a restart — names its notice
    alike, and a re-enable (a new config record) starts a new period.
    """
    where = "-" if config_version is None else f"{config_version[0]}:{config_version[1]}"
    return str(uuid.uuid5(_NOTICE_NAMESPACE, f"{account_id}\n{kind}\n{where}"))


def encode_notice(notice: Notice) -> bytes:
    data = asdict(notice)
    return orjson.dumps({"type": data.pop("type"), **data})


def decode_notice(value: bytes) -> Notice:
    """Raises :class:`InvalidHealthRecordError` for anything but a notice of a known type."""
    try:
        data = orjson.loads(value)
        if data["type"] != NOTICE_DISABLED:
            raise ValueError(f"unknown notice type {data['type']!r}")
        notice = Notice(
            notice_id=_text(data["notice_id"]),
            account_id=_text(data["account_id"]),
            kind=_text(data["kind"]),
            url=_optional_text(data.get("url")),
            failing_since=_text(data["failing_since"]),
            last_error=_optional_text(data.get("last_error")),
            at=_text(data["at"]),
        )
        parse_iso_utc(notice.failing_since)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidHealthRecordError(f"not a notice: {exc}") from None
    return notice


def _text(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"expected a count, got {value!r}")
    return value
