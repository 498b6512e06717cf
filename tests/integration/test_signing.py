"""Signed webhooks end to end (docs/contract.md §11): every transport sends the signature
headers; every request of a signed integration verifies with the Standard Webhooks
reference library on a real receiver — JSON and URL-encoded, and through a rotation; the
secrets never reach a retry or dead-letter record or ``config get``'s output."""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from stream_wfm.delivery.outcome import OutcomeKind
from stream_wfm.delivery.request import compile_template
from stream_wfm.delivery.transport import Transport
from stream_wfm.delivery.transport_factory import available_transports, create_transport
from stream_wfm.events import EventKind, decode_event
from stream_wfm.integrations.model import MASK, validate_config
from stream_wfm.integrations.signing import fingerprint
from stream_wfm.service import Service
from stream_wfm.settings import Settings
from tests.helpers.config import put_config
from tests.helpers.receiver import Receiver
from tests.helpers.topics import produce_json, read_topic
from tests.helpers.waiting import wait_until
from tests.integration.test_cli import cli  # noqa: F401 - the fixture
from tests.integration.test_console_http import (
    PASSWORD,
    Console,
    _form,
    _save,
    _test_form,
    start_console,
)

pytestmark = pytest.mark.integration

OLD = "whsec_" + base64.b64encode(b"old-secret-key-of-32-bytes-long!").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-key-of-32-bytes-long!").decode()
OTHER = "whsec_" + base64.b64encode(b"a-third-secret-of-exactly-32-byt").decode()


@dataclass
class Arrival:
    """One request as it reached the receiver: its raw request target, headers, body."""

    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def event_id(self) -> str:
        return self.headers.get("x-wfm-event-id", "")

    @property
    def content(self) -> bytes:
        """What the signature covers: the body, or (empty body) the query as sent."""
        return self.body if self.body else self.target.partition("?")[2].encode()

    def verifies(self, secret: str) -> bool:
        try:
            Webhook(secret).verify(self.content, self.headers, json_parse=False)
        except WebhookVerificationError:
            return False
        return True


@dataclass
class RawReceiver:
    """A receiver on 127.0.0.1 that keeps each request's raw target (path and query as
    sent: the signed query must be compared undecoded) and answers ``status(arrival)``."""

    status: Callable[[Arrival], int] = lambda _a: 200
    arrivals: list[Arrival] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    runner: web.AppRunner | None = None
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        arrival = Arrival(request.raw_path, headers, await request.read())
        self.arrivals.append(arrival)
        async with self.changed:
            self.changed.notify_all()
        return web.Response(status=self.status(arrival))

    async def wait_for(self, what: Callable[[list[Arrival]], bool], timeout: float = 20) -> None:
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: what(self.arrivals)), timeout)
            except TimeoutError:
                raise AssertionError(
                    f"receiver condition not met within {timeout}s; {len(self.arrivals)} requests"
                ) from None


