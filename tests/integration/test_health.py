"""Readiness follows the broker: /readyz turns 503 with a reason when Kafka goes away."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from stream_wfm.kafka.admin import create_topics
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.service import Service
from tests.helpers.settings import unique_settings
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status, await resp.text()


async def test_readyz_reports_an_unreachable_broker() -> None:
    broker = EmbeddedBroker().start()  # our own broker: this test stops it
    try:
        settings = unique_settings(broker.bootstrap_servers, shutdown_timeout=5)
        create_topics(settings)
        async with Service(settings) as service:
            assert service.http_port is not None
            port = service.http_port
            await wait_until(lambda: service.readiness() is None, 30, "ready")
            assert await get(port, "/readyz") == (200, "ready\n")
            broker.stop()
            await wait_until(lambda: service.readiness() is not None, 30, "not ready")
            status, body = await get(port, "/readyz")
            assert status == 503
            assert "Kafka not reachable" in body
            assert (await get(port, "/healthz"))[0] == 200  # alive, just not ready
            value: Any = service.registry.get_sample_value("stream_wfm_ready")
            assert value == 0.0
    finally:
        broker.stop()
