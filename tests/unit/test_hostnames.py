"""The one host-name conversion (:func:`stream_wfm.hostnames.ascii_host`) and config
validation refusing a host it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from stream_wfm.hostnames import InvalidHostError, ascii_host
from stream_wfm.integrations.model import ConfigValidationError, validate_config


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        # IDNA 2008 / UTS #46, non-transitional: ß is kept (IDNA 2003 made it "ss").
        ("faß.example", "xn--fa-hia.example"),
        ("FAß.EXAMPLE", "xn--fa-hia.example"),
        ("ÖBB.at", "xn--bb-eka.at"),
        ("öbb.at", "xn--bb-eka.at"),
        ("bücher.example", "xn--bcher-kva.example"),
        (
            "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
            "example.com",
        ),  # UTS #46 maps full-width letters
        ("faß.example.", "xn--fa-hia.example."),  # a trailing dot stays
        # Already ASCII: lower case, nothing else.
        ("hooks.example.com", "hooks.example.com"),
        ("Hooks.Example.COM", "hooks.example.com"),
        ("hooks.example.com.", "hooks.example.com."),
        ("HOOKS.EXAMPLE.COM.", "hooks.example.com."),
        ("xn--fa-hia.example", "xn--fa-hia.example"),
        ("my_host.example", "my_host.example"),
        ("localhost", "localhost"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
        # IP addresses as they are.
        ("127.0.0.1", "127.0.0.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("::1", "::1"),
    ],
)
def test_ascii_host(host: str, expected: str) -> None:
    assert ascii_host(host) == expected


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("\U0001f4a9.example", "IDNA 2008"),  # an emoji: refused by IDNA 2008
        ("caf\u00e9\u2603.example", "IDNA 2008"),  # a snowman
        ("a..example", "an empty label"),
        (".example", "an empty label"),
        ("", "an empty label"),
        ("a" * 64 + ".example", "longer than 63"),
        ("a" * 64 + "é.example", "IDNA 2008"),
        (".".join(["a" * 63] * 4), "longer than 253"),
        ("%41.example", "characters other than"),  # percent-encoding is not a name
        ("a b.example", "characters other than"),
        ("a*.example", "characters other than"),
    ],
)
def test_a_host_with_no_ascii_form_is_refused(host: str, problem: str) -> None:
    with pytest.raises(InvalidHostError, match=problem):
        ascii_host(host)


def test_invalid_host_error_is_a_value_error() -> None:
    """Callers that catch ValueError (e.g. the h1 transport's connection errors) see it."""
    with pytest.raises(ValueError, match="IDNA 2008"):
        ascii_host("\U0001f600.example")


def _config(url: str) -> dict[str, Any]:
    return {"account_id": "15300001", "call_event_url": url, "end_call_events": True}


@pytest.mark.parametrize(
    "url",
    [
        "https://\U0001f4a9.example/hook",
        "https://\u2603.example:8443/hook",
        "https://a_b.\U0001f600.example/",
        "https://%41.example/hook",
    ],
)
def test_config_validation_refuses_a_host_idna_2008_refuses(url: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        validate_config(_config(url))
    [error] = caught.value.field_errors
    assert error.field == "call_event_url"
    assert error.message.startswith("has an invalid host name (")


@pytest.mark.parametrize(
    "url",
    [
        "https://faß.example/hook",
        "https://ÖBB.at/hook",
        "https://hooks.example.com./hook",
        "https://My_Host.example:8443/hook",
        "http://[2001:db8::1]:8080/hook",
    ],
)
def test_config_validation_accepts_hosts_with_an_ascii_form(url: str) -> None:
    assert validate_config(_config(url)).call_event_url == url  # kept as written
