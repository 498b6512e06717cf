"""The bench's result: its measurements and JSON, the ratios of the service's figures to the
baselines of the same run, and the human-readable table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Comparison:
    """A figure of the service next to a baseline of the same run."""

    name: str
    value: float
    unit: str
    baseline: float
    baseline_name: str
    ratio: float | None  # value / baseline; None where a ratio means nothing


@dataclass
class BenchResult:
    options: dict[str, Any]
    transport: str
    baselines: dict[str, Any] = field(default_factory=dict)
    service: dict[str, Any] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare(r: BenchResult) -> list[Comparison]:
    """The service's figures next to the baselines they are measured against, with ratios."""
    fmt, rate = r.options["format"], r.options["rate"]
    out: list[Comparison] = []

    def add(name: str, value: float, unit: str, baseline: float, baseline_name: str) -> None:
        ratio = value / baseline if baseline > 0 else None
        out.append(Comparison(name, value, unit, baseline, baseline_name, ratio))

    posts = r.baselines.get("raw_post", {})
    main = r.service.get(fmt, {})
    if posts and "throughput_eps" in main:
        best_name = max(posts, key=lambda c: posts[c]["requests_per_second"])
        best = posts[best_name]
        add(f"throughput ({fmt})", main["throughput_eps"], "events/s",
            best["requests_per_second"], f"raw POST loop ({best_name})")  # fmt: skip
        add("service CPU per event", main["cpu_us_per_event"], "us/event",
            best["cpu_us_per_request"], f"raw POST loop ({best_name}) CPU/request")  # fmt: skip
    json_r, url_r = r.service.get("json", {}), r.service.get("urlencoded", {})
    if "throughput_eps" in json_r and "throughput_eps" in url_r:
        add("urlencoded vs json", url_r["throughput_eps"], "events/s",
            json_r["throughput_eps"], "json delivery")  # fmt: skip
    signed = r.service.get("signed", {})
    unsigned = r.service.get(signed.get("format", ""), {})
    if "throughput_eps" in signed and "throughput_eps" in unsigned:
        what = f"({signed['format']}, {_secrets(signed['signing_secrets'])})"
        add(f"signed vs unsigned CPU per event {what}", signed["cpu_us_per_event"], "us/event",
            unsigned["cpu_us_per_event"], f"unsigned {signed['format']} delivery")  # fmt: skip
        add(f"signed vs unsigned throughput {what}", signed["throughput_eps"], "events/s",
            unsigned["throughput_eps"], f"unsigned {signed['format']} delivery")  # fmt: skip
    filt = r.service.get("filtered", {})
    raw = r.baselines.get("raw_consume", {})
    if "events_per_second" in filt and raw.get("per_second"):
        add("filtered-out events", filt["events_per_second"], "events/s", raw["per_second"],
            "raw consume")  # fmt: skip
    lat, raw_lat = r.service.get("latency", {}), r.baselines.get("raw_latency", {})
    if lat.get("events") and raw_lat.get("events"):
        add(f"p99 latency @ {rate:g}/s", lat["p99_ms"], "ms", raw_lat["p99_ms"],
            "raw consumer p99")  # fmt: skip
    if "ready_seconds" in main and raw.get("join_seconds") is not None:
        # The group join is part of start-up: its time is shown beside it, not divided by.
        out.append(Comparison(
            "start to ready", main["ready_seconds"], "s", raw["join_seconds"],
            "group join time", None,
        ))  # fmt: skip
    return out


def _secrets(count: int) -> str:
    return "1 secret" if count == 1 else f"{count} secrets"


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _p50_p99(summary: dict[str, Any]) -> str:
    return f"p50 {_num(summary['p50_ms'], 'ms')}  p99 {_num(summary['p99_ms'], 'ms')}"


def format_table(result: BenchResult) -> str:
    """The human-readable report: the measurements, then the ratios to the baselines."""
    lines: list[str] = []
    o = result.options
    lines.append(
        f"stream-wfm bench — transport {result.transport}, concurrency {o['concurrency']}, "
        f"{o['events']} events (selected fraction {o['selected_fraction']:g}), "
        f"format {o['format']}, {result.elapsed_seconds:.0f} s"
    )
    lines.append("")
    rows: list[tuple[str, str, str, str]] = [("measurement", "throughput", "CPU", "latency")]
    for client, post in result.baselines.get("raw_post", {}).items():
        rows.append((
            f"raw POST loop, {client}", _num(post["requests_per_second"], "req/s"),
            _num(post["cpu_us_per_request"], "us/req"), "",
        ))  # fmt: skip
    raw = result.baselines.get("raw_consume")
    if raw:
        rows.append((
            "raw consume", _num(raw["per_second"], "rec/s"), "",
            f"group join {raw['join_seconds']:.2f} s",
        ))  # fmt: skip
    raw_lat = result.baselines.get("raw_latency")
    if raw_lat:
        rows.append((f"raw consumer @ {raw_lat['rate']:g}/s", "", "", _p50_p99(raw_lat)))
    for fmt in ("json", "urlencoded"):
        svc = result.service.get(fmt)
        if svc and "throughput_eps" in svc:
            rows.append((
                f"stream-wfm, {fmt}", _num(svc["throughput_eps"], "ev/s"),
                _num(svc["cpu_us_per_event"], "us/ev"),
                f"ready {svc['ready_seconds']:.2f} s; {svc['distinct']}/{svc['selected']} recv",
            ))  # fmt: skip
    signed = result.service.get("signed")
    if signed and "throughput_eps" in signed:
        s = signed
        rows.append((
            f"stream-wfm, {s['format']} signed ({_secrets(s['signing_secrets'])})",
            _num(s["throughput_eps"], "ev/s"), _num(s["cpu_us_per_event"], "us/ev"),
            f"ready {s['ready_seconds']:.2f} s; {s['distinct']}/{s['selected']} recv",
        ))  # fmt: skip
    signing = result.service.get("signing")
    if signing:
        rows.append((
            "signing one request (in-process)", "",
            f"{_num(signing['sign_us_1'], 'us/req')} (1 secret), {_num(signing['sign_us_3'])} (3)",
            f"build alone {_num(signing['build_us'], 'us')}",
        ))  # fmt: skip
    filt = result.service.get("filtered")
    if filt and "events_per_second" in filt:
        rows.append((
            "stream-wfm, all filtered out", _num(filt["events_per_second"], "ev/s"),
            _num(filt["cpu_us_per_event"], "us/ev"), "",
        ))  # fmt: skip
    lat = result.service.get("latency")
    if lat:
        rows.append((
            f"stream-wfm @ {lat['rate']:g}/s", "", _num(lat["cpu_us_per_event"], "us/ev"),
            _p50_p99(lat),
        ))  # fmt: skip
    ints = result.service.get("integrations")
    if ints:
        rows.append((
            f"stream-wfm, {ints['integrations']} integrations", "", "",
            f"RSS {ints['rss_mb']:.0f} MB; ready {ints['ready_seconds']:.1f} s",
        ))  # fmt: skip
    lines.extend(_grid(rows))
    lines.append("")
    crows = [("comparison", "stream-wfm", "baseline", "ratio")]
    for c in result.comparisons:
        crows.append((
            c.name, _num(c.value, c.unit), f"{_num(c.baseline)} ({c.baseline_name})",
            "-" if c.ratio is None else f"{c.ratio:.2f}x",
        ))  # fmt: skip
    lines.extend(_grid(crows))
    return "\n".join(lines)


def _grid(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out
