"""Service settings, read from ``STREAM_WFM_*`` environment variables and ``.env``.

Names follow docs/contract.md §1 and §8. Any librdkafka property passes through as
``STREAM_WFM_KAFKA__<NAME>`` with the property's dots written as underscores
(``STREAM_WFM_KAFKA__SECURITY_PROTOCOL=SASL_SSL`` → ``security.protocol``), to the clients
that take it; ``STREAM_WFM_CONSUMER__<NAME>``, ``STREAM_WFM_PRODUCER__<NAME>`` and
``STREAM_WFM_ADMIN__<NAME>`` reach one kind of client only (kafka/config.py).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import socket
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_wfm.errors import SettingsError

ENV_PREFIX = "STREAM_WFM_"
DEFAULT_RETRY_BACKOFF = "10s,1m,10m,1h"
# librdkafka properties whose names contain an underscore (docs/contract.md §8 writes dots as
# underscores, so these are mapped back): STREAM_WFM_KAFKA__LOG_LEVEL → log_level.
_UNDERSCORED_KAFKA_KEYS = {"log.level": "log_level"}
_DELAY = re.compile(r"^([1-9][0-9]*)([smh])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
# librdkafka properties that hold credentials: never logged.
SECRET_KAFKA_KEYS = frozenset(
    {"sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.client.secret"}
)
#: The package of the ``msk-iam`` extra (STREAM_WFM_KAFKA_AUTH=msk-iam).
MSK_IAM_SIGNER = "aws_msk_iam_sasl_signer"
MSK_IAM_EXTRA_MISSING = (
    "msk-iam needs the 'msk-iam' extra (aws-msk-iam-sasl-signer-python): "
    "pip install 'stream-wfm[msk-iam]'"
)
# Kafka's rule for group.instance.id (as for topic names): ASCII letters, digits, . _ -
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def default_instance_id() -> str | None:
    """The static group membership id when STREAM_WFM_INSTANCE_ID is unset: the host name
    in Kubernetes (the pod name; the kubelet sets KUBERNETES_SERVICE_HOST in every pod),
    none elsewhere, where processes on one machine share the host name (docs/kafka.md)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return socket.gethostname() or None
    return None


#: The shortest STREAM_WFM_CONSOLE_SECRET_KEY accepted: 32 characters (256 bits as hex or more).
MIN_CONSOLE_SECRET_KEY_LENGTH = 32

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """Parse ``"10.0.0.0/8, 192.0.2.1"`` (addresses or CIDRs, comma-separated; empty items
    are skipped) into networks; an address is a network of one."""
    networks: list[IPNetwork] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"{item!r} is not an IP address or a CIDR such as 10.0.0.0/8"
            ) from None
    return tuple(networks)


def parse_backoff(value: str) -> tuple[tuple[str, int], ...]:
    """Parse ``"10s,1m,10m,1h"`` into ``(("10s", 10), ("1m", 60), ...)``.

    Each tier is ``N`` followed by ``s``, ``m`` or ``h``; tiers must not decrease.
    """
    tiers: list[tuple[str, int]] = []
    for raw in value.split(","):
        item = raw.strip()
        match = _DELAY.match(item)
        if match is None:
            raise ValueError(f"tier {item!r} is not of the form Ns, Nm or Nh (e.g. 10s,1m,10m,1h)")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if tiers and seconds < tiers[-1][1]:
            raise ValueError(f"tier {item!r} is shorter than the tier before it")
        tiers.append((item, seconds))
    if not tiers:
        raise ValueError("at least one tier is required")
    if len({name for name, _ in tiers}) != len(tiers):
        raise ValueError("tiers must be distinct")
    return tuple(tiers)