@pytest.fixture
async def raw_receiver() -> AsyncIterator[RawReceiver]:
    receiver = RawReceiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    receiver.runner = web.AppRunner(app, access_log=None)
    await receiver.runner.setup()
    site = web.TCPSite(receiver.runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = receiver.runner.addresses[0][1]
    yield receiver
    await receiver.runner.cleanup()


def integration(url: str, as_json: bool, secrets: list[str], **more: Any) -> dict[str, Any]:
    return {
        "account_id": "1",
        "agent_event_url": url,
        "send_body_as_json": as_json,
        "agent_login_events": True,
        "headers": {"Authorization": "Basic c2lnbmVkLXRlc3Q="},
        "signing_secrets": secrets,
        **more,
    }


def login(event_id: str, agent: str = "7", account_id: str = "1") -> dict[str, Any]:
    return {
        "account_id": account_id,
        "agent_id": agent,
        "event_type": "LOGIN",
        "event_id": event_id,
        "username": "jane.doe+wfm@example.com",
        "date_time": "2026-11-25 09:00:00",
        "note": "caf\u00e9 & \u00e7a",
    }


def metric(service: Service, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


# --- every transport ---------------------------------------------------------------------


@pytest.fixture(params=available_transports())
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    made = create_transport(
        request.param, max_in_flight=8, max_in_flight_per_host=4, allow_private_destinations=True
    )
    yield made
    await made.close()


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "urlencoded"])
@pytest.mark.parametrize("with_response", [False, True], ids=["send", "send_with_response"])
async def test_every_transport_sends_the_signature_headers_of_a_signed_request(
    transport: Transport, raw_receiver: RawReceiver, as_json: bool, with_response: bool
) -> None:
    # URL-encoded, a query with characters HTTP clients escape differently: the query
    # signed is the query sent. (JSON signs the body; its URL is sent as configured.)
    url = raw_receiver.url("/hook?tag=x" if as_json else "/hook?tag=caf\u00e9&q=\"a\"&w='b'")
    cfg = validate_config(integration(url, as_json, [NEW, OLD]))
    template = compile_template(cfg, EventKind.AGENT)
    assert template is not None
    event = decode_event(orjson.dumps(login("ev-signed")), EventKind.AGENT, "t:0:0")
    request = template.build(event)
    if with_response:
        outcome = (await transport.send_with_response(request)).outcome
    else:
        outcome = await transport.send(request)
    assert outcome.kind is OutcomeKind.DELIVERED
    [arrival] = raw_receiver.arrivals
    assert arrival.headers["webhook-id"] == arrival.event_id == "ev-signed"
    assert len(arrival.headers["webhook-signature"].split(" ")) == 2
    assert arrival.verifies(NEW)
    assert arrival.verifies(OLD)
    assert not arrival.verifies(OTHER)
    if not as_json:
        assert arrival.body == b""
        assert arrival.target.startswith("/hook?tag=caf%C3%A9&q=%22a%22&w=%27b%27&account_id=1&")


async def test_an_unsigned_request_carries_no_signature_header(
    transport: Transport, raw_receiver: RawReceiver
) -> None:
    cfg = validate_config(integration(raw_receiver.url(), True, []))
    template = compile_template(cfg, EventKind.AGENT)
    assert template is not None
    event = decode_event(orjson.dumps(login("ev-plain")), EventKind.AGENT, "t:0:0")
    assert (await transport.send(template.build(event))).kind is OutcomeKind.DELIVERED
    [arrival] = raw_receiver.arrivals
    assert not {"webhook-id", "webhook-timestamp", "webhook-signature"} & arrival.headers.keys()


# --- the service -------------------------------------------------------------------------


async def test_every_request_of_a_signed_integration_verifies_json_and_urlencoded(
    settings_factory: Callable[..., Settings], raw_receiver: RawReceiver
) -> None:
    settings = settings_factory()
    put_config(settings, integration(raw_receiver.url("/json"), True, [OLD], account_id="1"))
    put_config(
        settings,
        integration(raw_receiver.url("/form?src=wfm"), False, [NEW, OLD], account_id="2"),
    )
    events = [login(f"j-{n}", str(n), "1") for n in range(20)]
    events += [login(f"u-{n}", str(n), "2") for n in range(20)]
    async with Service(settings):
        produce_json(settings, settings.agent_events_topic, events)
        await raw_receiver.wait_for(lambda arrivals: len(arrivals) >= 40)
    arrivals = raw_receiver.arrivals
    assert {a.event_id for a in arrivals} == {e["event_id"] for e in events}
    for arrival in arrivals:
        assert arrival.headers["webhook-id"] == arrival.event_id
        if arrival.event_id.startswith("j-"):
            assert arrival.target == "/json"
            assert arrival.verifies(OLD)
            assert not arrival.verifies(NEW)
        else:
            assert arrival.target.startswith("/form?src=wfm&account_id=2&")
            assert arrival.body == b""
            assert arrival.verifies(NEW)
            assert arrival.verifies(OLD)


