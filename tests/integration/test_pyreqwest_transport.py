"""The pyreqwest transport's own resolution against real receivers on 127.0.0.1 (and
127.0.0.2): what the shared delivery contract (``test_transport_contract.py``) cannot
see. The transport resolves names itself and pins each client to a checked address:
falling back to the next address when one is dead, internationalized names in their
IDNA 2008 form, and the clients of previous addresses closed once idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pyreqwest.client import Client

from stream_wfm.delivery import destinations
from stream_wfm.delivery import pyreqwest_transport as module
from stream_wfm.delivery.outcome import OutcomeKind
from stream_wfm.delivery.pyreqwest_transport import PyreqwestTransport
from stream_wfm.delivery.request import WebhookRequest, host_key_of
from tests.helpers.receiver import Receiver
from tests.helpers.resolving import resolving_to
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

QUICK = 5.0


def _request(url: str, timeout: float = 5.0) -> WebhookRequest:
    return WebhookRequest(
        "POST", url, (("X-WFM-Event-Id", "ev-1"),), b"{}", timeout, host_key_of(url), "ev-1"
    )


@pytest.fixture
async def make_transport() -> AsyncIterator[Callable[..., PyreqwestTransport]]:
    made: list[PyreqwestTransport] = []

    def make(
        *,
        guard: bool,
        resolve: destinations.Resolve,
        clock: Callable[[], float] = time.monotonic,
    ) -> PyreqwestTransport:
        transport = PyreqwestTransport(
            max_in_flight=8,
            max_in_flight_per_host=4,
            allow_private_destinations=not guard,
            resolve=resolve,
            clock=clock,
        )
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


@pytest.fixture(autouse=True)
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stub resolvers answer loopback addresses, which these tests count as public."""
    monkeypatch.setattr(destinations, "address_refusal", lambda ip: None)


@contextlib.asynccontextmanager
async def receivers_on_one_port(**kwargs: Any) -> AsyncIterator[tuple[Receiver, Receiver]]:
    """Two receivers on one port: at 127.0.0.1 and at 127.0.0.2 (one host key)."""
    for _attempt in range(20):
        one = await Receiver(**kwargs).start()
        try:
            two = await Receiver(host="127.0.0.2", port=one.port).start()
        except OSError:
            await one.close()
            continue  # that port is taken on 127.0.0.2: try another
        try:
            yield one, two
        finally:
            await two.close()
            await one.close()
        return
    raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")


