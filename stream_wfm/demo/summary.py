"""The demo's report: per-endpoint counts, service counters and sample requests.

Pure: it reads the demo receiver's counts, the dead letters read from the DLQ
topic and the service's Prometheus registry, and returns text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from prometheus_client import CollectorRegistry

from stream_wfm.demo.receiver import (
    CREDENTIAL_HEADERS,
    FLAKY_PREFIX,
    MASK,
    STRICT_PREFIX,
    EndpointStats,
    SampleRequest,
)
from stream_wfm.demo.samples import SampleIntegration
from stream_wfm.events import EventKind
from stream_wfm.ops.metrics import PREFIX
from stream_wfm.retry.dead_letters import DlqEntry
from stream_wfm.settings import Settings

COLUMNS = ("ENDPOINT", "ACCOUNT", "FORMAT", "REQUESTS", "DELIVERED", "RETRIED", "DEAD-LETTERED")


@dataclass(frozen=True)
class ServiceCounts:
    """The service's own counters (from its Prometheus registry)."""

    consumed: int
    delivered: int
    filtered: dict[str, int]
    dead_letters: dict[str, int]
    retries_scheduled: dict[str, int]
    retries_dropped: dict[str, int]

    @property
    def accounted(self) -> int:
        """Events that reached an end: delivered, filtered, dead-lettered or dropped."""
        return (
            self.delivered + sum(self.filtered.values()) + sum(self.dead_letters.values())
            + sum(self.retries_dropped.values())
        )  # fmt: skip


