"""An asyncio face on the blocking confluent-kafka producer.

One dedicated thread polls the producer; delivery reports resolve asyncio
futures through ``loop.call_soon_threadsafe`` (the faststream pattern).
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream_wfm.errors import StreamWfmError


class ProduceError(StreamWfmError):
    """A record was not written. ``retriable``: writing it again may succeed (the
    client's own verdict on the error); false for a record the producer refuses,
    such as one over ``message.max.bytes``."""

    def __init__(
        self, message: str, *, retriable: bool, fatal: bool = False, too_large: bool = False
    ) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.fatal = fatal
        #: The record is larger than the producer (``message.max.bytes``) or the topic
        #: accepts: writing it again cannot succeed, a smaller record might.
        self.too_large = too_large

    @classmethod
    def from_kafka(cls, error: KafkaError) -> ProduceError:
        return cls(
            str(error),
            retriable=bool(error.retriable()),
            fatal=bool(error.fatal()),
            too_large=error.code() == KafkaError.MSG_SIZE_TOO_LARGE,
        )


class AsyncProducer:
    """Idempotent producer (``acks=all``) whose ``produce`` returns an awaitable ack."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._poll_forever, name="kafka-producer", daemon=True
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> AsyncProducer:
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        return self

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> asyncio.Future[Message]:
        """Queue a record; the future resolves once the broker acknowledged it."""
        loop = self._loop
        assert loop is not None, "start() first"
        future: asyncio.Future[Message] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(_resolve, future, err, msg)

        try:
            self._producer.produce(
                topic, value=value, key=key, headers=headers, on_delivery=on_delivery
            )
        except BufferError:
            # The local queue is full: the caller writes the record again later (the loop
            # never waits here; the poll thread drains delivery reports meanwhile).
            future.set_exception(ProduceError("producer queue full", retriable=True))
        except KafkaException as exc:
            future.set_exception(ProduceError.from_kafka(exc.args[0]))
        return future

    async def flush(self, within: float = 10.0) -> int:
        """Wait until queued records are acknowledged; returns how many are still queued."""
        return int(await asyncio.to_thread(self._producer.flush, within))

    async def stop(self, within: float = 10.0) -> None:
        """Flush and stop; safe to call twice."""
        if self._stop.is_set():
            return
        await self.flush(within)
        self._stop.set()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, 5)
        self._producer.close()  # release connections now, not at garbage collection

    async def __aenter__(self) -> AsyncProducer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _resolve(future: asyncio.Future[Message], err: KafkaError | None, msg: Message) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(ProduceError.from_kafka(err))
    else:
        future.set_result(msg)
