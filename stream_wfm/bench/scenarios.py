"""The service scenarios, each a ``stream-wfm run`` subprocess on the harness: delivering the
events as JSON or URL-encoded, unsigned or signed; processing custom-state events (all
filtered out); latency at a steady rate, side by side with a raw consumer of the same topic
with the service's consumer settings; and start-up and RSS with many integrations loaded.

Steady-state figures use the window between 10 % and 90 % of the events, so
start-up and the tail do not count; CPU in that window is interpolated from
samples of ``/proc/<pid>/stat`` taken every 20 ms.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from stream_wfm.bench.harness import Harness
from stream_wfm.bench.rawconsume import send_time
from stream_wfm.bench.service_proc import CpuSampler, crossing
from stream_wfm.bench.workload import RateProducer


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


def deliver(
    h: Harness,
    fmt: str,
    topic: str,
    events: int,
    selected: int,
    signing_secrets: tuple[str, ...] = (),
    run: str | None = None,
) -> dict[str, Any]:
    """The service delivering the pre-produced ``topic`` as ``fmt`` (signed with
    ``signing_secrets`` when given): what arrived, start-up, and the steady-state throughput
    and CPU per event. ``run`` names its topics and consumer group (one name per run)."""
    receiver = h.receiver
    receiver.reset()
    if run is None:
        run = f"{fmt}-signed" if signing_secrets else fmt
    s = h.prepare(run, topic, fmt, signing_secrets=signing_secrets)
    with h.service(s) as svc:
        ready = svc.ready_seconds
        cpu0 = svc.cpu_seconds()
        sampler = CpuSampler(svc.pid).start()
        try:
            h.wait(receiver.count, selected)
            if selected < events:
                h.wait(
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
        "signing_secrets": len(signing_secrets),
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


def filtered_out(
    h: Harness, topic: str, total: int | None = None, run: str = "filtered"
) -> dict[str, Any]:
    """The service consuming the custom-state ``topic`` (``total`` events, default the
    options' filtered count), every event filtered out: the steady-state rate and CPU
    per event, from the service's consumed counter. ``run`` names its topics and group."""
    if total is None:
        total = h.options.filtered_count
    s = h.prepare(run, topic, "json")
    with h.service(s) as svc:
        cpu = CpuSampler(svc.pid).start()
        samples: list[tuple[int, float]] = []

        def consumed() -> int:
            value = svc.metrics().get("stream_wfm_events_consumed_total", 0.0)
            samples.append((time.monotonic_ns(), value))
            return int(value)

        try:
            h.wait(consumed, total)
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


def latency(h: Harness) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send-to-arrival latency at ``rate`` events/s for ``duration`` s: the service's (and its
    CPU per event), and that of a raw consumer of the same topic (its own process)."""
    o, receiver = h.options, h.receiver
    topic = h.name("rate")
    s = h.prepare("latency", topic, o.format)
    producer = RateProducer(h.bootstrap, topic, o.rate, o.duration)
    raw_config = h.consumer_config(s, h.name("raw-latency"))
    raw = subprocess.Popen(
        [
            sys.executable, "-m", "stream_wfm.bench.rawconsume",
            "--config", json.dumps(raw_config), "--topic", topic,
            "--count", str(producer.total), "--timeout", str(60 + o.duration),
        ],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert raw.stdout is not None
        first = raw.stdout.readline()
        if "assigned" not in first:
            raise RuntimeError("the raw latency consumer did not join its group")
        with h.service(s) as svc:
            receiver.reset()
            cpu0 = svc.cpu_seconds()
            producer.start()
            h.wait(receiver.count, producer.total)
            producer.join()
            cpu = svc.cpu_seconds() - cpu0
            dump = receiver.dump()
        raw_out, _ = raw.communicate(timeout=60 + o.duration)
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
        "rate": o.rate,
        **summary(service_lat),
        "expected": producer.total,
        "cpu_us_per_event": cpu * 1e6 / max(1, len(service_lat)),
    }
    return service, {"rate": o.rate, **summary(raw_lat)}


def many_integrations(h: Harness) -> dict[str, Any]:
    """The service with ``integrations`` integrations loaded: its RSS and start to ready."""
    k = h.options.integrations
    s = h.prepare("rss", h.name("events"), "json", filler=k - 1)
    with h.service(s, ready_timeout=300.0) as svc:
        ready = svc.ready_seconds
        accounts = svc.metrics().get("stream_wfm_config_accounts", 0.0)
        rss = svc.rss_bytes()
    return {
        "integrations": k,
        "accounts_loaded": int(accounts),
        "rss_mb": rss / 1e6,
        "ready_seconds": ready,
    }
