"""Settings for a test: unique group and topic names, and their environment."""

from __future__ import annotations

import uuid
from typing import Any

from stream_wfm.settings import Settings

# Test clusters: a group's first join takes half of session.timeout.ms on Tansu.
TEST_KAFKA = {"session_timeout_ms": "2000", "heartbeat_interval_ms": "300"}

#: The settings naming a topic (or a topic prefix), and the suffix each gets.
TOPIC_FIELDS = {
    "agent_events_topic": "agent",
    "call_events_topic": "call",
    "config_topic": "config",
    "retry_topic_prefix": "retry",
    "dlq_topic": "dlq",
    "notices_topic": "notices",
    "health_topic": "health",
}


def unique_settings(bootstrap_servers: str, **overrides: Any) -> Settings:
    """Settings for a test: a consumer group and topic names no other test uses (``t-<hex>``,
    ``t-<hex>-agent``, ...), short retry tiers, loopback destinations allowed, a fast group
    join. ``overrides`` are further settings (or replace these). The topics are not created."""
    group = f"t-{uuid.uuid4().hex[:8]}"
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "group_id": group,
        **{name: f"{group}-{suffix}" for name, suffix in TOPIC_FIELDS.items()},
        "retry_backoff": "1s,2s",
        "topic_partitions": 4,
        "allow_private_destinations": True,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "shutdown_timeout": 10.0,
        "kafka": dict(TEST_KAFKA),
        **overrides,
    }
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The STREAM_WFM_* environment that reproduces ``settings`` in a subprocess."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        key = f"STREAM_WFM_{name.upper()}"
        if isinstance(value, dict):  # kafka, consumer, producer, admin: one variable a key
            for prop, prop_value in value.items():
                env[f"{key}__{prop.replace('.', '_').upper()}"] = str(prop_value)
        elif hasattr(value, "get_secret_value"):
            env[key] = value.get_secret_value()
        elif isinstance(value, bool):
            env[key] = "true" if value else "false"
        else:
            env[key] = str(value)
    return env
