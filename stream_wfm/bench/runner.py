"""One bench run: the order of its phases, each measured by a scenario on the harness.

One run:

1. starts an embedded broker and the minimal receiver (its own process);
2. pre-produces the events: ``events`` agent-state events (a ``selected_fraction``
   of them in default states) and, for the filter scenario, ``filtered_events``
   custom-state events;
3. baselines: the raw POST loop of every shipped HTTP client against the
   receiver at the same concurrency; raw confluent-kafka consume of the
   custom-state events (and the group's join time);
4. the service (``stream-wfm run`` subprocess) delivering the events in the main
   format, then again signed with one secret (and, in-process, what building and
   signing one request costs with 1 and 3 secrets), then in the other format;
   processing the custom-state events (all filtered out);
   in rate mode, side by side with a raw consumer of the same topic with the
   service's consumer settings; and, with ``integrations`` > 0, loaded with
   that many integrations (RSS);
5. the table of measurements, then the ratios of the service's figures to the baselines
   of this run.

The measurements are in :mod:`~stream_wfm.bench.baselines` and
:mod:`~stream_wfm.bench.scenarios`; the ratios and the table in
:mod:`~stream_wfm.bench.report`.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from stream_wfm.bench import scenarios
from stream_wfm.bench.baselines import raw_consume, raw_post, shipped_clients
from stream_wfm.bench.harness import BenchOptions, Harness, default_transport
from stream_wfm.bench.report import BenchResult, compare
from stream_wfm.bench.signing import signing_cost
from stream_wfm.bench.workload import SIGNING_SECRETS, produce_events
from stream_wfm.kafka.admin import create_topics
from stream_wfm.terminal.progress import Phases


def run_bench(options: BenchOptions, progress: Phases) -> BenchResult:
    started = time.monotonic()
    o, p = options, progress
    result = BenchResult(asdict(o), o.transport or default_transport())
    clients = shipped_clients()
    p.plan(7 + len(clients) + (1 if o.integrations > 0 else 0))
    with Harness.started(o, p) as h:
        main_topic, filtered_topic = h.name("events"), h.name("custom")
        for topic in (main_topic, filtered_topic):
            create_topics(h.settings("topics", topic))
        p.phase("pre-producing events", o.events + o.filtered_count)
        selected = produce_events(
            h.bootstrap, main_topic, o.events, o.selected_fraction, prefix="e", progress=p.update,
        )  # fmt: skip
        produce_events(
            h.bootstrap, filtered_topic, o.filtered_count, 0.0, prefix="f",
            progress=lambda n: p.update(o.events + n),
        )  # fmt: skip
        for client in clients:
            p.phase(f"raw POST loop: {client}")
            result.baselines.setdefault("raw_post", {})[client] = raw_post(h, client)
        p.phase("raw consume", o.filtered_count)
        result.baselines["raw_consume"] = raw_consume(h, filtered_topic)
        for fmt in (o.format, "urlencoded" if o.format == "json" else "json"):
            p.phase(f"service: {fmt} delivery", selected)
            result.service[fmt] = scenarios.deliver(h, fmt, main_topic, o.events, selected)
            if fmt == o.format:  # signed right after unsigned: the least drift between them
                p.phase(f"service: {fmt} delivery, signed (1 secret)", selected)
                result.service["signed"] = scenarios.deliver(
                    h, fmt, main_topic, o.events, selected, signing_secrets=SIGNING_SECRETS[:1]
                )
                result.service["signing"] = signing_cost(fmt)
        p.phase("service: filtered events", o.filtered_count)
        result.service["filtered"] = scenarios.filtered_out(h, filtered_topic)
        p.phase("latency at a steady rate", int(o.rate * o.duration))
        result.service["latency"], result.baselines["raw_latency"] = scenarios.latency(h)
        if o.integrations > 0:
            p.phase(f"service with {o.integrations} integrations")
            result.service["integrations"] = scenarios.many_integrations(h)
    p.close()
    result.elapsed_seconds = time.monotonic() - started
    result.comparisons = compare(result)
    return result
