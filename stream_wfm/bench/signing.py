"""What signing costs one request, measured in-process: building the bench's request from
its template, unsigned and signed with 1 and 3 secrets (the signature headers made as a
transport makes them when it sends the request). The service runs measure the same cost
inside everything else a delivery costs, where it is hard to tell from run-to-run noise;
this measures it alone."""

from __future__ import annotations

import time
from typing import Any, Final

from stream_wfm.bench.workload import ACCOUNT_ID, SIGNING_SECRETS, agent_event, integration
from stream_wfm.delivery.request import compile_template
from stream_wfm.events import EventKind, decode_event
from stream_wfm.integrations.model import validate_config

#: Requests built (and signed) per measurement.
ROUNDS: Final = 20_000


def _cpu_us_per_request(fmt: str, secrets: tuple[str, ...], rounds: int) -> float:
    cfg = validate_config(
        integration(ACCOUNT_ID, "http://127.0.0.1:9/agent", fmt == "json", secrets)
    )
    template = compile_template(cfg, EventKind.AGENT)
    assert template is not None
    event = decode_event(agent_event(7, "sample", True), EventKind.AGENT, "t:0:0")
    start = time.process_time()
    for _ in range(rounds):
        request = template.build(event)
        if request.signed:
            request.signature_headers()
    return (time.process_time() - start) * 1e6 / rounds


def signing_cost(fmt: str, rounds: int = ROUNDS) -> dict[str, Any]:
    """CPU µs per request to build it unsigned, and to build and sign it with 1 and with 3
    secrets; ``sign_us_<n>`` is the difference, what signing adds."""
    unsigned = _cpu_us_per_request(fmt, (), rounds)
    one = _cpu_us_per_request(fmt, SIGNING_SECRETS[:1], rounds)
    three = _cpu_us_per_request(fmt, SIGNING_SECRETS[:3], rounds)
    return {
        "format": fmt,
        "rounds": rounds,
        "build_us": unsigned,
        "build_and_sign_us_1": one,
        "build_and_sign_us_3": three,
        "sign_us_1": one - unsigned,
        "sign_us_3": three - unsigned,
    }
