from __future__ import annotations

from typing import Any

import pytest

from stream_wfm.service import Service
from tests.helpers.config import put_config
from tests.helpers.topics import produce_json

pytestmark = pytest.mark.integration


async def test_json_event_is_delivered(settings_factory: Any, receiver_factory: Any) -> None:
    settings = settings_factory()
    rec = await receiver_factory()
    put_config(
        settings,
        {
            "account_id": "100",
            "agent_event_url": rec.url("/agent"),
            "send_body_as_json": True,
            "agent_login_events": True,
            "headers": {"Authorization": "Basic c2VjcmV0"},
        },
    )
    async with Service(settings):
        produce_json(
            settings,
            settings.agent_events_topic,
            [{"account_id": "100", "agent_id": "7", "event_type": "LOGIN", "username": "a"}],
        )
        reqs = await rec.wait_count(1)
    assert reqs[0].json() == {
        "account_id": "100",
        "event_type": "LOGIN",
        "agent_id": "7",
        "username": "a",
    }
    assert reqs[0].headers["Authorization"] == "Basic c2VjcmV0"
