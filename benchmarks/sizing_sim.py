"""A discrete-event simulation of one stream-wfm instance, to check docs/sizing.md.

Standard library only. Two models, both driven by the measured costs (the flags'
defaults, docs/performance.md and docs/sizing.md):

* **the loop** (``loop_sim``): events arrive (Poisson) at ``rate``; each costs
  ``cost_us`` of CPU on the one loop thread (a single FIFO server that gets
  ``cpu_share`` of a core); then it waits for one of ``max_in_flight`` request slots and
  is in flight for the endpoint's latency (fixed, exponential or log-normal). At most
  ``max_buffered`` events are pending; the rest wait in Kafka (lag). Reports the
  achieved throughput, the loop's utilisation, the mean requests in flight, and the
  queueing delay (arrival to request sent) p50/p99.
* **one failing endpoint** (``endpoint_sim``): an endpoint that answers every attempt
  with a retryable failure for ``fail_s`` seconds, then 2xx; the breaker of
  docs/contract.md §10 (window, minimum attempts, ratio, open period doubling to 600 s,
  a probe when half-open), the retry tiers and ``max_retries`` of §6, deferrals to the
  tier of the next attempt while the breaker is open. Reports retry-topic records
  (retries and deferrals), dead letters and attempts, during the failure and in all.
  Above one event per second per endpoint events are simulated in one-second cohorts
  (a count per cohort: the same arithmetic, fewer simulation events).

``--grid`` prints the tables of docs/sizing.md (the arithmetic, with a loop simulation
of each cell's per-instance load to check it); ``--loop`` and ``--endpoint`` run one
case.

    python benchmarks/sizing_sim.py --grid
    python benchmarks/sizing_sim.py --loop --rate 10000 --latency-ms 100 --max-in-flight 2048
    python benchmarks/sizing_sim.py --endpoint --endpoint-rate 0.5 --fail-s 3600
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# Measured (docs/performance.md, docs/sizing.md); the flags' defaults.
COST_US = 50.0  # service CPU per delivered JSON event, whole process, fast endpoint
LOOP_SHARE = 0.85  # share of that on the loop thread (the rest: consumer, producer threads)
FILTERED_US = 3.5  # service CPU per filtered event
RSS_READY_MB = 71.0  # measured: RSS at ready with one integration (sizing_run.py)
KB_IDLE = 0.8  # measured: 144-151 MB at ready with 100,000 integrations
KB_ACTIVE = 1.4  # docs/design.md: an account whose config was parsed (template not counted)
BACKLOG_MB = 420.0  # measured: RSS grew by 260-420 MB while draining a 100k-event backlog
KB_IN_FLIGHT = 10.0  # assumed (not measured): a connection and a request in flight
TIERS = (10.0, 60.0, 600.0, 3600.0)  # STREAM_WFM_RETRY_BACKOFF default 10s,1m,10m,1h


@dataclass
class LoopResult:
    throughput: float  # events/s completed in the measured window
    utilisation: float  # share of the loop's core busy
    in_flight: float  # mean requests in flight
    delay_p50_ms: float  # arrival -> request sent
    delay_p99_ms: float
    max_pending: int


def latency_sampler(kind: str, mean_s: float, rng: random.Random) -> Callable[[], float]:
    """Endpoint latency draws with mean ``mean_s``: fixed, exponential, or log-normal
    (sigma 0.5, a p99 of ~2.5x the median)."""
    if kind == "fixed":
        return lambda: mean_s
    if kind == "exp":
        return lambda: rng.expovariate(1.0 / mean_s) if mean_s > 0 else 0.0
    if kind == "lognormal":
        sigma = 0.5
        mu = math.log(mean_s) - sigma * sigma / 2 if mean_s > 0 else 0.0
        return lambda: rng.lognormvariate(mu, sigma) if mean_s > 0 else 0.0
    raise ValueError(f"unknown latency distribution {kind!r}")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def loop_sim(
    rate: float,
    cost_us: float,
    max_in_flight: int,
    latency_s: float,
    *,
    latency_dist: str = "fixed",
    duration_s: float = 10.0,
    warmup_s: float = 1.0,
    cpu_share: float = 1.0,
    max_buffered: int = 20_000,
    poisson: bool = True,
    seed: int = 1,
) -> LoopResult:
    """One instance's loop for ``duration_s`` simulated seconds (the first ``warmup_s``
    not measured)."""
    rng = random.Random(seed)
    draw = latency_sampler(latency_dist, latency_s, rng)
    service_s = cost_us / 1e6 / cpu_share
    # heap of (time, seq, kind, arrival time); kinds: 0 arrival, 1 cpu done, 2 response
    heap: list[tuple[float, int, int, float]] = []
    seq = 0
    lag: deque[float] = deque()  # arrived, not yet taken in (buffer full)
    cpu_queue: deque[float] = deque()
    slot_queue: deque[float] = deque()
    cpu_busy_until = -1.0
    cpu_running = False
    pending = in_flight = completed = 0
    busy = 0.0
    in_flight_area = 0.0
    last_t = warmup_s
    delays: list[float] = []
    max_pending = 0

    def push(t: float, kind: int, born: float) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, born))

    def next_arrival(t: float) -> float:
        return t + (rng.expovariate(rate) if poisson else 1.0 / rate)

    if rate > 0:
        push(next_arrival(0.0), 0, 0.0)
    while heap:
        t, _, kind, born = heapq.heappop(heap)
        if t > duration_s:
            break
        if t > warmup_s:
            in_flight_area += in_flight * (t - max(last_t, warmup_s))
            last_t = t
        if kind == 0:
            lag.append(t)
            push(next_arrival(t), 0, 0.0)
        elif kind == 1:
            cpu_running = False
            if in_flight < max_in_flight:
                in_flight += 1
                if t > warmup_s:
                    delays.append(t - born)
                push(t + draw(), 2, born)
            else:
                slot_queue.append(born)
        else:
            in_flight -= 1
            pending -= 1
            if t > warmup_s:
                completed += 1
            if slot_queue:
                waited = slot_queue.popleft()
                in_flight += 1
                if t > warmup_s:
                    delays.append(t - waited)
                push(t + draw(), 2, waited)
        while lag and pending < max_buffered:
            cpu_queue.append(lag.popleft())
            pending += 1
        max_pending = max(max_pending, pending)
        if not cpu_running and cpu_queue:
            start = max(t, cpu_busy_until)
            done = start + service_s
            cpu_busy_until = done
            cpu_running = True
            if done > warmup_s:
                busy += min(done, duration_s) - max(start, warmup_s)
            push(done, 1, cpu_queue.popleft())
    window = duration_s - warmup_s
    in_flight_area += in_flight * (duration_s - max(last_t, warmup_s))
    return LoopResult(
        throughput=completed / window,
        utilisation=busy / window,
        in_flight=in_flight_area / window,
        delay_p50_ms=_percentile(delays, 0.50) * 1e3,
        delay_p99_ms=_percentile(delays, 0.99) * 1e3,
        max_pending=max_pending,
    )


@dataclass
class Breaker:
    """docs/contract.md §10's breaker of one endpoint, time passed in."""

    window_s: float = 60.0
    min_attempts: int = 10
    ratio: float = 0.7
    open_s: float = 30.0
    state: str = "closed"
    reopen_at: float = 0.0
    open_for: float = 0.0
    probing: bool = False
    buckets: dict[int, list[float]] = field(default_factory=dict)  # second -> [attempts, failures]

    def _count(self, now: float, n: float, failed: bool) -> None:
        bucket = self.buckets.setdefault(int(now), [0.0, 0.0])
        bucket[0] += n
        bucket[1] += n if failed else 0.0
        oldest = int(now) - int(self.window_s) + 1
        for second in [s for s in self.buckets if s < oldest]:
            del self.buckets[second]

    def admit(self, now: float) -> str:
        """``send``, ``probe`` or ``defer``."""
        if self.state == "open":
            if now < self.reopen_at:
                return "defer"
            self.state = "half_open"
            self.probing = False
        if self.state == "half_open":
            if self.probing:
                return "defer"
            self.probing = True
            return "probe"
        return "send"

    def record(self, now: float, n: float, ok: bool, probe: bool) -> None:
        if probe:
            self.probing = False
            if ok:
                self.state, self.open_for, self.buckets = "closed", 0.0, {}
            else:
                self.open_for = min(600.0, self.open_for * 2)
                self.state, self.reopen_at = "open", now + self.open_for
            return
        self._count(now, n, not ok)
        attempts = sum(b[0] for b in self.buckets.values())
        failures = sum(b[1] for b in self.buckets.values())
        if (
            self.state == "closed"
            and attempts >= self.min_attempts
            and failures >= self.ratio * attempts
        ):
            self.open_for = self.open_s
            self.state, self.reopen_at = "open", now + self.open_s


