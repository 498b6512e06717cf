"""The bench scenarios, their baselines measured in the same run, and the targets.

One run:

1. starts an embedded broker and the minimal receiver (its own process);
2. pre-produces the events: ``events`` agent-state events (a ``selected_fraction``
   of them in default states) and, for the filter scenario, ``filtered_events``
   custom-state events;
3. baselines: the raw POST loop of every shipped HTTP client against the
   receiver at the same concurrency; raw confluent-kafka consume of the
   custom-state events (and the group's join time);
4. the service (``stream-wfm run`` subprocess) delivering the events as JSON,
   then as URL-encoded; processing the custom-state events (all filtered out);
   in rate mode, side by side with a raw consumer of the same topic with the
   service's consumer settings; and, with ``integrations`` > 0, loaded with
   that many integrations (RSS);
5. the table of targets (each a ratio against a baseline of this run).

Steady-state figures use the window between 10 % and 90 % of the events, so
start-up and the tail do not count; CPU in that window is interpolated from
samples of ``/proc/<pid>/stat`` taken every 20 ms.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from stream_wfm.bench.progress import Progress
from stream_wfm.bench.rawconsume import consume_rate, send_time
from stream_wfm.bench.rawpost import CLIENTS
from stream_wfm.bench.receiver import ReceiverProcess
from stream_wfm.bench.service_proc import CpuSampler, ServiceProcess, crossing
from stream_wfm.bench.workload import (
    ACCOUNT_ID,
    RateProducer,
    integration,
    isolated_settings,
    produce_events,
    write_integrations,
)
from stream_wfm.delivery.transports import available_transports
from stream_wfm.kafka.admin import create_topics
from stream_wfm.kafka.config import group_consumer_config
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.settings import Settings

KAFKA_TEST = {"session_timeout_ms": "2000", "heartbeat_interval_ms": "300"}
PARTITIONS = 6
STALL_SECONDS = 30.0
RSS_LIMIT_MB = 200.0


@dataclass(frozen=True)
class BenchOptions:
    events: int = 100_000
    filtered_events: int | None = None  # default: 3 x events
    rate: float = 1000.0
    duration: float = 3.0
    concurrency: int = 64
    selected_fraction: float = 1.0
    format: str = "json"  # the format of the main delivery scenario
    transport: str | None = None  # None: the service's default
    integrations: int = 100_000

    @property
    def filtered_count(self) -> int:
        return self.filtered_events if self.filtered_events is not None else 3 * self.events


@dataclass
class Target:
    name: str
    value: float
    unit: str
    baseline: float | None
    baseline_name: str
    ratio: float | None
    target: str
    passed: bool


@dataclass
class BenchResult:
    options: dict[str, Any]
    transport: str
    baselines: dict[str, Any] = field(default_factory=dict)
    service: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shipped_clients() -> list[str]:
    """The HTTP clients the service ships a transport for that are installed here."""
    return [c for c in CLIENTS if c in available_transports()]


def default_transport() -> str:
    return str(Settings.model_fields["http_transport"].default)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _steady_window(times: list[int]) -> tuple[int, int, int, int]:
    """(i10, i90, t10, t90) of sorted arrival times."""
    n = len(times)
    i10 = n // 10
    i90 = max(i10 + 1, (n * 9) // 10) if n > 1 else 0
    i90 = min(i90, n - 1)
    return i10, i90, times[i10], times[i90]


class Bench:
    def __init__(self, options: BenchOptions, progress: Progress) -> None:
        self.o = options
        self.p = progress
        self.tag = uuid.uuid4().hex[:8]
        self.broker: EmbeddedBroker | None = None
        self.receiver: ReceiverProcess | None = None
        self.transport = options.transport or default_transport()
        self.result = BenchResult(asdict(options), self.transport)

    # --- plumbing ---------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap_servers

    def _settings(self, run: str, agent_topic: str) -> Settings:
        return isolated_settings(
            self.bootstrap, f"bench-{self.tag}-{run}", agent_events_topic=agent_topic,
            topic_partitions=PARTITIONS,
        )  # fmt: skip

    def _env(self, s: Settings) -> dict[str, str]:
        env = {
            "STREAM_WFM_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAM_WFM_GROUP_ID": s.group_id,
            "STREAM_WFM_AGENT_EVENTS_TOPIC": s.agent_events_topic,
            "STREAM_WFM_CALL_EVENTS_TOPIC": s.call_events_topic,
            "STREAM_WFM_CONFIG_TOPIC": s.config_topic,
            "STREAM_WFM_RETRY_TOPIC_PREFIX": s.retry_topic_prefix,
            "STREAM_WFM_DLQ_TOPIC": s.dlq_topic,
            "STREAM_WFM_ALLOW_PRIVATE_DESTINATIONS": "true",
            "STREAM_WFM_KAFKA__SESSION_TIMEOUT_MS": KAFKA_TEST["session_timeout_ms"],
            "STREAM_WFM_KAFKA__HEARTBEAT_INTERVAL_MS": KAFKA_TEST["heartbeat_interval_ms"],
            "STREAM_WFM_LOG_LEVEL": "WARNING",
            "STREAM_WFM_MAX_IN_FLIGHT": str(self.o.concurrency),
            "STREAM_WFM_MAX_IN_FLIGHT_PER_HOST": str(self.o.concurrency),
        }
        if self.o.transport is not None:
            env["STREAM_WFM_HTTP_TRANSPORT"] = self.o.transport
        return env

    def _consumer_config(self, s: Settings, group: str) -> dict[str, Any]:
        """The service's group consumer settings, as the service would get them."""
        conf = group_consumer_config(s)
        conf.update({k.replace("_", "."): v for k, v in KAFKA_TEST.items()})
        conf["group.id"] = group
        conf.pop("logger", None)  # a Python object: the raw consumer runs in another process
        return conf

    @contextlib.contextmanager
    def _service(self, s: Settings, ready_timeout: float = 60.0) -> Iterator[ServiceProcess]:
        svc = ServiceProcess(self._env(s), _free_port()).start()
        try:
            svc.wait_ready(ready_timeout)
            try:
                yield svc
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; service log:\n{svc.log_tail()}") from None
        finally:
            svc.stop()

    def _wait(self, what: Callable[[], int], total: int, stall: float = STALL_SECONDS) -> int:
        """Poll ``what()`` until it reaches ``total``; fail after ``stall`` s without progress."""
        last, last_change = -1, time.monotonic()
        while True:
            now_count = what()
            self.p.update(now_count)
            if now_count >= total:
                return now_count
            if now_count != last:
                last, last_change = now_count, time.monotonic()
            elif time.monotonic() - last_change > stall:
                raise RuntimeError(f"no progress for {stall:g}s at {now_count}/{total}")
            time.sleep(0.05)  # polling progress with a stall deadline

    # --- the run --------------------------------------------------------------------------
    def run(self) -> BenchResult:
        started = time.monotonic()
        o = self.o
        clients = shipped_clients()
        self.p.plan(6 + len(clients) + (1 if o.integrations > 0 else 0))
        with EmbeddedBroker() as broker, ReceiverProcess() as receiver:
            self.broker, self.receiver = broker, receiver
            main_topic = f"bench-{self.tag}-events"
            filtered_topic = f"bench-{self.tag}-custom"
            for topic in (main_topic, filtered_topic):
                create_topics(self._settings("topics", topic))
            self.p.phase("pre-producing events", o.events + o.filtered_count)
            selected = produce_events(
                self.bootstrap, main_topic, o.events, o.selected_fraction,
                prefix="e", progress=self.p.update,
            )  # fmt: skip
            produce_events(
                self.bootstrap, filtered_topic, o.filtered_count, 0.0, prefix="f",
                progress=lambda n: self.p.update(o.events + n),
            )  # fmt: skip
            for client in clients:
                self.p.phase(f"raw POST loop: {client}")
                self.result.baselines.setdefault("raw_post", {})[client] = self._raw_post(client)
            self.p.phase("raw consume", o.filtered_count)
            rate = consume_rate(
                self._consumer_config(
                    self._settings("raw", filtered_topic), f"bench-{self.tag}-raw-consume"
                ),
                filtered_topic,
                o.filtered_count,
            )
            self.result.baselines["raw_consume"] = asdict(rate)
            fmts = [o.format, "urlencoded" if o.format == "json" else "json"]
            for fmt in fmts:
                self.p.phase(f"service: {fmt} delivery", selected)
                self.result.service[fmt] = self._deliver(fmt, main_topic, o.events, selected)
            self.p.phase("service: filtered events", o.filtered_count)
            self.result.service["filtered"] = self._filtered(filtered_topic)
            self.p.phase("latency at a steady rate", int(o.rate * o.duration))
            self.result.service["latency"], self.result.baselines["raw_latency"] = self._latency()
            if o.integrations > 0:
                self.p.phase(f"service with {o.integrations} integrations")
                self.result.service["integrations"] = self._integrations()
        self.p.close()
        self.result.elapsed_seconds = time.monotonic() - started
        self.result.targets = self._targets()
        return self.result

    # --- baselines ------------------------------------------------------------------------
    def _raw_post(self, client: str) -> dict[str, Any]:
        receiver = self.receiver
        assert receiver is not None
        receiver.reset()
        out = subprocess.run(
            [
                sys.executable, "-m", "stream_wfm.bench.rawpost", "--client", client,
                "--url", receiver.url("/agent"), "--concurrency", str(self.o.concurrency),
                "--duration", str(self.o.duration), "--format", self.o.format,
            ],
            capture_output=True, text=True, check=False, timeout=60 + self.o.duration,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"raw POST loop ({client}) failed:\n{out.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        receiver.reset()
        return result

    # --- service scenarios ----------------------------------------------------------------
    def _prepare(self, run: str, topic: str, fmt: str, filler: int = 0) -> Settings:
        receiver = self.receiver
        assert receiver is not None
        s = self._settings(run, topic)
        create_topics(s)
        cfg = integration(ACCOUNT_ID, receiver.url("/agent"), fmt == "json")
        write_integrations(self.bootstrap, s.config_topic, [cfg], filler=filler)
        return s

    def _deliver(self, fmt: str, topic: str, events: int, selected: int) -> dict[str, Any]:
        receiver = self.receiver
        assert receiver is not None
        receiver.reset()
        s = self._prepare(fmt, topic, fmt)
        with self._service(s) as svc:
            ready = svc.ready_seconds
            cpu0 = svc.cpu_seconds()
            sampler = CpuSampler(svc.pid).start()
            try:
                self._wait(receiver.count, selected)
                if selected < events:
                    self._wait(
                        lambda: int(svc.metrics().get("stream_wfm_events_consumed_total", 0)),
                        events,
                    )
            finally:
                sampler.stop()
            cpu_total = svc.cpu_seconds() - cpu0
            dump = receiver.dump()
        times: list[int] = sorted(dump["times"])
        ids: list[str] = dump["ids"]
        distinct = len(set(ids))
        result: dict[str, Any] = {
            "format": fmt,
            "events": events,
            "selected": selected,
            "received": len(ids),
            "distinct": distinct,
            "duplicates": len(ids) - distinct,
            "missing": selected - distinct,
            "ready_seconds": ready,
            "cpu_seconds_total": cpu_total,
        }
        if len(times) >= 2:
            i10, i90, t10, t90 = _steady_window(times)
            seconds = (t90 - t10) / 1e9
            delivered = i90 - i10
            cpu = sampler.at(t90) - sampler.at(t10)
            result.update(
                steady_seconds=seconds,
                throughput_eps=delivered / seconds if seconds > 0 else 0.0,
                cpu_us_per_event=cpu * 1e6 / delivered if delivered else 0.0,
                first_to_last_eps=(len(times) - 1) / ((times[-1] - times[0]) / 1e9)
                if times[-1] > times[0]
                else 0.0,
            )
        return result

    def _filtered(self, topic: str) -> dict[str, Any]:
        total = self.o.filtered_count
        s = self._prepare("filtered", topic, "json")
        with self._service(s) as svc:
            cpu = CpuSampler(svc.pid).start()
            samples: list[tuple[int, float]] = []

            def consumed() -> int:
                value = svc.metrics().get("stream_wfm_events_consumed_total", 0.0)
                samples.append((time.monotonic_ns(), value))
                return int(value)

            try:
                self._wait(consumed, total)
            finally:
                cpu.stop()
            filtered = svc.metrics().get("stream_wfm_events_filtered_total", 0.0)
        t10 = crossing(samples, total * 0.1)
        t90 = crossing(samples, total * 0.9)
        result: dict[str, Any] = {"events": total, "filtered": int(filtered)}
        if t10 is not None and t90 is not None and t90 > t10:
            seconds = (t90 - t10) / 1e9
            n = total * 0.8
            result.update(
                steady_seconds=seconds,
                events_per_second=n / seconds,
                cpu_us_per_event=(cpu.at(t90) - cpu.at(t10)) * 1e6 / n,
            )
        return result

    def _latency(self) -> tuple[dict[str, Any], dict[str, Any]]:
        receiver = self.receiver
        assert receiver is not None
        topic = f"bench-{self.tag}-rate"
        s = self._prepare("latency", topic, self.o.format)
        producer = RateProducer(self.bootstrap, topic, self.o.rate, self.o.duration)
        raw_config = self._consumer_config(s, f"bench-{self.tag}-raw-latency")
        raw = subprocess.Popen(
            [
                sys.executable, "-m", "stream_wfm.bench.rawconsume",
                "--config", json.dumps(raw_config), "--topic", topic,
                "--count", str(producer.total), "--timeout", str(60 + self.o.duration),
            ],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert raw.stdout is not None
            first = raw.stdout.readline()
            if "assigned" not in first:
                raise RuntimeError("the raw latency consumer did not join its group")
            with self._service(s) as svc:
                receiver.reset()
                cpu0 = svc.cpu_seconds()
                producer.start()
                self._wait(receiver.count, producer.total)
                producer.join()
                cpu = svc.cpu_seconds() - cpu0
                dump = receiver.dump()
            raw_out, _ = raw.communicate(timeout=60 + self.o.duration)
        finally:
            if raw.poll() is None:
                raw.kill()
                raw.wait()
        # The first 10 % of the events warm both consumers up (first fetches after the
        # join); they count for neither.
        warmup = producer.total // 10
        service_lat = []
        for rid, at in zip(dump["ids"], dump["times"], strict=True):
            sent = send_time(rid)
            if sent is not None and sent[0] >= warmup:
                service_lat.append((at - sent[1]) / 1e6)
        raw_pairs = json.loads(raw_out.strip().splitlines()[-1])["latencies_ns"]
        raw_lat = [ns / 1e6 for n, ns in raw_pairs if n >= warmup]
        service_lat.sort()
        raw_lat.sort()

        def summary(values: list[float]) -> dict[str, Any]:
            return {
                "events": len(values),
                "p50_ms": _percentile(values, 0.5),
                "p99_ms": _percentile(values, 0.99),
                "max_ms": values[-1] if values else 0.0,
            }

        service = {
            "rate": self.o.rate,
            **summary(service_lat),
            "expected": producer.total,
            "cpu_us_per_event": cpu * 1e6 / max(1, len(service_lat)),
        }
        return service, {"rate": self.o.rate, **summary(raw_lat)}

    def _integrations(self) -> dict[str, Any]:
        k = self.o.integrations
        s = self._settings("rss", f"bench-{self.tag}-events")
        create_topics(s)
        receiver = self.receiver
        assert receiver is not None
        cfg = integration(ACCOUNT_ID, receiver.url("/agent"), True)
        write_integrations(self.bootstrap, s.config_topic, [cfg], filler=k - 1)
        with self._service(s, ready_timeout=300.0) as svc:
            ready = svc.ready_seconds
            accounts = svc.metrics().get("stream_wfm_config_accounts", 0.0)
            rss = svc.rss_bytes()
        return {
            "integrations": k,
            "accounts_loaded": int(accounts),
            "rss_mb": rss / 1e6,
            "ready_seconds": ready,
        }

    # --- targets ----------------------------------------------------------------------------
    def _targets(self) -> list[Target]:
        r = self.result
        out: list[Target] = []
        posts = r.baselines.get("raw_post", {})
        main = r.service.get(self.o.format, {})
        if posts and "throughput_eps" in main:
            best_name = max(posts, key=lambda c: posts[c]["requests_per_second"])
            best = posts[best_name]
            value = main["throughput_eps"]
            ratio = value / best["requests_per_second"]
            out.append(Target(
                f"throughput ({self.o.format})", value, "events/s", best["requests_per_second"],
                f"raw POST loop ({best_name})", ratio, ">= 0.80x", ratio >= 0.8,
            ))  # fmt: skip
            cpu = main["cpu_us_per_event"]
            ratio = cpu / best["cpu_us_per_request"]
            out.append(Target(
                "service CPU per event", cpu, "us/event", best["cpu_us_per_request"],
                f"raw POST loop ({best_name}) CPU/request", ratio, "<= 1.25x", ratio <= 1.25,
            ))  # fmt: skip
        json_r, url_r = r.service.get("json", {}), r.service.get("urlencoded", {})
        if "throughput_eps" in json_r and "throughput_eps" in url_r:
            ratio = url_r["throughput_eps"] / json_r["throughput_eps"]
            out.append(Target(
                "urlencoded vs json", url_r["throughput_eps"], "events/s",
                json_r["throughput_eps"], "json delivery", ratio, ">= 0.90x", ratio >= 0.9,
            ))  # fmt: skip
        filt = r.service.get("filtered", {})
        raw = r.baselines.get("raw_consume", {})
        if "events_per_second" in filt and raw.get("per_second"):
            ratio = filt["events_per_second"] / raw["per_second"]
            out.append(Target(
                "filtered-out events", filt["events_per_second"], "events/s", raw["per_second"],
                "raw consume", ratio, ">= 0.25x", ratio >= 0.25,
            ))  # fmt: skip
        lat, raw_lat = r.service.get("latency", {}), r.baselines.get("raw_latency", {})
        if lat.get("events") and raw_lat.get("events"):
            ratio = lat["p99_ms"] / raw_lat["p99_ms"] if raw_lat["p99_ms"] > 0 else float("inf")
            out.append(Target(
                f"p99 latency @ {self.o.rate:g}/s", lat["p99_ms"], "ms", raw_lat["p99_ms"],
                "raw consumer p99", ratio, "<= 1.20x", ratio <= 1.2,
            ))  # fmt: skip
        if "ready_seconds" in main and raw.get("join_seconds") is not None:
            join = raw["join_seconds"]
            value = main["ready_seconds"]
            out.append(Target(
                "start to ready", value, "s", join, "group join time", None,
                "<= 2 s + join", value <= 2.0 + join,
            ))  # fmt: skip
        ints = r.service.get("integrations")
        if ints:
            out.append(Target(
                f"RSS, {ints['integrations']} integrations", ints["rss_mb"], "MB", None, "", None,
                f"<= {RSS_LIMIT_MB:g} MB", ints["rss_mb"] <= RSS_LIMIT_MB,
            ))  # fmt: skip
        return out


def run_bench(options: BenchOptions, progress: Progress) -> BenchResult:
    return Bench(options, progress).run()


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


def format_table(result: BenchResult) -> str:
    """The human-readable report: the measurements, then the targets."""
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
        rows.append((
            f"raw consumer @ {raw_lat['rate']:g}/s", "", "",
            f"p50 {_num(raw_lat['p50_ms'], 'ms')}  p99 {_num(raw_lat['p99_ms'], 'ms')}",
        ))  # fmt: skip
    for fmt in ("json", "urlencoded"):
        svc = result.service.get(fmt)
        if svc and "throughput_eps" in svc:
            rows.append((
                f"stream-wfm, {fmt}", _num(svc["throughput_eps"], "ev/s"),
                _num(svc["cpu_us_per_event"], "us/ev"),
                f"ready {svc['ready_seconds']:.2f} s; {svc['distinct']}/{svc['selected']} recv",
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
            f"p50 {_num(lat['p50_ms'], 'ms')}  p99 {_num(lat['p99_ms'], 'ms')}",
        ))  # fmt: skip
    ints = result.service.get("integrations")
    if ints:
        rows.append((
            f"stream-wfm, {ints['integrations']} integrations", "", "",
            f"RSS {ints['rss_mb']:.0f} MB; ready {ints['ready_seconds']:.1f} s",
        ))  # fmt: skip
    lines.extend(_grid(rows))
    lines.append("")
    trows = [("target", "stream-wfm", "baseline", "ratio", "target", "result")]
    for t in result.targets:
        base = "-" if t.baseline is None else f"{_num(t.baseline)} ({t.baseline_name})"
        trows.append((
            t.name, _num(t.value, t.unit), base, "-" if t.ratio is None else f"{t.ratio:.2f}x",
            t.target, "PASS" if t.passed else "FAIL",
        ))  # fmt: skip
    lines.extend(_grid(trows))
    return "\n".join(lines)


def _grid(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out
