"""Writing integrations to the config topic (CLI and console share this)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from stream_wfm.errors import StreamWfmError
from stream_wfm.integrations.model import IntegrationConfig, config_to_record_value


class ConfigWriteError(StreamWfmError):
    """The config topic did not take the record."""

    retriable = True


class ConfigWriter:
    """Writes config records and tombstones, waiting for the broker's acknowledgement."""

    def __init__(self, topic: str, producer_config: dict[str, Any]) -> None:
        self.topic = topic
        self._admin_config = {
            k: v
            for k, v in producer_config.items()
            if k not in {"enable.idempotence", "acks", "linger.ms", "compression.type"}
        }
        self._producer = Producer(producer_config)
        self._closed = False

    def check_topic(self, timeout: float = 10.0) -> None:
        """Refuse to write when the config topic does not exist (no accidental auto-create)."""
        try:
            topics = AdminClient(self._admin_config).list_topics(timeout=timeout).topics
        except KafkaException as exc:
            raise ConfigWriteError(f"broker not reachable: {exc.args[0]}") from None
        if self.topic not in topics:
            raise ConfigWriteError(
                f"config topic {self.topic} does not exist; run `stream-wfm topics create`"
            )

    def put(self, config: IntegrationConfig, timeout: float = 10.0) -> None:
        self._write(config.account_id, config_to_record_value(config), timeout)

    def delete(self, account_id: str, timeout: float = 10.0) -> None:
        """Write a tombstone: the account's integration is deleted."""
        self._write(account_id, None, timeout)

    def close(self) -> None:
        """Flush and release the producer's connections; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._producer.flush(5)
        self._producer.close()

    def __enter__(self) -> ConfigWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _write(self, account_id: str, value: bytes | None, timeout: float) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        self._producer.produce(
            self.topic, key=account_id.encode(), value=value, on_delivery=on_delivery
        )
        if self._producer.flush(timeout) > 0:
            raise ConfigWriteError(f"no acknowledgement from the broker within {timeout:g}s")
        if errors:
            raise ConfigWriteError(f"the broker refused the record: {errors[0]}")