def _by_label(registry: CollectorRegistry, sample_name: str, label: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == sample_name:
                key = sample.labels[label]
                totals[key] = totals.get(key, 0) + int(sample.value)
    return {key: value for key, value in sorted(totals.items()) if value}


def _value(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> int:
    return int(registry.get_sample_value(name, labels) or 0)


def service_counts(registry: CollectorRegistry, settings: Settings) -> ServiceCounts:
    """Read the counters the demo reports from the service's registry."""
    p = PREFIX
    inputs = (settings.agent_events_topic, settings.call_events_topic)
    return ServiceCounts(
        consumed=sum(_value(registry, f"{p}_events_consumed_total", {"topic": t}) for t in inputs),
        delivered=sum(
            _value(
                registry,
                f"{p}_deliveries_total",
                {"kind": kind.value, "outcome": "delivered", "status_class": "2xx"},
            )
            for kind in EventKind
        ),
        filtered=_by_label(registry, f"{p}_events_filtered_total", "reason"),
        dead_letters=_by_label(registry, f"{p}_dead_letters_total", "reason"),
        retries_scheduled={
            name: _value(registry, f"{p}_retries_scheduled_total", {"tier": name})
            for name, _seconds in settings.retry_tiers
        },
        retries_dropped=_by_label(registry, f"{p}_retries_dropped_total", "reason"),
    )


@dataclass(frozen=True)
class EndpointRow:
    """One configured endpoint and what happened there."""

    path: str
    integration: SampleIntegration
    kind: EventKind
    stats: EndpointStats
    dead_lettered: int

    @property
    def format(self) -> str:
        return "JSON" if self.integration.config.get("send_body_as_json") else "URL-encoded"

    @property
    def note(self) -> str:
        if not self.integration.config.get("enabled", True):
            return "integration disabled"
        if self.path.startswith(FLAKY_PREFIX):
            return "fails now and then (503)"
        if self.path.startswith(STRICT_PREFIX):
            return "rejects unmapped agents (400)"
        return ""


def endpoint_rows(
    integrations: Sequence[SampleIntegration],
    endpoints: dict[str, EndpointStats],
    dead_letters: Iterable[DlqEntry],
) -> list[EndpointRow]:
    """One row per configured URL; dead letters are matched by account and event kind."""
    dead: dict[tuple[str | None, EventKind | None], int] = {}
    for dl in dead_letters:
        key = (dl.record.account_id, dl.record.kind)
        dead[key] = dead.get(key, 0) + 1
    rows = []
    for integration in integrations:
        for kind, field in (
            (EventKind.AGENT, "agent_event_url"),
            (EventKind.CALL, "call_event_url"),
        ):
            url = integration.config.get(field)
            if not url:
                continue
            path = urlsplit(url).path
            rows.append(EndpointRow(
                path, integration, kind, endpoints.get(path, EndpointStats()),
                dead.get((integration.account_id, kind), 0),
            ))  # fmt: skip
    return rows


def _table(rows: Sequence[Sequence[str]], numeric: range) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _counts(values: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in values.items()) or "none"


def render_summary(
    rows: Sequence[EndpointRow], counts: ServiceCounts, unrouted: dict[str, int], expected: int
) -> str:
    """The per-endpoint table and the service's totals.

    ``unrouted``: dead letters that belong to no endpoint (invalid events), by reason.
    """
    table: list[tuple[str, ...]] = [(*COLUMNS, "NOTE")]
    for row in rows:
        s = row.stats
        table.append((
            row.path, row.integration.account_id, row.format, str(s.requests), str(s.delivered),
            str(s.retried), str(row.dead_lettered), row.note,
        ))  # fmt: skip
    table.append((
        "TOTAL", "", "", str(sum(r.stats.requests for r in rows)),
        str(sum(r.stats.delivered for r in rows)), str(sum(r.stats.retried for r in rows)),
        str(sum(r.dead_lettered for r in rows)), "",
    ))  # fmt: skip
    lines = ["What each endpoint of the demo receiver got", ""]
    lines += ["  " + line for line in _table(table, numeric=range(3, len(COLUMNS)))]
    unavailable = sum(r.stats.unavailable for r in rows)
    rejected = sum(r.stats.rejected for r in rows)
    lines += [
        "",
        "  REQUESTS counts every attempt; RETRIED counts events answered 503 first and "
        "delivered by a later attempt",
        f"  ({unavailable} answers were 503, {rejected} were 400).",
        "",
        "What the service did (its Prometheus counters)",
        "",
        f"  consumed        {counts.consumed} of {expected} replayed records",
        f"  delivered       {counts.delivered}",
        f"  retries         {sum(counts.retries_scheduled.values())} scheduled "
        f"(by tier: {_counts(counts.retries_scheduled)})",
        f"  dead-lettered   {sum(counts.dead_letters.values())} ({_counts(counts.dead_letters)})",
        f"  filtered        {sum(counts.filtered.values())} not sent because of the "
        f"integration's settings:",
    ]
    lines += [
        f"                    {name:<28}{count:>4}" for name, count in counts.filtered.items()
    ]
    if counts.retries_dropped:
        lines.append(f"  retries dropped {_counts(counts.retries_dropped)}")
    if unrouted:
        lines.append(
            f"  not an event    {_counts(unrouted)} (bad records; dead-lettered, no endpoint)"
        )
    return "\n".join(lines)


def _body_lines(sample: SampleRequest) -> list[str]:
    if not sample.body:
        return ["(empty body: the event is in the query string)"]
    try:
        pretty = orjson.dumps(orjson.loads(sample.body), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return [sample.body]
    return pretty.splitlines()


def render_samples(rows: Sequence[EndpointRow]) -> str:
    """One sample request per endpoint that got any. Every header the integration
    configured is masked (its values may be secrets), as are credential headers."""
    lines = ["Sample requests (one per endpoint; configured header values masked)"]
    for row in rows:
        sample = row.stats.sample
        if sample is None:
            continue
        company = row.integration.company
        lines += ["", f"  {row.path}  ({company}, {row.format}) -> answered {sample.status}"]
        lines.append(f"    {sample.method} {sample.url}")
        configured = {name.lower() for name in row.integration.config.get("headers", {})}
        lines += [
            f"    {name}: {MASK if name.lower() in configured | CREDENTIAL_HEADERS else value}"
            for name, value in sample.headers
        ]
        lines += ["    " + line for line in _body_lines(sample)]
    return "\n".join(lines)