async def test_every_request_verifies_through_a_rotation(
    settings_factory: Callable[..., Settings], raw_receiver: RawReceiver
) -> None:
    """The config goes [old] → [new, old] → [new] while events flow: each request verifies
    with a secret of the config it was built with, old before the rotation, both during
    it, new after the old one was removed; none verifies with neither."""
    settings = settings_factory()
    url = raw_receiver.url("/hook")
    put_config(settings, integration(url, True, [OLD]))
    numbers = itertools.count()
    stop = asyncio.Event()

    async def flow() -> None:
        """Events keep coming, a few at a time, until told to stop."""
        while not stop.is_set():
            batch = [login(f"r-{next(numbers)}", str(n)) for n in range(5)]
            produce_json(settings, settings.agent_events_topic, batch)
            await asyncio.sleep(0.05)  # pacing the producer, not synchronisation

    def with_new(arrivals: list[Arrival]) -> bool:
        return any(a.verifies(NEW) for a in arrivals)

    async with Service(settings):
        producer = asyncio.create_task(flow())
        try:
            await raw_receiver.wait_for(lambda arrivals: len(arrivals) >= 20)
            put_config(settings, integration(url, True, [NEW, OLD]))
            await raw_receiver.wait_for(with_new)
            rotated = len(raw_receiver.arrivals)
            await raw_receiver.wait_for(lambda arrivals: len(arrivals) >= rotated + 20)
            put_config(settings, integration(url, True, [NEW]))
            await raw_receiver.wait_for(
                lambda arrivals: any(a.verifies(NEW) and not a.verifies(OLD) for a in arrivals)
            )
            removed = len(raw_receiver.arrivals)
            await raw_receiver.wait_for(lambda arrivals: len(arrivals) >= removed + 20)
        finally:
            stop.set()
            await producer
        produced = next(numbers)
        await raw_receiver.wait_for(lambda arrivals: len(arrivals) >= produced)

    arrivals = raw_receiver.arrivals
    assert len({a.event_id for a in arrivals}) == produced
    kinds = [(a.verifies(OLD), a.verifies(NEW)) for a in arrivals]
    assert all(old or new for old, new in kinds), "a request verified with neither secret"
    assert all(old and not new for old, new in kinds[:20]), "before the rotation: old only"
    assert (True, True) in kinds, "no request signed with both during the rotation"
    assert (False, True) in kinds, "no request signed with the new secret alone"
    # Requests built with the first config were all sent long before the last change.
    assert (True, False) not in kinds[kinds.index((False, True)) :]


async def test_retry_and_dead_letter_records_of_a_signed_integration_hold_no_secret(
    settings_factory: Callable[..., Settings], raw_receiver: RawReceiver
) -> None:
    settings = settings_factory(retry_backoff="1s,2s")
    attempts: dict[str, int] = {}

    def status(arrival: Arrival) -> int:
        attempts[arrival.event_id] = attempts.get(arrival.event_id, 0) + 1
        return 503 if attempts[arrival.event_id] <= 2 else 400

    raw_receiver.status = status
    put_config(settings, integration(raw_receiver.url(), False, [NEW, OLD], max_retries=5))
    events = [login(f"f-{n}", str(n)) for n in range(4)]
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, events)
        await wait_until(
            lambda: (
                metric(service, "stream_wfm_dead_letters_total", reason="permanent_status")
                == len(events)
            ),
            30,
            "every event dead-lettered",
        )
    assert all(a.verifies(NEW) and a.verifies(OLD) for a in raw_receiver.arrivals)
    records = [
        m for t in [*settings.retry_topics(), settings.dlq_topic] for m in read_topic(settings, t)
    ]
    assert len(records) == len(events) * 2 + len(events)
    signatures = {a.headers["webhook-signature"] for a in raw_receiver.arrivals}
    for m in records:
        raw = (m.key() or b"") + (m.value() or b"") + repr(m.headers()).encode()
        for secret in (NEW, OLD):
            assert secret.encode() not in raw
            assert secret.removeprefix("whsec_").encode() not in raw
        assert b"webhook-signature" not in raw
        for signature in signatures:
            assert signature.encode() not in raw


