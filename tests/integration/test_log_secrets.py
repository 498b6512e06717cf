"""The real service's logs: JSON lines with account, event id and outcome,
and no integration header value or signing secret anywhere, whatever happens to the
deliveries and the config.
"""

from __future__ import annotations

import base64
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from stream_wfm.settings import Settings
from tests.helpers.config import put_config
from tests.helpers.receiver import Received
from tests.helpers.service import ServiceUnderTest
from tests.helpers.topics import produce_json
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

ACCOUNT = "15300002"
# Distinctive values, one per header and per config version. `X-Tenant-Key` is not a name the
# log redaction knows: its value must stay out of the logs because it is never logged at all.
TAG = uuid.uuid4().hex[:12]
AUTH_V1, TENANT_V1 = f"Bearer tok-v1-{TAG}", f"tenant-v1-{TAG}"
AUTH_V2, TENANT_V2 = f"Bearer tok-v2-{TAG}", f"tenant-v2-{TAG}"
TENANT_INVALID = f"tenant-invalid-{TAG}"
# Signing secrets (signed webhooks): v1 signs first, then a rotation adds v2.
SIGN_V1 = "whsec_" + base64.b64encode(f"signing-key-v1-{TAG}-0123456789".encode()).decode()
SIGN_V2 = "whsec_" + base64.b64encode(f"signing-key-v2-{TAG}-0123456789".encode()).decode()
SIGN_INVALID = "whsec_" + base64.b64encode(f"short-{TAG}".encode()).decode()  # 18 bytes
SECRETS = [AUTH_V1, TENANT_V1, AUTH_V2, TENANT_V2, TENANT_INVALID, SIGN_V1, SIGN_V2, SIGN_INVALID]


def integration(url: str, auth: str, tenant: str, **changes: Any) -> dict[str, Any]:
    return {
        "account_id": ACCOUNT,
        "agent_event_url": url,
        "send_body_as_json": True,
        "agent_login_events": True,
        "headers": {"Authorization": auth, "X-Tenant-Key": tenant},
        "signing_secrets": [SIGN_V2, SIGN_V1] if auth == AUTH_V2 else [SIGN_V1],
        "max_retries": 3,
        **changes,
    }


def login(event_id: str, agent_id: str) -> dict[str, Any]:
    return {
        "account_id": ACCOUNT,
        "agent_id": agent_id,
        "event_type": "LOGIN",
        "event_id": event_id,
    }


def event_id(request: Received) -> str:
    return request.headers["X-WFM-Event-Id"]


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every log line, librdkafka's included, must be a JSON object."""
    records: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AssertionError(f"log line is not JSON: {line!r}") from None
        assert isinstance(parsed, dict), line
        records.append(parsed)
    return records


async def test_no_header_value_in_the_logs(
    settings_factory: Callable[..., Settings],
    receiver_factory: Any,
    service_process: Callable[..., ServiceUnderTest],
) -> None:
    settings = settings_factory(retry_backoff="1s,2s")
    attempts: Counter[str] = Counter()

    def respond(request: Received) -> tuple[int, dict[str, str]]:
        eid = event_id(request)
        attempts[eid] += 1
        if eid.startswith("retry-") and attempts[eid] == 1:
            return 503, {}
        if eid.startswith("dlq-"):
            return 400, {}
        return 200, {}

    rec = await receiver_factory(respond=respond)
    put_config(settings, integration(rec.url("/agent"), AUTH_V1, TENANT_V1))
    # DEBUG: every log call of the service is made, not only the INFO ones.
    svc = await service_process(settings, STREAM_WFM_LOG_LEVEL="DEBUG").wait_ready()

    # Deliveries that succeed, fail with 503 and are retried, and fail with 400.
    produce_json(
        settings,
        settings.agent_events_topic,
        [login("ok-1", "a1"), login("retry-1", "a2"), login("dlq-1", "a3")],
    )
    await rec.wait_for(
        lambda reqs: {event_id(r) for r in reqs} >= {"ok-1", "dlq-1"} and attempts["retry-1"] >= 2,
        timeout=20,
    )
    await wait_until(
        lambda: svc.metric("stream_wfm_dead_letters_total", reason="permanent_status") == 1,
        what="the 400 dead-lettered",
    )

    # A config update (rotated credentials), then an invalid record from another writer.
    put_config(settings, integration(rec.url("/agent"), AUTH_V2, TENANT_V2))
    invalid = integration(
        rec.url("/agent"), AUTH_V2, TENANT_INVALID, max_retries=99,
        signing_secrets=[SIGN_V2, SIGN_INVALID],
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    producer.produce(settings.config_topic, key=ACCOUNT.encode(), value=orjson.dumps(invalid))
    assert producer.flush(10) == 0
    await wait_until(
        lambda: svc.metric("stream_wfm_config_invalid_records_total") == 1,
        what="the invalid config record rejected",
    )
    produce_json(settings, settings.agent_events_topic, [login("ok-2", "a1")])
    [after] = [
        r
        for r in await rec.wait_for(lambda reqs: "ok-2" in map(event_id, reqs))
        if event_id(r) == "ok-2"
    ]
    assert after.headers["Authorization"] == AUTH_V2, "the update applied; the invalid one not"
    assert after.headers["X-Tenant-Key"] == TENANT_V2
    assert len(after.headers["webhook-signature"].split(" ")) == 2  # rotated: both sign
    assert attempts["ok-1"] == 1
    assert attempts["dlq-1"] == 1

    svc.stop()
    assert svc.poll() == 0
    text = svc.logs()
    for secret in SECRETS:
        assert secret not in text, f"a secret ({secret[:12]}...) is in the service's logs"
        token = secret.split()[-1].removeprefix("whsec_")
        assert token not in text

    records = parse_lines(text)
    assert records, "the service logged nothing"
    for record in records:
        assert {"ts", "level", "logger", "msg"} <= record.keys(), record
    rdkafka = sum(1 for r in records if r["logger"] == "librdkafka")
    print(f"{len(records)} JSON log lines, {rdkafka} from librdkafka")

    failed = [r for r in records if r["msg"] == "delivery failed"]
    by_event = {r["event_id"]: r for r in failed}
    assert set(by_event) == {"retry-1", "dlq-1"}, failed
    assert all(r["account_id"] == ACCOUNT for r in failed)
    assert by_event["retry-1"].get("outcome") == "retryable"
    assert by_event["retry-1"]["status"] == 503
    assert by_event["dlq-1"].get("outcome") == "permanent"
    assert by_event["dlq-1"]["status"] == 400

    [dead] = [r for r in records if r["msg"] == "event dead-lettered"]
    assert dead["account_id"] == ACCOUNT
    assert dead["event_id"] == "dlq-1"
    assert dead["reason"] == "permanent_status"
    assert dead["level"] == "warning"

    [rejected] = [r for r in records if r["msg"].startswith("invalid config record rejected")]
    assert rejected["account_id"] == ACCOUNT
    assert "max_retries" in rejected["error"]
    assert "signing_secrets: secret 2 must be the base64 of 24 to 64 bytes" in rejected["error"]
