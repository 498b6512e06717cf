"""Dispatcher: the overall ``max_in_flight`` limit (a counter with a FIFO of waiting
lanes, no semaphore per request) holds, hands slots over in order, and survives
cancellation."""

from __future__ import annotations

import asyncio
import itertools

from stream_wfm.delivery.outcome import Outcome, classify_status
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.delivery.transport import Response
from stream_wfm.pipeline.lanes import Dispatcher, Job

OK = classify_status(200)


class GatedTransport:
    """Holds every request until the test releases it; records the peak in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Future[None]] = {}

    async def send(self, request: WebhookRequest) -> Outcome:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.started.append(request.event_id)
        gate = self.gates[request.event_id] = asyncio.get_running_loop().create_future()
        try:
            await gate
        finally:
            self.in_flight -= 1
        return OK

    async def send_with_response(self, request: WebhookRequest, preview: int = 512) -> Response:
        return Response(await self.send(request), 0.0, b"")

    async def close(self) -> None:
        return None

    def release(self, event_id: str) -> None:
        self.gates[event_id].set_result(None)


LANES = 64


def _key_in_lane(lane: int) -> str:
    """An order key the dispatcher puts in ``lane`` of ``LANES``: string hashes change
    with every process (PYTHONHASHSEED), and two jobs sharing a lane run one after the
    other, which is not what the slot tests are about."""
    return next(key for i in itertools.count() if hash(key := f"agent-{lane}-{i}") % LANES == lane)


def _job(n: int, host: str = "http://h:80") -> Job:
    """Job ``n``, alone in lane ``n`` (for n < LANES)."""
    request = WebhookRequest("POST", f"{host}/x", (), b"", 5.0, host, f"e{n}")
    return Job(request, _key_in_lane(n % LANES), 1, None)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_in_flight_never_exceeds_the_limit_and_slots_go_in_order() -> None:
    transport = GatedTransport()
    done: list[str] = []
    dispatcher = Dispatcher(
        transport,
        lambda job, _outcome, _elapsed: done.append(job.request.event_id),
        lanes_per_host=LANES,
        max_in_flight=2,
        clock=itertools.count().__next__,
    )
    for n in range(5):
        dispatcher.submit(_job(n))
    await _settle()
    assert transport.started == ["e0", "e1"]
    assert dispatcher.in_flight == 2
    transport.release("e0")
    await _settle()
    assert transport.started == ["e0", "e1", "e2"]  # the first waiting lane got the slot
    assert dispatcher.in_flight == 2
    for event_id in ("e1", "e2", "e3"):
        transport.release(event_id)
        await _settle()
    transport.release("e4")
    assert await dispatcher.drain(5.0)
    assert sorted(done) == ["e0", "e1", "e2", "e3", "e4"]
    assert transport.peak == 2
    assert dispatcher.in_flight == 0


async def test_a_cancelled_waiting_lane_gives_up_its_place() -> None:
    transport = GatedTransport()
    dispatcher = Dispatcher(
        transport,
        lambda _job, _outcome, _elapsed: None,
        lanes_per_host=LANES,
        max_in_flight=1,
        clock=itertools.count().__next__,
    )
    for n in range(3):
        dispatcher.submit(_job(n))
    await _settle()
    assert transport.started == ["e0"]
    await dispatcher.cancel()  # every lane, running or waiting
    assert dispatcher.in_flight == 0
    # The dispatcher still works afterwards: the slot was not lost.
    dispatcher.submit(_job(9))
    await _settle()
    assert transport.started == ["e0", "e9"]
    transport.release("e9")
    assert await dispatcher.drain(5.0)
    assert dispatcher.in_flight == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedTransport(GatedTransport):
    """A gated transport whose answer per event id the test chooses (default 200)."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, Outcome] = {}

    async def send(self, request: WebhookRequest) -> Outcome:
        await super().send(request)
        return self.answers.get(request.event_id, OK)


class BrokenTransport(GatedTransport):
    """Raises for one event id (a transport bug), answers 200 at once for the others."""

    async def send(self, request: WebhookRequest) -> Outcome:
        if request.event_id == "e1":
            raise RuntimeError("bug")
        return OK


async def test_a_transport_that_raises_gives_a_retryable_outcome_and_the_lane_goes_on() -> None:
    outcomes: dict[str, Outcome] = {}
    dispatcher = Dispatcher(
        BrokenTransport(),
        lambda job, outcome, _elapsed: outcomes.__setitem__(job.request.event_id, outcome),
        lanes_per_host=1,  # one lane: e2 runs only if the lane survived e1
        max_in_flight=4,
        clock=lambda: 0.0,
    )
    for n in (1, 2):
        dispatcher.submit(_job(n))
    assert await dispatcher.drain(5.0)
    assert outcomes["e1"].retriable
    assert outcomes["e1"].status_class == "connection_error"
    assert outcomes["e1"].error == "connection error: RuntimeError: bug"
    assert outcomes["e2"] == OK
    assert dispatcher.in_flight == 0