@dataclass
class EndpointResult:
    events: float
    retry_records: float  # written to retry tiers (retries and deferrals), whole run
    retry_records_in_failure: float  # of those, written while the endpoint failed
    deferrals: float
    dead_letters: float
    attempts: float
    delivered: float
    breaker_opened: bool
    records_by_tier: list[float]
    records_last_minute: float = 0.0  # written in the failure's last 60 s


def endpoint_sim(
    rate: float,
    fail_s: float,
    *,
    horizon_s: float | None = None,
    tiers: tuple[float, ...] = TIERS,
    max_retries: int = 3,
    breaker: Breaker | None = None,
    auto_disable_s: float | None = None,
    defer_to_probe: bool = True,
    seed: int = 1,
) -> EndpointResult:
    """One endpoint at ``rate`` events/s (of one instance), failing (retryably, fast)
    until ``fail_s``, answering 2xx after. Arrivals stop at ``fail_s``; the simulation
    runs until ``horizon_s`` (default: ``fail_s`` + the longest tier + 1,200 s) so what
    waits in the tiers comes back. ``auto_disable_s``: once the breaker has been open that
    long without a successful probe, the integration is disabled and every event that
    comes (new or due) is dead-lettered (``endpoint_disabled``). ``defer_to_probe`` (what
    the service does since 2026-12-07, docs/contract.md §10): a deferral of the open
    breaker is due when the breaker lets the next probe through, in the first tier
    covering that wait; False: the tier's own delay, as the service did before (the
    10 s tier, again and again while the breaker stays open)."""
    rng = random.Random(seed)
    b = breaker or Breaker()
    horizon = fail_s + tiers[-1] + 1200.0 if horizon_s is None else horizon_s
    cohort = rate >= 1.0  # one-second cohorts of `rate` events each
    heap: list[tuple[float, int, float, int]] = []  # (time, seq, count, attempt)
    seq = 0
    t = 0.0
    while True:
        t += 1.0 if cohort else rng.expovariate(rate)
        if t >= fail_s:
            break
        seq += 1
        heap.append((t, seq, rate if cohort else 1.0, 1))
    heapq.heapify(heap)
    res = EndpointResult(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False, [0.0] * len(tiers))
    res.events = sum(item[2] for item in heap)
    opened = False
    open_since: float | None = None
    disabled = False

    def write(now: float, n: float, tier: int, attempt: int, wait: float = 0.0) -> None:
        nonlocal seq
        if wait > tiers[tier]:  # as Retry-After: the first tier covering it, capped
            wait = min(wait, tiers[-1])
            while tier < len(tiers) - 1 and tiers[tier] < wait:
                tier += 1
        res.retry_records += n
        res.records_by_tier[tier] += n
        if now < fail_s:
            res.retry_records_in_failure += n
            if now >= fail_s - 60.0:
                res.records_last_minute += n
        seq += 1
        heapq.heappush(heap, (now + max(wait, tiers[tier]), seq, n, attempt))

    def until_probe() -> float:
        return max(0.0, b.reopen_at - now) if defer_to_probe else 0.0

    def tier_of(retry_number: int) -> int:
        return min(max(retry_number, 1), len(tiers)) - 1

    while heap:
        now, _, n, attempt = heapq.heappop(heap)
        if now > horizon:
            break
        ok = now >= fail_s
        if b.state == "closed":
            open_since = None
        elif open_since is None:
            open_since = now
        if auto_disable_s is not None and open_since is not None:
            disabled = disabled or now - open_since >= auto_disable_s
        if disabled:
            res.dead_letters += n
            continue
        decision = b.admit(now)
        if decision == "defer":
            res.deferrals += n
            write(now, n, tier_of(attempt - 1), attempt, until_probe())
            continue
        if decision == "probe":
            # one event of the cohort is the probe; the others are deferred
            res.attempts += 1
            b.record(now, 1, ok, probe=True)
            if ok:
                res.delivered += 1
            else:
                res.deferrals += 1
                write(now, 1, tier_of(attempt - 1), attempt, until_probe())
            if n > 1:
                res.deferrals += n - 1
                write(now, n - 1, tier_of(attempt - 1), attempt, until_probe())
            continue
        res.attempts += n
        b.record(now, n, ok, probe=False)
        if b.state == "open" and not opened:
            opened, open_since = True, now
        if ok:
            res.delivered += n
        elif attempt - 1 < max_retries:
            write(now, n, tier_of(attempt), attempt + 1)
        else:
            res.dead_letters += n
    res.breaker_opened = opened
    return res