async def test_config_get_masks_the_signing_secrets_unless_asked(
    settings_factory: Callable[..., Settings],
    cli: Callable[..., tuple[int, str, str]],  # noqa: F811
) -> None:
    settings = settings_factory()
    put_config(settings, integration("https://wfm.example.com/agent", True, [NEW, OLD]))
    code, out, err = cli(settings, "config", "get", "1")
    assert code == 0, err
    assert orjson.loads(out)["signing_secrets"] == [MASK, MASK]
    for secret in (NEW, OLD):
        assert secret.removeprefix("whsec_") not in out + err
    code, out, _err = cli(settings, "config", "list", "--json")
    assert code == 0
    assert orjson.loads(out)["signing_secrets"] == [MASK, MASK]
    code, out, _err = cli(settings, "config", "get", "1", "--show-secrets")
    assert code == 0
    assert orjson.loads(out)["signing_secrets"] == [NEW, OLD]


# --- the console ---------------------------------------------------------------------------


@pytest.fixture
async def console(settings_factory: Callable[..., Settings]) -> AsyncIterator[Console]:
    """A console (as test_console_http's) on its own topics."""
    made, stop = await start_console(settings_factory(console_password=PASSWORD))
    yield made
    await stop()


REVEALED = re.compile(r'<code id="new-signing-secret">([^<]*)</code>')
FINGERPRINTS = re.compile(r"fingerprint <code>([0-9a-f]{8})</code>")
URL = "https://wfm.example.com/agent"


async def sign_action(
    console: Console, page_of: str | None, action: str, **fields: str
) -> tuple[int, str, Any]:
    """Press a signing button of account ``page_of``'s page (None: the new-integration
    page) with the form as ``fields`` make it."""
    page = "/integrations/new" if page_of is None else f"/accounts/{page_of}"
    token = await console.csrf(page)
    form = {**_form(**fields), "action": action, "csrf_token": token}
    return await console.post(f"{page}/signing", form)


def saved_secrets(console: Console) -> list[str]:
    """The signing secrets of the last config record written."""
    secrets: list[str] = orjson.loads(console.config_records()[-1].value())["signing_secrets"]
    return secrets


async def revealed_once(console: Console, location: str) -> str:
    """The secret the page at ``location`` shows; a second visit shows none."""
    status, html = await console.get(location)
    assert status == 200
    found = REVEALED.findall(html)
    assert len(found) == 1, "the new secret is not shown"
    status, html = await console.get(location)
    assert REVEALED.findall(html) == [], "the new secret is shown twice"
    assert found[0] not in html
    return str(found[0])


def assert_no_page_shows(console: Console, secrets: list[str], but: int = 0) -> None:
    """No page the test saw shows one of ``secrets``, but the ``but`` pages that revealed one."""
    showing = [p for p in console.pages if any(s.removeprefix("whsec_") in p for s in secrets)]
    assert len(showing) == but
    assert all(len(REVEALED.findall(page)) == 1 for page in showing)


async def test_generate_saves_a_secret_and_shows_it_once(console: Console) -> None:
    await console.signed_in_with({"account_id": "acc-gen", "agent_event_url": URL})
    status, html = await console.get("/accounts/acc-gen")
    assert "Requests are not signed." in html
    assert ">Generate secret</button>" in html
    assert ">Rotate secret</button>" not in html
    status, _html, resp = await sign_action(console, "acc-gen", "generate_secret")
    assert status == 303, _html
    location = resp.headers["Location"]
    assert location.startswith("/accounts/acc-gen?saved=1&reveal=")
    secret = await revealed_once(console, location)
    assert saved_secrets(console) == [secret]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    status, html = await console.get("/accounts/acc-gen")
    assert FINGERPRINTS.findall(html) == [fingerprint(secret)]
    assert ">Generate secret</button>" not in html
    assert ">Rotate secret</button>" in html
    assert '<label for="remove_secret">Secret to remove</label>' in html
    assert_no_page_shows(console, [secret], but=1)