class Recorded(list[Client]):
    """Every client the transport builds, in order, and those it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed: list[Client] = []


def _record_clients(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    built = Recorded()
    build = PyreqwestTransport._build
    close = PyreqwestTransport._close_client

    def recording(self: PyreqwestTransport, *args: Any) -> Client:
        client = build(self, *args)
        built.append(client)
        return client

    async def closing(client: Client) -> None:
        built.closed.append(client)
        await close(client)

    monkeypatch.setattr(PyreqwestTransport, "_build", recording)
    monkeypatch.setattr(PyreqwestTransport, "_close_client", staticmethod(closing))
    return built


async def _closed(clients: Recorded) -> list[bool]:
    """Which of ``clients`` the transport closed (probing a closed pyreqwest client with a
    request does not tell reliably: its refusal races with the connection attempt)."""
    return [any(client is closed for closed in clients.closed) for client in clients]


# --- several addresses --------------------------------------------------------------------------
@pytest.mark.parametrize("guard", [True, False], ids=["guard", "no-guard"])
async def test_a_dead_first_address_falls_back_to_the_next(
    make_transport: Callable[..., PyreqwestTransport], receiver_factory: Any, guard: bool
) -> None:
    """The name resolves to a dead address (nothing listens on 127.0.0.2) then a live one:
    the request goes to the live one, with the name in ``Host``, as aiohttp does."""
    rec: Receiver = await receiver_factory(host="127.0.0.1")
    asked: list[str] = []
    transport = make_transport(guard=guard, resolve=resolving_to(["127.0.0.2", "127.0.0.1"], asked))
    url = f"http://hooks.example.test:{rec.port}/hook"  # in no DNS: only the stub answers
    outcomes = [await transport.send(_request(url)) for _ in range(2)]
    response = await transport.send_with_response(_request(url))
    assert [o.kind for o in [*outcomes, response.outcome]] == [OutcomeKind.DELIVERED] * 3
    assert [r.headers["Host"] for r in rec.requests] == [f"hooks.example.test:{rec.port}"] * 3
    assert asked == ["hooks.example.test"]


async def test_every_address_dead_is_a_connection_error(
    make_transport: Callable[..., PyreqwestTransport], receiver_factory: Any
) -> None:
    rec: Receiver = await receiver_factory(host="127.0.0.1")
    port = rec.port
    await rec.close()
    transport = make_transport(guard=True, resolve=resolving_to(["127.0.0.2", "127.0.0.1"]))
    outcome = await transport.send(_request(f"http://hooks.example.test:{port}/hook"))
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.status_class == "connection_error"


# --- internationalized names ----------------------------------------------------------------------
@pytest.mark.parametrize("guard", [True, False], ids=["guard", "no-guard"])
async def test_an_internationalized_host_is_resolved_and_pinned_in_its_idna_2008_form(
    make_transport: Callable[..., PyreqwestTransport], receiver_factory: Any, guard: bool
) -> None:
    """The name resolved and checked is the one the request goes to: ``faß.example`` is
    ``xn--fa-hia.example`` in DNS, in the pin and in ``Host``. (A pin for the Unicode name
    matched nothing: reqwest then resolved the name itself, past the guard.)"""
    rec: Receiver = await receiver_factory(host="127.0.0.1")
    asked: list[str] = []
    transport = make_transport(guard=guard, resolve=resolving_to(["127.0.0.1"], asked))
    outcome = await transport.send(_request(f"http://faß.example:{rec.port}/hook"))
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    assert asked == ["xn--fa-hia.example"]
    assert [r.headers["Host"] for r in rec.requests] == [f"xn--fa-hia.example:{rec.port}"]


# --- clients of previous addresses ---------------------------------------------------------------
async def test_clients_of_previous_addresses_are_closed(
    make_transport: Callable[..., PyreqwestTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name whose address keeps changing gets a new pinned client each time; the
    previous ones are closed once idle, not kept until the transport closes."""
    built = _record_clients(monkeypatch)
    answer = ["127.0.0.1"]
    now = [1000.0]
    transport = make_transport(guard=True, resolve=resolving_to(answer), clock=lambda: now[0])
    async with receivers_on_one_port() as (one, two):
        url = f"http://hooks.example.test:{one.port}/hook"
        for change in range(12):
            answer[:] = ["127.0.0.2" if change % 2 else "127.0.0.1"]
            now[0] += module.DNS_TTL_SECONDS + 1
            assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        assert (len(one.requests), len(two.requests)) == (6, 6)
        assert len(built) == 12
        await wait_until(
            lambda: all(t.done() for t in getattr(transport, "_closing", ())),
            QUICK,
            "the retired clients are closed",
        )
        assert await _closed(built) == [True] * 11 + [False]


async def test_a_client_retired_during_a_request_is_closed_when_it_ends(
    make_transport: Callable[..., PyreqwestTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    built = _record_clients(monkeypatch)
    answer = ["127.0.0.1"]
    now = [1000.0]
    transport = make_transport(guard=True, resolve=resolving_to(answer), clock=lambda: now[0])
    gate = asyncio.Event()
    async with receivers_on_one_port(gate=gate) as (one, two):
        url = f"http://hooks.example.test:{one.port}/hook"
        held = asyncio.ensure_future(transport.send(_request(url)))
        await wait_until(lambda: len(built) == 1, QUICK, "the first request under way")
        # The address changes while the first request waits for its answer.
        now[0] += module.DNS_TTL_SECONDS + 1
        answer[:] = ["127.0.0.2"]
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        assert len(two.requests) == 1
        assert not held.done()
        assert await _closed(built) == [False, False]  # the first still carries a request
        gate.set()
        assert (await asyncio.wait_for(held, QUICK)).kind is OutcomeKind.DELIVERED
        assert len(one.requests) == 1
        await wait_until(
            lambda: all(t.done() for t in getattr(transport, "_closing", ())),
            QUICK,
            "the retired client is closed",
        )
        assert await _closed(built) == [True, False]