# --- the sizing arithmetic of docs/sizing.md ----------------------------------------

ACCOUNTS = (10_000, 100_000, 1_000_000)
RATES = (5_000, 50_000, 200_000)
LATENCIES_MS = (10, 100, 500)


@dataclass
class Cell:
    accounts: int
    rate: float
    latency_ms: float
    instances: int
    by_cpu: int
    by_in_flight: int
    partitions: int
    per_instance: float
    in_flight: float
    rss_mb: float


def size(
    accounts: int,
    rate: float,
    latency_ms: float,
    *,
    cost_us: float = COST_US,
    loop_share: float = LOOP_SHARE,
    target: float = 0.6,
    max_in_flight: int = 256,
    backlog_mb: float = BACKLOG_MB,
    kb_in_flight: float = KB_IN_FLIGHT,
) -> Cell:
    """Instances, partitions and memory for one cell (docs/sizing.md, "The arithmetic")."""
    loop_s = cost_us * loop_share / 1e6
    by_cpu = math.ceil(rate * loop_s / target)
    by_in_flight = math.ceil(rate * latency_ms / 1e3 / max_in_flight)
    instances = max(1, by_cpu, by_in_flight)
    partitions = 6
    while partitions < 2 * instances:
        partitions *= 2
    per_instance = rate / instances
    in_flight = per_instance * latency_ms / 1e3
    rss = (  # the worst case: every account active, a full buffer, every slot in use
        RSS_READY_MB
        + accounts * KB_ACTIVE / 1e3
        + backlog_mb
        + min(in_flight, max_in_flight) * kb_in_flight / 1e3
    )
    return Cell(
        accounts,
        rate,
        latency_ms,
        instances,
        by_cpu,
        by_in_flight,
        partitions,
        per_instance,
        in_flight,
        rss,
    )


