"""Writing and deleting integrations on the config topic."""

from __future__ import annotations

from typing import Any

from stream_wfm.integrations.model import validate_config
from stream_wfm.integrations.writer import ConfigWriter
from stream_wfm.kafka.config import producer_config
from stream_wfm.settings import Settings


def put_config(settings: Settings, config: dict[str, Any]) -> None:
    with ConfigWriter(settings.config_topic, producer_config(settings)) as writer:
        writer.put(validate_config(config))


def put_all_states_config(settings: Settings, url: str, account_id: str = "1") -> None:
    """An integration sending every agent state as JSON to ``url``."""
    put_config(
        settings,
        {
            "account_id": account_id,
            "send_all_agent_states": True,
            "send_body_as_json": True,
            "agent_event_url": url,
        },
    )


def delete_config(settings: Settings, account_id: str) -> None:
    with ConfigWriter(settings.config_topic, producer_config(settings)) as writer:
        writer.delete(account_id)
