"""`stream-wfm demo` end to end, as a newcomer runs it: a subprocess, its exit code and
its summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from stream_wfm.demo.samples import DEMO_API_KEY, DEMO_BASIC_AUTH

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end_and_summarises_every_endpoint() -> None:
    env = {
        **os.environ,
        # The demo ignores the environment: a shell set up for a real cluster must not
        # leak into it (this address would make every client fail).
        "STREAM_WFM_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "STREAM_WFM_RETRY_BACKOFF": "1h",
    }
    done = subprocess.run(
        [sys.executable, "-m", "stream_wfm", "demo"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    out, err = done.stdout, done.stderr
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{err}"

    replaying = re.search(r"Replaying (\d+) platform records", out)
    assert replaying is not None, out
    replayed = int(replaying.group(1))
    assert f"All {replayed} records accounted for" in out
    assert f"consumed        {replayed} of {replayed} replayed records" in out

    total = re.search(r"^\s*TOTAL\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", out, re.MULTILINE)
    assert total is not None, out
    requests, delivered, retried, dead_lettered = map(int, total.groups())
    assert delivered > 0
    assert retried > 0
    assert dead_lettered > 0
    assert requests >= delivered + retried + dead_lettered  # every retry is one more request

    rows = {m.group(1): m for m in re.finditer(r"^\s*(/\S+)\s+\d+\s+\S+\s+(\d+)\s+(\d+)\s+(\d+)"
                                               r"\s+(\d+)", out, re.MULTILINE)}  # fmt: skip
    assert int(rows["/flaky/globex/agent"].group(4)) > 0  # the flaky endpoint retried
    assert int(rows["/strict/initech/call"].group(5)) > 0  # the strict one dead-lettered
    assert rows["/umbrella/agent"].group(2) == "0"  # the disabled integration got nothing
    assert re.search(r"filtered\s+\d+ not sent", out)
    assert re.search(r"disabled\s+[1-9]\d*", out)
    assert "invalid_event 2" in out

    assert "Sample requests" in out
    assert "Authorization: ********" in out
    assert "X-Api-Key: ********" in out
    for secret in (DEMO_BASIC_AUTH, DEMO_BASIC_AUTH.split()[1], DEMO_API_KEY):
        assert secret not in out
        assert secret not in err
    assert "events [" in err  # the progress bar
    assert "Traceback" not in err
    assert "Stopped:" in out
