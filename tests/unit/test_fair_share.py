"""Fair share (docs/contract.md §10) over a real Dispatcher whose requests never complete
until the test releases them: which endpoints are moved aside (over their share *and* not
keeping up), what each of their lanes keeps, and ``Dispatcher.trim`` / ``discard``."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream_wfm.delivery.outcome import Outcome, classify_status
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.delivery.transport import Response
from stream_wfm.events import EventKind, decode_event
from stream_wfm.health.breaker import BreakerPolicy
from stream_wfm.health.endpoints import Endpoints
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.backpressure import Backpressure
from stream_wfm.pipeline.fair_share import (
    DRAIN_LIMIT,
    INTERVAL,
    LAGGING_AFTER,
    QUIET_INTERVAL,
    FairShare,
    endpoint_of,
)
from stream_wfm.pipeline.lanes import Dispatcher, Job
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.records import SourceRecord

OK = classify_status(200)
AGENT = EventKind.AGENT
LANES = 16
HOST = "http://wfm.example.com:80"  # one vendor host serves every account
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class GatedTransport:
    """Holds every request until the test releases it."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Future[None]] = {}

    async def send(self, request: WebhookRequest) -> Outcome:
        self.started.append(request.event_id)
        gate = self.gates[request.event_id] = asyncio.get_running_loop().create_future()
        await gate
        return OK

    async def send_with_response(self, request: WebhookRequest, preview: int = 512) -> Response:
        return Response(await self.send(request), 0.0, b"")

    async def close(self) -> None:
        return None

    def release(self, event_id: str) -> None:
        self.gates[event_id].set_result(None)


def key_in_lane(lane: int) -> str:
    """An order key the dispatcher puts in ``lane`` (string hashes change per process)."""
    return next(key for i in itertools.count() if hash(key := f"agent-{lane}-{i}") % LANES == lane)


_offsets: Iterator[int] = itertools.count()


def work(account: str, event_id: str) -> Work:
    value = orjson.dumps(
        {"account_id": account, "agent_id": "7", "event_type": "LOGIN", "event_id": event_id}
    )
    offset = next(_offsets)
    tracker = PartitionTracker("in.agent", 0)
    tracker.add(offset)
    event = decode_event(value, AGENT, ("in.agent", 0, offset))
    return Work(tracker, offset, SourceRecord("in.agent", 0, offset, None, value, None), AGENT,
                event, 0)  # fmt: skip


def job(account: str, n: int, lane: int) -> Job:
    event_id = f"{account}-{lane}-{n}"
    request = WebhookRequest("POST", f"{HOST}/{account}", (), b"", 5.0, HOST, event_id)
    return Job(request, key_in_lane(lane), 1, work(account, event_id))


def ids(jobs: list[Job]) -> list[str]:
    return [j.request.event_id for j in jobs]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Rig:
    def __init__(self, max_buffered: int = 40) -> None:
        self.max_buffered = max_buffered
        self.clock = Clock(100.0)  # the dispatcher's clock
        self.unix = Clock(T0)  # the endpoints' clock
        self.transport = GatedTransport()
        self.dispatcher = Dispatcher(
            self.transport,
            lambda _job, _outcome, _elapsed: None,
            lanes_per_host=LANES,
            max_in_flight=100,
            clock=self.clock,
        )
        self.backpressure = Backpressure(max_buffered, lambda held: None)
        self.endpoints = Endpoints(BreakerPolicy(), Metrics(CollectorRegistry()), self.unix)
        self.fair_share = FairShare(
            self.dispatcher, self.backpressure, self.endpoints, max_buffered, self.clock
        )
        self.jobs: dict[tuple[str, int], list[Job]] = {}

    async def queue(self, account: str, count: int, lane: int = 0) -> list[Job]:
        """Submit ``count`` jobs of ``account`` to ``lane``; the first of a new lane starts
        (and hangs), the others stay queued."""
        jobs = self.jobs.setdefault((account, lane), [])
        new = [job(account, len(jobs) + n, lane) for n in range(count)]
        jobs.extend(new)
        for j in new:
            self.dispatcher.submit(j)
        await settle()
        return new

    def pressure(self, on: bool = True) -> None:
        self.backpressure.pending = self.max_buffered // 2 if on else 0

    def answered(self, account: str, per_second: float, seconds: float = 20.0) -> None:
        """``account``'s endpoint answered ``per_second`` requests a second until now."""
        self.endpoints.admit(account, AGENT, None)
        n = int(per_second * seconds)
        for i in range(n):
            self.unix.now = T0 + i / per_second
            self.endpoints.record(account, AGENT, OK, probe=False)


@pytest.fixture
async def make_rig() -> AsyncIterator[Callable[..., Rig]]:
    """Rigs whose hanging lanes are cancelled after the test."""
    rigs: list[Rig] = []

    def make(max_buffered: int = 40) -> Rig:
        rigs.append(Rig(max_buffered))
        return rigs[-1]

    yield make
    for rig in rigs:
        await rig.dispatcher.cancel()