async def test_the_new_secret_is_shown_only_to_the_session_that_made_it(console: Console) -> None:
    await console.signed_in_with({"account_id": "acc-who", "agent_event_url": URL})
    status, _html, resp = await sign_action(console, "acc-who", "generate_secret")
    assert status == 303
    location = resp.headers["Location"]
    jar = console.client.session.cookie_jar
    mine = jar.filter_cookies(console.client.make_url("/"))["stream_wfm_console"].value
    jar.clear()
    await console.sign_in()  # another session
    status, html = await console.get(location)
    assert status == 200
    assert REVEALED.findall(html) == []
    jar.update_cookies({"stream_wfm_console": mine}, console.client.make_url("/"))
    assert await revealed_once(console, location) == saved_secrets(console)[0]
    # Another account's page does not show it either.
    assert "acc-who" in location
    status, html = await console.get(location.replace("acc-who", "acc-other"))
    assert REVEALED.findall(html) == []


async def test_rotate_adds_a_new_secret_first_at_most_three_and_remove_drops_one(
    console: Console,
) -> None:
    await console.signed_in_with({"account_id": "acc-rot", "agent_event_url": URL})
    _status, _html, resp = await sign_action(console, "acc-rot", "generate_secret")
    first = await revealed_once(console, resp.headers["Location"])
    status, _html, resp = await sign_action(console, "acc-rot", "rotate_secret")
    assert status == 303, _html
    second = await revealed_once(console, resp.headers["Location"])
    assert saved_secrets(console) == [second, first]
    _status, _html, resp = await sign_action(console, "acc-rot", "rotate_secret")
    third = await revealed_once(console, resp.headers["Location"])
    assert saved_secrets(console) == [third, second, first]
    status, html = await console.get("/accounts/acc-rot")
    assert FINGERPRINTS.findall(html) == [fingerprint(s) for s in (third, second, first)]
    assert ">Rotate secret</button>" not in html  # three: the most there may be
    # A fourth is refused, with what to do instead, and nothing is written.
    before = len(console.config_records())
    status, html, _ = await sign_action(console, "acc-rot", "rotate_secret")
    assert status == 400
    assert "An integration has at most 3 signing secrets: remove one (Remove secret)" in html
    assert REVEALED.findall(html) == []
    assert len(console.config_records()) == before
    # Remove the oldest, then the newest, then the last one: signing is off.
    status, _html, resp = await sign_action(
        console, "acc-rot", "remove_secret", remove_secret=fingerprint(first)
    )
    assert status == 303
    assert "reveal=" not in resp.headers["Location"]
    assert saved_secrets(console) == [third, second]
    await sign_action(console, "acc-rot", "remove_secret", remove_secret=fingerprint(third))
    assert saved_secrets(console) == [second]
    # A secret that is not saved (any more) cannot be removed.
    status, html, _ = await sign_action(
        console, "acc-rot", "remove_secret", remove_secret=fingerprint(first)
    )
    assert status == 400
    assert "The secret to remove is not saved (any more)" in html
    await sign_action(console, "acc-rot", "remove_secret", remove_secret=fingerprint(second))
    assert saved_secrets(console) == []
    status, html = await console.get("/accounts/acc-rot")
    assert "Requests are not signed." in html
    assert_no_page_shows(console, [first, second, third], but=3)


