"""Client configuration (kafka/config.py): librdkafka's property scopes as data, each shared
STREAM_WFM_KAFKA__* property routed to the clients that take it, the per-client maps over
them, KIP-848 and static membership."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from stream_wfm.kafka import config as kafka_config
from stream_wfm.kafka.config import (
    CLASSIC_PROTOCOL_ONLY,
    PROPERTY_SCOPES,
    client_properties,
    common_config,
    group_consumer_config,
    producer_config,
    reader_config,
    takes,
)
from stream_wfm.settings import Settings

#: Every client configuration the service and its tools build, by a name.
BUILDERS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "group consumer": group_consumer_config,
    "reader": lambda s: reader_config(s, "reader"),
    "producer": producer_config,
    "admin": common_config,
}
CONSUMERS = ("group consumer", "reader")


def configs(**fields: Any) -> dict[str, dict[str, Any]]:
    settings = Settings(bootstrap_servers="127.0.0.1:1", **fields)
    return {name: build(settings) for name, build in BUILDERS.items()}


def holders(prop: str, **fields: Any) -> set[str]:
    """The clients whose configuration has ``prop``."""
    return {name for name, conf in configs(**fields).items() if prop in conf}


@pytest.fixture(autouse=True)
def _not_in_kubernetes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


# --- the scope table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "scope"),
    [
        ("session.timeout.ms", "C"),
        ("heartbeat.interval.ms", "C"),
        ("group.instance.id", "C"),
        ("group.protocol", "C"),
        ("group.remote.assignor", "C"),
        ("auto.offset.reset", "C"),  # a topic property
        ("fetch.wait.max.ms", "C"),
        ("linger.ms", "P"),
        ("acks", "P"),  # alias of request.required.acks, a topic property
        ("enable.idempotence", "P"),
        ("compression.type", "P"),
        ("message.timeout.ms", "P"),
        ("security.protocol", "*"),
        ("sasl.mechanism", "*"),
        ("sasl.mechanisms", "*"),
        ("sasl.username", "*"),
        ("ssl.ca.location", "*"),
        ("client.id", "*"),
        ("debug", "*"),
        ("log_level", "*"),
        ("socket.timeout.ms", "*"),
    ],
)
def test_known_scopes(prop: str, scope: str) -> None:
    assert PROPERTY_SCOPES[prop] == scope


def test_the_table_lists_each_property_once_with_one_of_three_scopes() -> None:
    names = [name for text in kafka_config._SCOPE_TABLE.values() for name in text.split()]
    assert len(names) == len(set(names)) == len(PROPERTY_SCOPES) == 193
    assert set(PROPERTY_SCOPES.values()) == {"C", "P", "*"}
    assert all(re.fullmatch(r"[a-z0-9._]+", name) for name in names)


def _librdkafka_path() -> Path | None:
    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*")) if libs.is_dir() else []
    return found[0] if found else None


def _installed_scopes(path: Path) -> dict[str, str]:
    """The C/P column librdkafka itself prints (rd_kafka_conf_properties_show)."""
    lib = ctypes.CDLL(str(path))
    libc = ctypes.CDLL(None)
    libc.fdopen.restype = ctypes.c_void_p
    libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_conf_properties_show.argtypes = [ctypes.c_void_p]
    read_end, write_end = os.pipe()
    stream = libc.fdopen(write_end, b"w")
    with os.fdopen(read_end, "rb") as reader:
        # The table is ~70 kB: more than a pipe holds, so read while librdkafka writes.
        chunks: list[bytes] = []
        pump = threading.Thread(target=lambda: chunks.append(reader.read()))
        pump.start()
        lib.rd_kafka_conf_properties_show(stream)
        libc.fclose(stream)
        pump.join()
    scopes: dict[str, str] = {}
    for line in b"".join(chunks).decode().splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 5 and cells[1] in {"C", "P", "*"}:
            scopes[cells[0]] = cells[1]
    return scopes


def test_the_table_is_the_one_of_the_installed_librdkafka() -> None:
    """After an upgrade of confluent-kafka, this says which rows of _SCOPE_TABLE to change
    (from that librdkafka's CONFIGURATION.md)."""
    path = _librdkafka_path()
    if path is None:
        pytest.skip("confluent-kafka's bundled librdkafka not found (not a manylinux wheel)")
    installed = _installed_scopes(path)
    assert installed, "librdkafka printed no property table"
    missing = {k: v for k, v in installed.items() if PROPERTY_SCOPES.get(k) != v}
    extra = sorted(set(PROPERTY_SCOPES) - set(installed))
    version = confluent_kafka.libversion()[0]
    assert not missing, f"librdkafka {version}: add or change in _SCOPE_TABLE: {missing}"
    assert not extra, f"librdkafka {version}: remove from _SCOPE_TABLE: {extra}"


@pytest.mark.parametrize(
    ("prop", "consumer", "producer", "admin"),
    [
        ("session.timeout.ms", True, False, False),
        ("linger.ms", False, True, False),
        ("security.protocol", True, True, True),
        ("not.a.property", True, True, True),  # unknown: everywhere, librdkafka names it
    ],
)
def test_which_client_takes_what(prop: str, consumer: bool, producer: bool, admin: bool) -> None:
    assert (takes("consumer", prop), takes("producer", prop), takes("admin", prop)) == (
        consumer,
        producer,
        admin,
    )


# --- routing ------------------------------------------------------------------------------------


def test_a_consumer_property_reaches_the_consumers_only() -> None:
    assert holders("session.timeout.ms", kafka={"session.timeout.ms": "6000"}) == set(CONSUMERS)


def test_a_producer_property_reaches_the_producers_only() -> None:
    assert holders("batch.size", kafka={"batch.size": "100000"}) == {"producer"}


def test_a_property_of_every_client_and_an_unknown_one_reach_every_client() -> None:
    shared = {"socket.keepalive.enable": "true", "not.a.property": "1"}
    for conf in configs(kafka=shared).values():
        assert conf["socket.keepalive.enable"] == "true"
        assert conf["not.a.property"] == "1"


def test_client_maps_reach_their_client_and_win_over_the_shared_map() -> None:
    got = configs(
        kafka={"client.id": "shared", "socket.timeout.ms": "20000"},
        consumer={"client.id": "c", "fetch.min.bytes": "10"},
        producer={"client.id": "p"},
        admin={"client.id": "a", "socket.timeout.ms": "5000"},
    )
    assert {name: conf["client.id"] for name, conf in got.items()} == {
        "group consumer": "c",
        "reader": "c",
        "producer": "p",
        "admin": "a",
    }
    assert [got[name].get("fetch.min.bytes") for name in BUILDERS] == ["10", "10", None, None]
    assert got["admin"]["socket.timeout.ms"] == "5000"
    assert got["producer"]["socket.timeout.ms"] == "20000"


def test_a_client_map_is_not_filtered() -> None:
    """What an operator gives one client explicitly, it gets (librdkafka warns if it must)."""
    assert client_properties(Settings(producer={"session.timeout.ms": "1"}), "producer") == {
        "session.timeout.ms": "1"
    }


def test_pass_through_wins_over_the_service_defaults() -> None:
    got = configs(kafka={"acks": "1", "fetch.wait.max.ms": "50"})
    assert got["producer"]["acks"] == "1"
    assert got["group consumer"]["fetch.wait.max.ms"] == "50"
    assert got["group consumer"]["partition.assignment.strategy"] == "range"
    assert got["producer"]["enable.idempotence"] is True


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _confwarn_lines(conf_by_client: dict[str, dict[str, Any]]) -> list[str]:
    """Create every client with its configuration; librdkafka's CONFWARN lines."""
    capture = _Capture()
    logger = logging.getLogger(f"test-librdkafka-{id(capture)}")
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for name, conf in conf_by_client.items():
        conf = {**conf, "logger": logger}
        if name in CONSUMERS:
            client: Any = Consumer(conf)
            client.poll(0.1)  # serves the log queue
            client.close()
        elif name == "producer":
            client = Producer(conf)
            client.poll(0.1)
            client.flush(0)
        else:
            client = AdminClient(conf)
            client.poll(0.1)
    return [line for line in capture.lines if "CONFWARN" in line and "bootstrap" not in line]


def test_shared_properties_of_one_side_print_no_confwarn() -> None:
    shared = {
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "2000",
        "linger.ms": "10",
        "batch.size": "200000",
        "socket.keepalive.enable": "true",
    }
    assert _confwarn_lines(configs(kafka=shared)) == []


def test_librdkafka_still_warns_as_before_without_the_routing() -> None:
    """The check above can fail: a consumer property given to a producer is a CONFWARN."""
    conf = producer_config(Settings(bootstrap_servers="127.0.0.1:1"))
    lines = _confwarn_lines({"producer": {**conf, "session.timeout.ms": "6000"}})
    assert any("session.timeout.ms is a consumer property" in line for line in lines), lines


# --- KIP-848 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["consumer", "kafka"])
def test_kip848_leaves_the_assignment_to_the_broker(where: str) -> None:
    shared = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"}  # e.g. embedded
    chosen = {"group.protocol": "consumer", "group.remote.assignor": "uniform"}
    fields: dict[str, Any] = (
        {"kafka": shared, "consumer": chosen} if where == "consumer" else {"kafka": shared | chosen}
    )
    got = configs(**fields)
    for name in CONSUMERS:
        conf = got[name]
        assert conf["group.protocol"] == "consumer"
        assert not CLASSIC_PROTOCOL_ONLY & set(conf), name
    assert got["group consumer"]["group.remote.assignor"] == "uniform"
    assert "group.protocol" not in got["producer"]
    assert got["producer"].keys().isdisjoint(shared)
    # librdkafka accepts both consumers (it refuses a strategy with group.protocol=consumer).
    Consumer(got["group consumer"]).close()
    Consumer(got["reader"]).close()


def test_the_classic_protocol_keeps_the_range_assignor() -> None:
    conf = group_consumer_config(Settings(kafka={"session.timeout.ms": "6000"}))
    assert conf["partition.assignment.strategy"] == "range"
    assert conf["session.timeout.ms"] == "6000"


def test_kip848_with_an_explicit_classic_property_is_librdkafkas_error() -> None:
    settings = Settings(consumer={"group.protocol": "consumer", "session.timeout.ms": "6000"})
    with pytest.raises(KafkaException, match=r"session\.timeout\.ms"):
        Consumer(group_consumer_config(settings))


# --- static membership ----------------------------------------------------------------------


def test_the_instance_id_goes_to_the_group_member_only() -> None:
    assert holders("group.instance.id", instance_id="pod-7") == {"group consumer"}
    assert group_consumer_config(Settings(instance_id="pod-7"))["group.instance.id"] == "pod-7"


def test_no_instance_id_outside_kubernetes_by_default() -> None:
    assert Settings().group_instance_id is None
    assert "group.instance.id" not in group_consumer_config(Settings())


def test_the_pod_name_in_kubernetes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setattr("socket.gethostname", lambda: "stream-wfm-7d9f-abcde")
    assert group_consumer_config(Settings())["group.instance.id"] == "stream-wfm-7d9f-abcde"
    assert "group.instance.id" not in group_consumer_config(Settings(instance_id=""))


def test_a_pass_through_instance_id_wins() -> None:
    settings = Settings(instance_id="a", consumer={"group.instance.id": "b"})
    assert group_consumer_config(settings)["group.instance.id"] == "b"