def grid(args: argparse.Namespace) -> None:
    def sized(accounts: int, rate: float, latency_ms: float, max_in_flight: int) -> Cell:
        """:func:`size` with this run's CPU per event, loop share and target."""
        return size(
            accounts, rate, latency_ms, cost_us=args.cost_us, loop_share=args.loop_share,
            target=args.target, max_in_flight=max_in_flight,
        )  # fmt: skip

    print(
        f"# CPU {args.cost_us:g} us/event ({args.loop_share:.0%} on the loop), target loop "
        f"utilisation {args.target:.0%}, max_in_flight {args.max_in_flight}"
    )
    for mif in (args.max_in_flight, args.raised_in_flight):
        print(f"\n## instances (by CPU / by in-flight), max_in_flight {mif}")
        print("| events/s | 10 ms | 100 ms | 500 ms | partitions (10 ms / 500 ms) |")
        print("|---|---|---|---|---|")
        for rate in RATES:
            cells = [sized(10_000, rate, lat, mif) for lat in LATENCIES_MS]
            row = " | ".join(f"{c.instances} ({c.by_cpu}/{c.by_in_flight})" for c in cells)
            print(f"| {rate:,} | {row} | {cells[0].partitions} / {cells[2].partitions} |")
    print("\n## memory per instance (MB): at ready, all accounts active, + backlog and slots")
    print("| accounts | ready (idle accounts) | accounts active | worst case, 500 ms |")
    print("|---|---|---|---|")
    for accounts in ACCOUNTS:
        ready = RSS_READY_MB + accounts * KB_IDLE / 1e3
        active = RSS_READY_MB + accounts * KB_ACTIVE / 1e3
        worst = size(accounts, 50_000, 500, max_in_flight=args.raised_in_flight).rss_mb
        print(f"| {accounts:,} | {ready:.0f} | {active:.0f} | {worst:.0f} |")
    print(f"\n## the grid, max_in_flight {args.raised_in_flight} (cores: 1 requested per instance)")
    print(
        "| accounts | events/s | instances (10 / 100 / 500 ms) | partitions "
        "| max in flight per instance at 500 ms | memory per instance, worst case |"
    )
    print("|---|---|---|---|---|---|")
    for accounts in ACCOUNTS:
        for rate in RATES:
            cells = [sized(accounts, rate, lat, args.raised_in_flight) for lat in LATENCIES_MS]
            n = " / ".join(str(c.instances) for c in cells)
            print(
                f"| {accounts:,} | {rate:,} | {n} | {max(c.partitions for c in cells)} | "
                f"{cells[2].in_flight:,.0f} | {max(c.rss_mb for c in cells):,.0f} MB |"
            )
    print("\n## check: loop simulation of one instance at each cell's per-instance load")
    print(
        "| events/s | latency | instances | per instance | sim: events/s | loop busy "
        "| in flight (L x rate) | delay p99 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for rate in RATES:
        for lat in LATENCIES_MS:
            c = sized(10_000, rate, lat, args.raised_in_flight)
            r = loop_sim(
                c.per_instance,
                args.cost_us * args.loop_share,
                args.raised_in_flight,
                lat / 1e3,
                latency_dist="lognormal",
                duration_s=args.duration,
                seed=args.seed,
            )
            print(
                f"| {rate:,} | {lat} ms | {c.instances} | {c.per_instance:,.0f} | "
                f"{r.throughput:,.0f} | {r.utilisation:.0%} | {r.in_flight:,.0f} "
                f"({c.in_flight:,.0f}) | {r.delay_p99_ms:.1f} ms |"
            )
    print("\n## retry-topic records when 5 % of endpoints fail (fast 503s) for an hour")
    print(f"(auto-disable: STREAM_WFM_AUTO_DISABLE_AFTER={args.auto_disable_s:g}s)")
    print(
        "| accounts | events/s | instances | per endpoint and instance | breaker opens "
        "| records in the hour | records in all | in the last minute, /s "
        f"| cores for them ({args.record_cost_us:g} us each) | dead letters "
        "| with auto-disable: records in all | dead letters | deferred a first-tier delay "
        "at a time (before 2026-12-07): records in all |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for accounts in ACCOUNTS:
        for rate in RATES:
            c = sized(accounts, rate, 100, args.raised_in_flight)
            r_e = rate / accounts / c.instances
            reps = args.replicas if r_e < 0.1 else (3 if r_e < 1.0 else 1)
            seeds = range(args.seed, args.seed + reps)
            runs = [endpoint_sim(r_e, args.fail_s, seed=k) for k in seeds]
            off = _mean(
                [
                    endpoint_sim(r_e, args.fail_s, auto_disable_s=args.auto_disable_s, seed=k)
                    for k in seeds
                ]
            )
            churn = _mean(
                [endpoint_sim(r_e, args.fail_s, defer_to_probe=False, seed=k) for k in seeds]
            )
            e = _mean(runs)
            opened = sum(r.breaker_opened for r in runs) / len(runs)
            scale = 0.05 * accounts * c.instances  # failing endpoints x instances
            peak = e.records_last_minute / 60.0 * scale
            print(
                f"| {accounts:,} | {rate:,} | {c.instances} | {r_e:.3g}/s | {opened:.0%} | "
                f"{e.retry_records_in_failure * scale:.3g} | {e.retry_records * scale:.3g} | "
                f"{peak:,.0f} | {peak * args.record_cost_us / 1e6:.1f} | "
                f"{e.dead_letters * scale:.3g} "
                f"| {off.retry_records * scale:.3g} | {off.dead_letters * scale:.3g} "
                f"| {churn.retry_records * scale:.3g} |"
            )


def _mean(runs: list[EndpointResult]) -> EndpointResult:
    k = float(len(runs))
    return EndpointResult(
        events=sum(r.events for r in runs) / k,
        retry_records=sum(r.retry_records for r in runs) / k,
        retry_records_in_failure=sum(r.retry_records_in_failure for r in runs) / k,
        deferrals=sum(r.deferrals for r in runs) / k,
        dead_letters=sum(r.dead_letters for r in runs) / k,
        attempts=sum(r.attempts for r in runs) / k,
        delivered=sum(r.delivered for r in runs) / k,
        breaker_opened=sum(r.breaker_opened for r in runs) * 2 > len(runs),
        records_by_tier=[sum(r.records_by_tier[i] for r in runs) / k for i in range(len(TIERS))],
        records_last_minute=sum(r.records_last_minute for r in runs) / k,
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--grid", action="store_true", help="the tables of docs/sizing.md")
    mode.add_argument("--loop", action="store_true", help="one loop simulation")
    mode.add_argument("--endpoint", action="store_true", help="one failing endpoint")
    p.add_argument("--cost-us", type=float, default=COST_US, help="CPU per event, whole process")
    p.add_argument(
        "--loop-share", type=float, default=LOOP_SHARE, help="share of --cost-us on the loop thread"
    )
    p.add_argument("--cpu-share", type=float, default=1.0, help="share of a core the loop gets")
    p.add_argument("--target", type=float, default=0.6, help="target loop utilisation")
    p.add_argument("--rate", type=float, default=10_000.0, help="events/s into one instance")
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--latency-dist", choices=["fixed", "exp", "lognormal"], default="lognormal")
    p.add_argument("--max-in-flight", type=int, default=256)
    p.add_argument("--raised-in-flight", type=int, default=4096)
    p.add_argument("--max-buffered", type=int, default=20_000)
    p.add_argument("--duration", type=float, default=5.0, help="simulated seconds (loop)")
    p.add_argument("--endpoint-rate", type=float, default=0.5, help="events/s, one endpoint")
    p.add_argument("--fail-s", type=float, default=3600.0)
    p.add_argument(
        "--auto-disable-s",
        type=float,
        default=900.0,
        help="the grid's auto-disable column (STREAM_WFM_AUTO_DISABLE_AFTER)",
    )
    p.add_argument(
        "--record-cost-us",
        type=float,
        default=20.0,
        help="assumed (not measured) CPU per retry-topic record written and read back",
    )
    p.add_argument("--replicas", type=int, default=100, help="runs averaged below 1 event/s")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if args.grid:
        grid(args)
    elif args.loop:
        r = loop_sim(
            args.rate,
            args.cost_us * args.loop_share,
            args.max_in_flight,
            args.latency_ms / 1e3,
            latency_dist=args.latency_dist,
            duration_s=args.duration,
            cpu_share=args.cpu_share,
            max_buffered=args.max_buffered,
            seed=args.seed,
        )
        print(
            f"offered {args.rate:,.0f}/s: {r.throughput:,.0f} events/s, loop busy "
            f"{r.utilisation:.0%}, in flight {r.in_flight:,.0f}, delay p50 "
            f"{r.delay_p50_ms:.1f} ms p99 {r.delay_p99_ms:.1f} ms, max pending "
            f"{r.max_pending:,}"
        )
    else:
        e = endpoint_sim(
            args.endpoint_rate,
            args.fail_s,
            seed=args.seed,
            auto_disable_s=args.auto_disable_s or None,
        )
        print(
            f"{e.events:,.0f} events: {e.retry_records:,.0f} retry-topic records "
            f"({e.retry_records_in_failure:,.0f} during the failure; by tier "
            f"{[round(x) for x in e.records_by_tier]}), {e.deferrals:,.0f} deferrals, "
            f"{e.dead_letters:,.0f} dead letters, {e.attempts:,.0f} attempts, breaker "
            f"{'opened' if e.breaker_opened else 'never opened'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
