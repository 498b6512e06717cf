"""Shared fixtures: a session-scoped real Tansu broker, settings with unique names, receivers
and service processes. The helpers they build on are in :mod:`tests.helpers`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from stream_wfm.kafka.admin import create_topics
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.settings import Settings
from tests.helpers.receiver import Receiver
from tests.helpers.service import ServiceUnderTest
from tests.helpers.settings import unique_settings


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def settings_factory(broker: EmbeddedBroker) -> Callable[..., Settings]:
    """Settings with unique topic names and group id; the topics are created."""

    def make(**overrides: Any) -> Settings:
        settings = unique_settings(broker.bootstrap_servers, **overrides)
        create_topics(settings)
        return settings

    return make


@pytest.fixture
async def receiver_factory() -> AsyncIterator[Callable[..., Any]]:
    """Started :class:`Receiver` s (keyword arguments: its fields); stopped after the test."""
    receivers: list[Receiver] = []

    async def make(**kwargs: Any) -> Receiver:
        receiver = await Receiver(**kwargs).start()
        receivers.append(receiver)
        return receiver

    yield make
    for receiver in receivers:
        await receiver.close()


@pytest.fixture
def service_process() -> Iterator[Callable[..., ServiceUnderTest]]:
    """Started ``stream-wfm run`` processes (:class:`ServiceUnderTest`); any still running
    after the test is killed with ``kill -9``."""
    started: list[ServiceUnderTest] = []

    def make(settings: Settings, **env: str) -> ServiceUnderTest:
        service = ServiceUnderTest(settings, **env).start()
        started.append(service)
        return service

    yield make
    for service in started:
        service.kill9()
        service.close()