async def test_saving_the_form_keeps_the_saved_secrets_whatever_it_posts(
    console: Console,
) -> None:
    await console.signed_in_with(
        {"account_id": "acc-keep", "agent_event_url": URL, "signing_secrets": [NEW, OLD]}
    )
    status, html = await console.get("/accounts/acc-keep")
    assert FINGERPRINTS.findall(html) == [fingerprint(NEW), fingerprint(OLD)]
    form = _form(agent_event_url=URL + "/v2", signing_secrets=OTHER, signing_secrets_0=OTHER)
    status, _html, _ = await _save(console, "/accounts/acc-keep", form)
    assert status == 303, _html
    assert saved_secrets(console) == [NEW, OLD]
    # Generate is refused while there are secrets (Rotate adds one).
    status, html, _ = await sign_action(console, "acc-keep", "generate_secret")
    assert status == 400
    assert "Rotate secret adds one" in html
    assert saved_secrets(console) == [NEW, OLD]
    assert_no_page_shows(console, [NEW, OLD, OTHER])


async def test_saved_secrets_never_follow_a_url_to_another_site(
    console: Console, receiver_factory: Callable[..., Any]
) -> None:
    saved_at: Receiver = await receiver_factory()
    elsewhere: Receiver = await receiver_factory()  # another port: another origin
    await console.signed_in_with(
        {
            "account_id": "acc-away",
            "agent_event_url": saved_at.url("/agent"),
            "agent_login_events": True,
            "send_body_as_json": True,
            "signing_secrets": [NEW, OLD],
        }
    )
    before = len(console.config_records())
    away = {"agent_event_url": elsewhere.url("/agent"), "send_body_as_json": "on"}
    status, html, _ = await _save(console, "/accounts/acc-away", _form(**away))
    assert status == 400
    assert "saved signing secrets are only used for the sites they were made for" in html
    assert "Nothing was saved" in html
    assert ">Generate secret</button>" in html  # the way forward is offered
    assert ">Rotate secret</button>" not in html  # it would carry the saved ones along
    status, html, _ = await sign_action(console, "acc-away", "rotate_secret", **away)
    assert status == 400
    assert "only used for the sites they were made for" in html
    status, html, _ = await _test_form(console, "acc-away", sample="login", **away)
    assert status == 400
    assert "Nothing was sent" in html
    assert elsewhere.requests == []
    assert len(console.config_records()) == before
    # On the saved site, the test event is signed like the service's requests.
    status, html, _ = await _test_form(
        console,
        "acc-away",
        sample="login",
        agent_event_url=saved_at.url("/other"),
        send_body_as_json="on",
    )
    assert status == 200, html
    assert "webhook-id, webhook-timestamp, webhook-signature" in html
    [sent] = saved_at.requests
    Webhook(NEW).verify(sent.body, sent.headers, json_parse=False)
    Webhook(OLD).verify(sent.body, sent.headers, json_parse=False)
    # Generate replaces the secrets for the new site.
    status, _html, resp = await sign_action(console, "acc-away", "generate_secret", **away)
    assert status == 303, _html
    fresh = await revealed_once(console, resp.headers["Location"])
    assert saved_secrets(console) == [fresh]
    entry = console.store.get("acc-away")
    assert entry is not None
    assert entry.config.agent_event_url == elsewhere.url("/agent")
    assert_no_page_shows(console, [NEW, OLD, fresh], but=1)


async def test_generate_on_the_new_integration_page_creates_it_signed(console: Console) -> None:
    await console.sign_in()
    status, html = await console.get("/integrations/new")
    assert ">Generate secret</button>" in html
    status, _html, resp = await sign_action(
        console, None, "generate_secret", account_id="acc-born-signed"
    )
    assert status == 303, _html
    assert resp.headers["Location"].startswith("/accounts/acc-born-signed?saved=1&reveal=")
    secret = await revealed_once(console, resp.headers["Location"])
    assert saved_secrets(console) == [secret]
    # An account that exists already is not replaced from the new-integration page.
    status, html, _ = await sign_action(
        console, None, "generate_secret", account_id="acc-born-signed"
    )
    assert status == 400
    assert saved_secrets(console) == [secret]
