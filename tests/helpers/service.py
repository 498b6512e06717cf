"""``stream-wfm run`` as a real subprocess, for a test.

Built on the bench's :class:`~stream_wfm.bench.service_proc.ServiceProcess` (spawning with
``STREAM_WFM_*`` variables only, in an empty directory; readiness; SIGTERM and ``kill -9``;
its output); this adds the settings' environment, a readiness wait that does not block
the event loop, and metrics by labels.
"""

from __future__ import annotations

import sys
import uuid
from typing import Self

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from stream_wfm.bench.service_proc import ServiceProcess
from stream_wfm.settings import Settings
from tests.helpers.settings import settings_env
from tests.helpers.waiting import wait_until


def named(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    """The samples called ``name`` that carry ``labels``."""
    return [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


class ServiceUnderTest(ServiceProcess):
    """``stream-wfm run`` with the environment of ``settings`` (JSON logs) plus ``env``, on
    a free HTTP port; started by :meth:`start`.

    Processes of one test share a group and a host name, so none is a static group member
    (``STREAM_WFM_INSTANCE_ID`` empty) unless ``settings`` or ``env`` name an instance id:
    with the host name (the default in Kubernetes) two members would share one id and
    Tansu gives both every partition; and on Tansu static members with the tests' 2 s
    sessions never form a stable group (docs/kafka.md). Give each its own id, e.g.
    :func:`unique_instance_id`, when a test is about static membership."""

    def __init__(self, settings: Settings, **env: str) -> None:
        base = settings_env(settings)
        base.setdefault("STREAM_WFM_INSTANCE_ID", "")
        super().__init__({**base, "STREAM_WFM_LOG_FORMAT": "json", **env})

    async def wait_ready(self, timeout: float = 30.0) -> Self:
        """Wait (without blocking the event loop) until ``/readyz`` answers 200."""
        await wait_until(self.is_ready, timeout, "service ready")
        return self

    def samples(self) -> list[Sample]:
        """Every sample on ``/metrics`` (none while it does not answer 200)."""
        status, text = self.get("/metrics")
        if status != 200:
            return []
        return [s for family in text_string_to_metric_families(text) for s in family.samples]

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` that carry ``labels`` (0 when none)."""
        return sum(s.value for s in named(self.samples(), name, **labels))


def unique_instance_id(settings: Settings) -> str:
    """A static membership id no other process of the test uses: ``<group>-<hex>``."""
    return f"{settings.group_id}-{uuid.uuid4().hex[:8]}"


def without(*modules: str) -> list[str]:
    """``stream-wfm`` in a Python that cannot import ``modules``, as if the extra that
    installs them were left out (the container image has no ``embedded`` extra)."""
    hide = "".join(f"sys.modules[{module!r}] = None; " for module in modules)
    main = "from stream_wfm.cli.main import main; raise SystemExit(main(sys.argv[1:]))"
    code = f"import sys; {hide}{main}"
    return [sys.executable, "-c", code]