_DURATION = re.compile(r"^([0-9]+)([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> int:
    """Parse ``"3d"``, ``"12h"``, ``"90m"``, ``"30s"`` or ``"30"`` (seconds) into seconds;
    ``"0"`` is 0."""
    match = _DURATION.match(value.strip())
    if match is None or len(match.group(1)) > 9:
        raise ValueError(f"{value!r} is not a duration such as 3d, 12h, 90m, 30s or 0")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


class Settings(BaseSettings):
    """Every setting of the service. Frozen: build a new one to change it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    # --- Kafka -------------------------------------------------------------
    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers; unset starts the embedded development broker.",
    )
    group_id: str = Field(default="stream-wfm", min_length=1, description="Consumer group id.")
    agent_events_topic: str = Field(
        default="wfm.agent-events",
        min_length=1,
        description="Input: agent login/logout/state events.",
    )
    call_events_topic: str = Field(
        default="wfm.call-events", min_length=1, description="Input: end-call events."
    )
    config_topic: str = Field(
        default="wfm.integrations",
        min_length=1,
        description="Compacted; key account_id, value the integration config.",
    )
    retry_topic_prefix: str = Field(
        default="wfm.webhooks.retry",
        min_length=1,
        description="Retry tier topics are {prefix}.{delay}, one per tier.",
    )
    dlq_topic: str = Field(default="wfm.webhooks.dlq", min_length=1, description="Dead letters.")
    notices_topic: str = Field(
        default="wfm.notices",
        min_length=1,
        description="Operational notices, e.g. an integration disabled (key account_id).",
    )
    health_topic: str = Field(
        default="wfm.integrations.health",
        min_length=1,
        description="Compacted; per-instance endpoint health, key {account_id}/{instance_id}.",
    )
    retry_backoff: str = Field(
        default=DEFAULT_RETRY_BACKOFF, description="Retry tiers, e.g. 10s,1m,10m,1h."
    )
    topic_partitions: int = Field(
        default=6, ge=1, le=1000, description="Partitions for `topics create` (input topics)."
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, le=10, description="Replication factor for `topics create`."
    )
    kafka: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka properties for every client that takes them: consumer "
        "properties to the consumers, producer properties to the producers, the others and "
        "unknown names to all (STREAM_WFM_KAFKA__<NAME>).",
    )
    consumer: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka properties for the consumers only (group member, config "
        "readers, DLQ tools), over STREAM_WFM_KAFKA__* (STREAM_WFM_CONSUMER__<NAME>).",
    )
    producer: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka properties for the producers only (retries, dead letters, "
        "config writes), over STREAM_WFM_KAFKA__* (STREAM_WFM_PRODUCER__<NAME>).",
    )
    admin: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka properties for the admin clients only (topics create, "
        "topic checks), over STREAM_WFM_KAFKA__* (STREAM_WFM_ADMIN__<NAME>).",
    )
    kafka_auth: Literal["none", "msk-iam"] = Field(
        default="none",
        description="Kafka authentication beyond the pass-through properties: none, or "
        "msk-iam (Amazon MSK IAM: SASL_SSL, OAUTHBEARER tokens signed with the AWS "
        "credentials; needs the msk-iam extra and STREAM_WFM_AWS_REGION).",
    )
    aws_region: str | None = Field(
        default=None,
        validate_default=True,
        description="AWS region of the MSK cluster; required with STREAM_WFM_KAFKA_AUTH=msk-iam.",
    )
    instance_id: str | None = Field(
        default=None,
        description="Static group membership id (group.instance.id) of this instance, unique "
        "in the group; unset: the host name in Kubernetes (the pod name), none elsewhere; "
        "empty: none.",
    )

    # --- Delivery ----------------------------------------------------------
    allow_private_destinations: bool = Field(
        default=False, description="Allow webhooks to loopback/private/link-local addresses."
    )
    http_transport: Literal["h1", "aiohttp", "pyreqwest"] = Field(
        default="h1",
        description="HTTP client for webhooks: h1 (built in, fastest), aiohttp, or pyreqwest "
        "(title-cases header names).",
    )
    max_in_flight: int = Field(
        default=256, ge=1, le=10_000, description="Webhook requests in flight, overall."
    )
    max_in_flight_per_host: int = Field(
        default=64, ge=1, le=10_000, description="Webhook requests in flight per destination host."
    )
    lanes: int = Field(
        default=512, ge=1, le=100_000, description="Ordered delivery lanes (per-agent order)."
    )
    max_buffered_events: int = Field(
        default=20_000, ge=100, description="Pause input partitions above this many pending events."
    )
    order_keys_in_memory: int = Field(
        default=100_000,
        ge=0,
        le=10_000_000,
        description="Ordering keys waiting behind a retried event kept in memory (about "
        "200 bytes each); more are spilled to a file in the temporary directory.",
    )
    backpressure_hold_seconds: float = Field(
        default=3.0,
        gt=0,
        le=600,
        description="Seconds the input may stay held (nothing fetched) under backpressure "
        "before the input partitions are paused and retry topics are fetched again.",
    )
    breaker_window_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Circuit breaker: the window over which an endpoint's attempts count.",
    )
    breaker_min_attempts: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="Circuit breaker: attempts within the window before it may open.",
    )
    breaker_failure_ratio: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="Circuit breaker: share of retryable failures within the window that opens it.",
    )
    breaker_open_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Circuit breaker: seconds open before a probe; doubles while probes "
        "fail, at most 600.",
    )
    auto_disable_after: str = Field(
        default="3d",
        description="Disable an integration whose endpoint's breaker stayed open this long "
        "(e.g. 3d, 12h, 90s; 0: never).",
    )
    shutdown_timeout: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds to drain and commit on SIGTERM."
    )

    # --- Operations --------------------------------------------------------
    http_host: str = Field(default="0.0.0.0", description="Bind address of /metrics, /healthz.")
    http_port: int = Field(default=9108, ge=0, le=65535, description="Port of /metrics, /healthz.")
    log_format: Literal["json", "text"] = Field(default="json", description="Log line format.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level (librdkafka's debug lines are DEBUG)."
    )

    # --- Console -----------------------------------------------------------
    console_host: str = Field(
        default="127.0.0.1",
        description="Bind address of the console (0.0.0.0: every interface, e.g. in a "
        "container behind a proxy).",
    )
    console_port: int = Field(default=9109, ge=0, le=65535, description="Port of the console.")
    console_username: str = Field(
        default="admin", min_length=1, description="User name for the console's sign-in."
    )
    console_password: SecretStr | None = Field(default=None, description="Required by console.")
    console_secret_key: SecretStr | None = Field(
        default=None,
        description="Key signing console sessions, at least 32 characters; random per start "
        "when unset or empty.",
    )
    console_trusted_proxies: str | None = Field(
        default=None,
        description="Addresses or CIDRs (comma-separated) of the reverse proxies in front of "
        "the console; only from these are X-Forwarded-For and X-Forwarded-Proto believed "
        "(unset or empty: none).",
    )

    @field_validator("retry_backoff")
    @classmethod
    def _check_backoff(cls, value: str) -> str:
        parse_backoff(value)
        return value

    @field_validator("auto_disable_after")
    @classmethod
    def _check_auto_disable(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("console_secret_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("console_secret_key", mode="after")
    @classmethod
    def _long_enough_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_CONSOLE_SECRET_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_CONSOLE_SECRET_KEY_LENGTH} characters "
                "(e.g. the output of: python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return value

    @field_validator("console_trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str | None) -> str | None:
        if value is not None:
            parse_networks(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("kafka", "consumer", "producer", "admin", mode="after")
    @classmethod
    def _dotted_kafka_keys(cls, value: dict[str, str]) -> dict[str, str]:
        dotted = ((key.lower().replace("_", "."), str(item)) for key, item in value.items())
        return {_UNDERSCORED_KAFKA_KEYS.get(key, key): item for key, item in dotted}

    @field_validator("kafka_auth")
    @classmethod
    def _auth_installed(cls, value: str) -> str:
        if value == "msk-iam" and importlib.util.find_spec(MSK_IAM_SIGNER) is None:
            raise ValueError(MSK_IAM_EXTRA_MISSING)
        return value

    @field_validator("aws_region")
    @classmethod
    def _region_for_msk_iam(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = value.strip() if value else None
        if info.data.get("kafka_auth") == "msk-iam" and not value:
            raise ValueError("required with STREAM_WFM_KAFKA_AUTH=msk-iam (e.g. eu-west-1)")
        return value

    @field_validator("instance_id")
    @classmethod
    def _check_instance_id(cls, value: str | None) -> str | None:
        if value and not _INSTANCE_ID.match(value):
            raise ValueError(
                "only ASCII letters, digits, '.', '_' and '-', at most 249 characters "
                "(Kafka's rule for group.instance.id)"
            )
        return value

    @property
    def retry_tiers(self) -> tuple[tuple[str, int], ...]:
        """``((name, seconds), ...)`` of the retry tiers."""
        return parse_backoff(self.retry_backoff)

    @property
    def auto_disable_seconds(self) -> float | None:
        """STREAM_WFM_AUTO_DISABLE_AFTER in seconds; None: never."""
        seconds = parse_duration(self.auto_disable_after)
        return seconds or None

    @property
    def health_instance_id(self) -> str:
        """The instance's name in health records: STREAM_WFM_INSTANCE_ID, else the host name."""
        return self.instance_id or socket.gethostname() or "unknown"

    @property
    def console_trusted_networks(self) -> tuple[IPNetwork, ...]:
        """The networks of ``console_trusted_proxies``."""
        return parse_networks(self.console_trusted_proxies or "")

    @property
    def group_instance_id(self) -> str | None:
        """The consumer group member's ``group.instance.id``: STREAM_WFM_INSTANCE_ID, or
        :func:`default_instance_id` when it is unset; ``None`` (dynamic membership) when
        it is empty."""
        chosen = default_instance_id() if self.instance_id is None else self.instance_id
        return chosen or None

    def retry_topics(self) -> list[str]:
        return [f"{self.retry_topic_prefix}.{name}" for name, _ in self.retry_tiers]

    def kafka_for_logs(self) -> dict[str, str]:
        """The pass-through properties with credentials masked."""
        return {k: ("***" if k in SECRET_KAFKA_KEYS else v) for k, v in self.kafka.items()}


def _setting_name(loc: tuple[int | str, ...]) -> str:
    head = str(loc[0]) if loc else "?"
    rest = "__".join(str(part) for part in loc[1:])
    name = f"{ENV_PREFIX}{head.upper()}"
    return f"{name}__{rest.upper()}" if rest else name


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; an invalid one raises :class:`SettingsError` naming it in one line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise SettingsError(
            f"invalid setting {_setting_name(first['loc'])}: {first['msg']}{extra}"
        ) from None
