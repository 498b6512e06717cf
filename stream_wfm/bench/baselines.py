"""The baselines the service is compared to, measured in the same run: the raw POST loop of
every shipped HTTP client against the receiver at the same concurrency, and raw
confluent-kafka consume (with the group's join time)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from typing import Any

from stream_wfm.bench.harness import Harness
from stream_wfm.bench.rawconsume import consume_rate
from stream_wfm.bench.rawpost import CLIENTS
from stream_wfm.delivery.transport_factory import available_transports


def shipped_clients() -> list[str]:
    """The HTTP clients the service ships a transport for that are installed here."""
    return [c for c in CLIENTS if c in available_transports()]


def raw_post(h: Harness, client: str) -> dict[str, Any]:
    """The POST loop of ``client`` alone (its own process) for ``duration`` s."""
    o, receiver = h.options, h.receiver
    receiver.reset()
    out = subprocess.run(
        [
            sys.executable, "-m", "stream_wfm.bench.rawpost", "--client", client,
            "--url", receiver.url("/agent"), "--concurrency", str(o.concurrency),
            "--duration", str(o.duration), "--format", o.format,
        ],
        capture_output=True, text=True, check=False, timeout=60 + o.duration,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"raw POST loop ({client}) failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    receiver.reset()
    return result


def raw_consume(h: Harness, topic: str) -> dict[str, Any]:
    """Raw consume of the custom-state events with the service's consumer settings."""
    s = h.settings("raw", topic)
    conf = h.consumer_config(s, h.name("raw-consume"))
    return asdict(consume_rate(conf, topic, h.options.filtered_count))
