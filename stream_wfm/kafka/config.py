"""librdkafka configuration for every client the service creates.

Each client gets, in this order (a later one wins): the service's own defaults and the
authentication of ``STREAM_WFM_KAFKA_AUTH``; the shared ``STREAM_WFM_KAFKA__*``
properties *that this kind of client takes*; the client's own map
(``STREAM_WFM_CONSUMER__*``, ``STREAM_WFM_PRODUCER__*``, ``STREAM_WFM_ADMIN__*``).
Which client takes a shared property is librdkafka's scope of it (:data:`PROPERTY_SCOPES`):
C properties go to consumers, P properties to producers, ``*`` properties to every client
including the admin client; a name librdkafka does not list goes to every client, so that
a typo still gets librdkafka's own error. docs/contract.md §8, docs/kafka.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, Literal

from stream_wfm.kafka.auth import auth_config
from stream_wfm.settings import Settings

# librdkafka's own log lines go through Python logging (and so the JSON formatter and its
# redaction) instead of raw "%4|...|CONFWARN|..." lines on stderr.
LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")

#: The kinds of client, each with its own pass-through map.
Client = Literal["consumer", "producer", "admin"]

# The "C/P" column of librdkafka's CONFIGURATION.md (global and topic properties; aliases
# included): C = consumer only, P = producer only, * = both. Taken from CONFIGURATION.md of
# librdkafka v2.15.0 (master 4c3b017c3) and checked, name by name, against what the
# librdkafka that confluent-kafka 2.16.2 ships (libversion 2.16.0) prints with
# rd_kafka_conf_properties_show(): the same 193 properties with the same scopes.
# tests/unit/test_kafka_config.py compares it with the installed librdkafka again.
_SCOPE_TABLE: Final = {
    "C": """
        auto.commit.enable auto.commit.interval.ms auto.offset.reset check.crcs
        consume.callback.max.messages consume_cb coordinator.query.interval.ms
        enable.auto.commit enable.auto.offset.store enable.partition.eof
        fetch.error.backoff.ms fetch.max.bytes fetch.message.max.bytes fetch.min.bytes
        fetch.queue.backoff.ms fetch.wait.max.ms group.id group.instance.id group.protocol
        group.protocol.type group.remote.assignor heartbeat.interval.ms isolation.level
        max.partition.fetch.bytes max.poll.interval.ms max.poll.records offset.store.method
        offset.store.path offset.store.sync.interval.ms offset_commit_cb
        partition.assignment.strategy queued.max.messages.kbytes queued.min.messages
        rebalance_cb session.timeout.ms share.acknowledgement.mode
    """,
    "P": """
        acks batch.num.messages batch.size compression.codec compression.level
        compression.type delivery.report.only.error delivery.timeout.ms dr_cb dr_msg_cb
        enable.gapless.guarantee enable.idempotence linger.ms message.send.max.retries
        message.timeout.ms msg_order_cmp partitioner partitioner_cb produce.offset.report
        queue.buffering.backpressure.threshold queue.buffering.max.kbytes
        queue.buffering.max.messages queue.buffering.max.ms queuing.strategy
        request.required.acks request.timeout.ms retries sticky.partitioning.linger.ms
        transaction.timeout.ms transactional.id
    """,
    "*": """
        allow.auto.create.topics api.version.fallback.ms api.version.request
        api.version.request.timeout.ms background_event_cb bootstrap.servers
        broker.address.family broker.address.ttl broker.version.fallback builtin.features
        client.dns.lookup client.id client.rack closesocket_cb connect_cb
        connections.max.idle.ms debug default_topic_conf enable.metrics.push
        enable.random.seed enable.sasl.oauthbearer.unsecure.jwt
        enable.ssl.certificate.verification enabled_events error_cb https.ca.location
        https.ca.pem interceptors internal.termination.signal log.connection.close
        log.queue log.thread.name log_cb log_level max.in.flight
        max.in.flight.requests.per.connection message.copy.max.bytes message.max.bytes
        metadata.broker.list metadata.max.age.ms metadata.recovery.rebootstrap.trigger.ms
        metadata.recovery.strategy oauthbearer_token_refresh_cb opaque open_cb
        plugin.library.paths receive.message.max.bytes reconnect.backoff.jitter.ms
        reconnect.backoff.max.ms reconnect.backoff.ms resolve_cb retry.backoff.max.ms
        retry.backoff.ms sasl.kerberos.keytab sasl.kerberos.kinit.cmd
        sasl.kerberos.min.time.before.relogin sasl.kerberos.principal
        sasl.kerberos.service.name sasl.mechanism sasl.mechanisms
        sasl.oauthbearer.assertion.algorithm sasl.oauthbearer.assertion.claim.aud
        sasl.oauthbearer.assertion.claim.exp.seconds sasl.oauthbearer.assertion.claim.iss
        sasl.oauthbearer.assertion.claim.jti.include
        sasl.oauthbearer.assertion.claim.nbf.seconds sasl.oauthbearer.assertion.claim.sub
        sasl.oauthbearer.assertion.file sasl.oauthbearer.assertion.jwt.template.file
        sasl.oauthbearer.assertion.private.key.file
        sasl.oauthbearer.assertion.private.key.passphrase
        sasl.oauthbearer.assertion.private.key.pem
        sasl.oauthbearer.client.credentials.client.id
        sasl.oauthbearer.client.credentials.client.secret sasl.oauthbearer.client.id
        sasl.oauthbearer.client.secret sasl.oauthbearer.config sasl.oauthbearer.extensions
        sasl.oauthbearer.grant.type sasl.oauthbearer.metadata.authentication.type
        sasl.oauthbearer.method sasl.oauthbearer.scope sasl.oauthbearer.sub.claim.name
        sasl.oauthbearer.token.endpoint.url sasl.password sasl.username security.protocol
        socket.blocking.max.ms socket.connection.setup.timeout.ms socket.keepalive.enable
        socket.max.fails socket.nagle.disable socket.receive.buffer.bytes
        socket.send.buffer.bytes socket.timeout.ms socket_cb ssl.ca.certificate.stores
        ssl.ca.location ssl.ca.pem ssl.certificate.location ssl.certificate.pem
        ssl.certificate.verify_cb ssl.cipher.suites ssl.crl.location ssl.curves.list
        ssl.endpoint.identification.algorithm ssl.engine.id ssl.engine.location
        ssl.key.location ssl.key.password ssl.key.pem ssl.keystore.location
        ssl.keystore.password ssl.providers ssl.sigalgs.list ssl_ca ssl_certificate
        ssl_engine_callback_data ssl_key statistics.interval.ms stats_cb throttle_cb
        topic.blacklist topic.metadata.propagation.max.ms topic.metadata.refresh.fast.cnt
        topic.metadata.refresh.fast.interval.ms topic.metadata.refresh.interval.ms
        topic.metadata.refresh.sparse
    """,
}

#: librdkafka property → its scope: ``"C"`` (consumer), ``"P"`` (producer) or ``"*"`` (both).
PROPERTY_SCOPES: Final[Mapping[str, str]] = {
    name: scope for scope, names in _SCOPE_TABLE.items() for name in names.split()
}

#: The scopes each kind of client takes. The admin client is a producer handle inside
#: librdkafka, but only the properties of every client concern it.
_TAKES: Final[Mapping[Client, frozenset[str]]] = {
    "consumer": frozenset({"C", "*"}),
    "producer": frozenset({"P", "*"}),
    "admin": frozenset({"*"}),
}

#: Consumer properties of the classic group protocol that librdkafka refuses together with
#: ``group.protocol=consumer`` (KIP-848: the broker sets them, or assigns itself).
CLASSIC_PROTOCOL_ONLY: Final = frozenset(
    {"partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms",
     "group.protocol.type"}
)  # fmt: skip


def takes(client: Client, prop: str) -> bool:
    """Whether ``client`` takes the shared property ``prop`` (unknown names: yes)."""
    scope = PROPERTY_SCOPES.get(prop)
    return scope is None or scope in _TAKES[client]


def _own_map(settings: Settings, client: Client) -> dict[str, str]:
    if client == "consumer":
        return settings.consumer
    if client == "producer":
        return settings.producer
    return settings.admin


def group_protocol(settings: Settings) -> str:
    """The consumers' ``group.protocol``: ``classic`` unless the consumer map or the shared
    map says otherwise."""
    return settings.consumer.get("group.protocol", settings.kafka.get("group.protocol", "classic"))


def client_properties(settings: Settings, client: Client) -> dict[str, str]:
    """The pass-through properties of one kind of client: the shared ones it takes, then
    its own map over them. With ``group.protocol=consumer`` the consumers leave out the
    classic protocol's properties of the shared map (an explicit consumer map keeps them,
    and librdkafka says what is wrong)."""
    shared = {prop: value for prop, value in settings.kafka.items() if takes(client, prop)}
    if client == "consumer" and group_protocol(settings) == "consumer":
        shared = {k: v for k, v in shared.items() if k not in CLASSIC_PROTOCOL_ONLY}
    return {**shared, **_own_map(settings, client)}


def _config(settings: Settings, client: Client, defaults: dict[str, Any]) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers or "",
        "logger": LIBRDKAFKA_LOGGER,
        **auth_config(settings),
        **defaults,
    }
    if client == "consumer":
        # Explicit, so that a librdkafka whose default becomes `consumer` (its documentation
        # announces it) does not refuse the classic protocol's properties given here.
        conf["group.protocol"] = group_protocol(settings)
    conf.update(client_properties(settings, client))
    return conf


def common_config(settings: Settings) -> dict[str, Any]:
    """The admin client (topic administration)."""
    return _config(settings, "admin", {"client.id": "stream-wfm"})


def group_consumer_config(settings: Settings) -> dict[str, Any]:
    """The consumer group member that reads input and retry topics."""
    defaults: dict[str, Any] = {
        "client.id": "stream-wfm",
        "group.id": settings.group_id,
        "enable.auto.commit": False,  # we commit the lowest unfinished offset ourselves
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
        "queued.max.messages.kbytes": 65536,
    }
    if group_protocol(settings) != "consumer":
        # range balances every topic on its own (input and retry topics alike);
        # cooperative-sticky balances only the total count and can leave one member
        # with every input partition and another with only idle retry partitions.
        # With KIP-848 (group.protocol=consumer) the broker assigns instead
        # (group.remote.assignor), and librdkafka refuses this property.
        defaults["partition.assignment.strategy"] = "range"
    instance_id = settings.group_instance_id
    if instance_id:
        defaults["group.instance.id"] = instance_id  # static membership (docs/kafka.md)
    return _config(settings, "consumer", defaults)


def reader_config(settings: Settings, client_id: str) -> dict[str, Any]:
    """A consumer that reads topics by assignment only: no group, never commits."""
    return _config(
        settings,
        "consumer",
        {
            "client.id": client_id,
            # librdkafka wants a group id even for assign(); it is never joined or committed.
            "group.id": f"{settings.group_id}.{client_id}.unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        },
    )


def producer_config(settings: Settings, client_id: str = "stream-wfm") -> dict[str, Any]:
    return _config(
        settings,
        "producer",
        {
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        },
    )