# --- FairShare.check / moved_aside --------------------------------------------------------


async def test_a_slow_endpoint_over_its_share_is_moved_aside_and_keeps_its_first_events(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(max_buffered=40)  # half the buffer: 20
    acme = await rig.queue("acme", 30)  # one in flight, 29 queued
    globex = await rig.queue("globex", 3, lane=1)
    rig.pressure()
    rig.clock.now += 2.0
    moved = rig.fair_share.check()
    # Two endpoints with queued events: a share is 20 // 3 = 6.
    assert ids(moved) == ids(acme[7:])
    assert rig.dispatcher.queued == 6 + 2
    assert rig.fair_share.moved_aside("acme", AGENT)
    assert not rig.fair_share.moved_aside("globex", AGENT)
    assert not rig.fair_share.moved_aside("acme", EventKind.CALL)
    # The lane goes on with the events it kept, in order.
    for j in acme[:7]:
        rig.transport.release(j.request.event_id)
        await settle()
    assert rig.transport.started == ids([acme[0], globex[0], *acme[1:7]])
    assert rig.dispatcher.queued == 2


async def test_nothing_is_moved_while_the_buffer_is_not_under_pressure(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    await rig.queue("acme", 30)
    rig.clock.now += 10
    rig.pressure(False)
    assert rig.fair_share.check() == []
    assert rig.dispatcher.queued == 29
    assert not rig.fair_share.moved_aside("acme", AGENT)


async def test_moved_aside_ends_with_the_pressure_and_at_the_next_check(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    await rig.queue("acme", 30)
    rig.pressure()
    rig.clock.now += 2.0
    assert rig.fair_share.check()
    assert rig.fair_share.moved_aside("acme", AGENT)
    rig.pressure(False)
    assert not rig.fair_share.moved_aside("acme", AGENT)
    rig.pressure()
    assert rig.fair_share.moved_aside("acme", AGENT)  # until the next check
    assert rig.fair_share.check() == []  # it holds its share now: not over it
    assert not rig.fair_share.moved_aside("acme", AGENT)
    await rig.queue("acme", 30)
    rig.clock.now += 2.0
    assert rig.fair_share.check()
    rig.pressure(False)
    assert rig.fair_share.check() == []  # a check without pressure ends it too
    rig.pressure()
    assert not rig.fair_share.moved_aside("acme", AGENT)


async def test_an_endpoint_whose_oldest_event_is_young_is_not_moved(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    await rig.queue("acme", 30)
    rig.pressure()
    rig.clock.now += LAGGING_AFTER
    assert rig.fair_share.check() == []
    assert not rig.fair_share.moved_aside("acme", AGENT)
    rig.clock.now += INTERVAL  # the next check after one that moved nothing
    assert len(rig.fair_share.check()) == 29 - 10  # alone: a share of 20 // 2


async def test_the_oldest_event_of_any_lane_counts(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    await rig.queue("acme", 1, lane=0)  # under way: lane 0 comes first, and stays
    rig.clock.now += 2.0
    await rig.queue("acme", 15, lane=1)  # 14 queued since 102.0
    rig.clock.now += 2.0
    await rig.queue("acme", 14, lane=0)  # 14 queued since 104.0
    rig.pressure()
    rig.clock.now += 0.4  # lane 0's events are young, lane 1's are not
    assert len(rig.fair_share.check()) == 28 - 2 * 5  # a share of 10 over two lanes


async def test_an_endpoint_within_its_share_is_not_moved(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    await rig.queue("acme", 7)  # 6 queued
    await rig.queue("globex", 3, lane=1)
    rig.pressure()
    rig.clock.now += 10
    assert rig.fair_share.check() == []  # 6 is its share, not more
    more = await rig.queue("acme", 1)
    rig.clock.now += INTERVAL
    assert rig.fair_share.check() == more


async def test_scans_that_move_nothing_space_out_and_a_move_brings_them_back(
    make_rig: Callable[..., Rig],
) -> None:
    """A busy endpoint that keeps up is scanned less and less often (a scan goes through
    every queued event), up to QUIET_INTERVAL; once one moves something, every INTERVAL."""
    rig = make_rig()
    rig.answered("acme", 100.0)  # fast: never moved
    await rig.queue("acme", 30)
    rig.pressure()
    scans = 0
    for _ in range(200):  # 50 s in steps of INTERVAL
        rig.clock.now += INTERVAL
        before = rig.fair_share._next_scan
        rig.fair_share.check()
        scans += rig.fair_share._next_scan != before
    assert scans <= 50 / QUIET_INTERVAL + 5  # mostly QUIET_INTERVAL apart
    rig.unix.now += 60  # acme has not answered for a minute: it lags now
    rig.clock.now += QUIET_INTERVAL
    assert rig.fair_share.check()
    rig.clock.now += INTERVAL
    await rig.queue("acme", 30)
    assert rig.fair_share.check()  # scanned again at once


@pytest.mark.parametrize(
    ("per_second", "moved"),
    [(100.0, False), (10.0, False), (2.0, True), (0.5, True)],
)
async def test_an_endpoint_is_moved_only_when_its_queue_would_take_long_to_drain(
    make_rig: Callable[..., Rig], per_second: float, moved: bool
) -> None:
    """29 queued events: 0.3 s or 2.9 s of work at 100 or 10 answers a second (kept, however
    deep the queue), 14.5 s or 58 s at 2 or 0.5 a second (moved)."""
    rig = make_rig()
    rig.answered("acme", per_second)
    await rig.queue("acme", 30)
    rig.pressure()
    rig.clock.now += 10  # it lags
    assert (29 / per_second > DRAIN_LIMIT) == moved
    assert bool(rig.fair_share.check()) == moved
    assert rig.fair_share.moved_aside("acme", AGENT) == moved


async def test_each_lane_of_a_moved_endpoint_keeps_its_part_of_the_share(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(max_buffered=40)
    lanes = [await rig.queue("acme", 10, lane=lane) for lane in (3, 5, 7)]  # 9 queued each
    rig.pressure()
    rig.clock.now += 2.0
    moved = rig.fair_share.check()
    # Alone: a share of 20 // 2 = 10, over three lanes: 3 each.
    assert ids(moved) == ids([j for lane in lanes for j in lane[4:]])
    assert rig.dispatcher.queued == 9


async def test_each_lane_keeps_at_least_one_event(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(max_buffered=8)  # a share of 4 // 2 = 2, over six lanes
    lanes = [await rig.queue("acme", 3, lane=lane) for lane in range(6)]
    rig.pressure()
    rig.clock.now += 2.0
    assert ids(rig.fair_share.check()) == ids([lane[2] for lane in lanes])
    assert rig.dispatcher.queued == 6


async def test_endpoints_sharing_a_lane_are_trimmed_apart(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    await rig.queue("acme", 1)
    mixed = [job(account, n, 0) for n in range(20) for account in ("acme", "globex")]
    for j in mixed:
        rig.dispatcher.submit(j)
    rig.answered("globex", 100.0)  # globex keeps up, acme does not
    rig.pressure()
    rig.clock.now += 2.0
    moved = rig.fair_share.check()
    # Two endpoints: a share of 20 // 3 = 6.
    assert ids(moved) == ids([j for j in mixed if j.context.account_id == "acme"][6:])
    assert not rig.fair_share.moved_aside("globex", AGENT)


# --- Dispatcher.trim and Dispatcher.discard ---------------------------------------------------


async def test_trim_keeps_the_first_jobs_of_each_limited_key_per_lane(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    first = await rig.queue("acme", 1, lane=0)
    lane0 = [job(account, n, 0) for n in range(3) for account in ("acme", "globex")]
    lane1 = [job("acme", n, 1) for n in range(4)]
    for j in lane0 + lane1:
        rig.dispatcher.submit(j)
    await settle()  # lane 1's first job starts
    removed = rig.dispatcher.trim({("acme", AGENT): 1}, endpoint_of)
    acme0 = [j for j in lane0 if j.context.account_id == "acme"]
    assert ids(removed) == ids(acme0[1:] + lane1[2:])
    assert rig.dispatcher.queued == 1 + 3 + 1  # acme0[0], the three of globex, lane1[1]
    for j in [first[0], acme0[0], *lane0[1::2]]:
        rig.transport.release(j.request.event_id)
        await settle()
    assert rig.transport.started == ids([first[0], lane1[0], acme0[0], *lane0[1::2]])


async def test_trim_without_limits_keeps_everything(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    await rig.queue("acme", 5)
    assert rig.dispatcher.trim({}, endpoint_of) == []
    assert rig.dispatcher.queued == 4


async def test_discard_removes_matching_queued_jobs_in_lane_order(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    lane0 = [job(account, n, 0) for n in range(3) for account in ("acme", "globex")]
    lane1 = [job("acme", n, 1) for n in range(3)]
    for j in lane0 + lane1:
        rig.dispatcher.submit(j)
    await settle()  # lane0[0] and lane1[0] are under way
    asked: list[str] = []

    def drop(j: Job) -> bool:
        asked.append(j.request.event_id)
        return bool(j.context.account_id == "acme")

    removed = rig.dispatcher.discard(drop)
    assert sorted(asked) == sorted(ids(lane0[1:] + lane1[1:]))  # once per queued job
    assert ids(removed) == ids([lane0[2], lane0[4], *lane1[1:]])
    assert rig.dispatcher.queued == 3
    rig.transport.release(lane0[0].request.event_id)
    rig.transport.release(lane1[0].request.event_id)
    await settle()
    assert rig.transport.started[2:] == ids([lane0[1]])  # lane 1 is done
    for j in lane0[1::2]:
        rig.transport.release(j.request.event_id)
        await settle()
    assert rig.transport.started == ids([lane0[0], lane1[0], *lane0[1::2]])
    assert rig.dispatcher.queued == 0
    assert await rig.dispatcher.drain(1.0)
