"""h1 over TLS with a certificate the client trusts: delivered, verified against the
URL's host name (also when the destination guard pins the connection to an address,
and for an internationalized name, in its IDNA 2008 form), and refused when the
certificate names another host.

The test CA is trusted through ``SSL_CERT_FILE``, which ``ssl.create_default_context``
reads (OpenSSL's default verify paths), as an operator's CA bundle would be.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from stream_wfm.delivery import destinations
from stream_wfm.delivery.h1_transport import H1Transport
from stream_wfm.delivery.outcome import OutcomeKind
from stream_wfm.delivery.request import WebhookRequest, host_key_of
from tests.helpers.resolving import resolving_to

pytestmark = pytest.mark.integration


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, and server certificates it signed: for localhost, for another name, and for
    ``faß.example`` (IDNA 2008: ``xn--fa-hia.example``)."""
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test CA",
        "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
    )  # fmt: skip
    for name, san in (
        ("local", "DNS:localhost"),
        ("other", "DNS:other.example.test"),
        ("idn", "DNS:xn--fa-hia.example"),
    ):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
        )  # fmt: skip
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        _openssl(
            "x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "1",
            "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.pem"),
        )  # fmt: skip
    return {p.stem + p.suffix: p for p in d.iterdir()}


async def _https_server(cert: Path, key: Path) -> AsyncIterator[tuple[int, list[str]]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    hosts: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hosts.append(request.headers.get("Host", ""))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        yield runner.addresses[0][1], hosts
    finally:
        await runner.cleanup()


@pytest.fixture
async def local_server(pki: dict[str, Path]) -> AsyncIterator[tuple[int, list[str]]]:
    async for server in _https_server(pki["local.pem"], pki["local.key"]):
        yield server


@pytest.fixture
async def other_server(pki: dict[str, Path]) -> AsyncIterator[tuple[int, list[str]]]:
    async for server in _https_server(pki["other.pem"], pki["other.key"]):
        yield server


def _request(url: str) -> WebhookRequest:
    return WebhookRequest(
        "POST", url, (("X-WFM-Event-Id", "ev-1"),), b"{}", 5.0, host_key_of(url), "ev-1"
    )


@pytest.fixture
async def https_server(
    request: pytest.FixtureRequest, pki: dict[str, Path]
) -> AsyncIterator[tuple[int, list[str]]]:
    """A server with the certificate the parameter names ("local", "idn"...)."""
    async for server in _https_server(pki[f"{request.param}.pem"], pki[f"{request.param}.key"]):
        yield server


@pytest.fixture
def trust_test_ca(pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca.pem"]))


@pytest.mark.usefixtures("trust_test_ca")
async def test_https_with_a_trusted_certificate_is_delivered_and_reused(
    local_server: tuple[int, list[str]],
) -> None:
    port, hosts = local_server
    transport = H1Transport(
        max_in_flight=8, max_in_flight_per_host=2, allow_private_destinations=True
    )
    try:
        url = f"https://localhost:{port}/hook"
        outcomes = [await transport.send(_request(url)) for _ in range(3)]
    finally:
        await transport.close()
    assert [o.kind for o in outcomes] == [OutcomeKind.DELIVERED] * 3
    assert hosts == [f"localhost:{port}"] * 3


@pytest.mark.usefixtures("trust_test_ca")
@pytest.mark.parametrize(
    ("https_server", "host", "name", "guard"),
    [
        ("local", "localhost", "localhost", True),
        ("idn", "faß.example", "xn--fa-hia.example", True),
        ("idn", "faß.example", "xn--fa-hia.example", False),
    ],
    ids=["pinned", "idn-pinned", "idn"],
    indirect=["https_server"],
)
async def test_the_certificate_is_verified_against_the_name(
    https_server: tuple[int, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    name: str,
    guard: bool,
) -> None:
    """The connection goes to the address resolved (and checked: 127.0.0.1), yet TLS
    checks the URL's name, in the one ASCII form DNS and ``Host`` get too: the
    certificate (for the name, no IP) is accepted. ``faß.example`` is
    ``xn--fa-hia.example`` (IDNA 2008); IDNA 2003 would check ``fass.example``."""
    monkeypatch.setattr(destinations, "address_refusal", lambda ip: None)
    port, hosts = https_server
    asked: list[str] = []
    transport = H1Transport(
        max_in_flight=8, max_in_flight_per_host=2, allow_private_destinations=not guard,
        resolve=resolving_to(["127.0.0.1"], asked),
    )  # fmt: skip
    try:
        outcome = await transport.send(_request(f"https://{host}:{port}/hook"))
    finally:
        await transport.close()
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    assert asked == [name]
    assert hosts == [f"{name}:{port}"]


@pytest.mark.usefixtures("trust_test_ca")
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_a_certificate_for_another_name_is_refused(
    other_server: tuple[int, list[str]], host: str
) -> None:
    port, hosts = other_server
    transport = H1Transport(
        max_in_flight=8, max_in_flight_per_host=2, allow_private_destinations=True
    )
    try:
        outcome = await transport.send(_request(f"https://{host}:{port}/hook"))
    finally:
        await transport.close()
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.status_class == "connection_error"
    assert outcome.error is not None
    assert outcome.error.startswith("connection error: SSLCertVerificationError: ")
    assert "certificate" in outcome.error.lower()
    assert hosts == []
