"""The service's CPU per delivered event, two source trees side by side in one run.

One embedded broker, one receiver and one pre-produced topic; then ``stream-wfm run``
from tree A and from tree B in turn (A B A B ..., each with a consumer group of its
own), each delivering every event. Prints each pair's CPU per event (steady window,
as ``stream-wfm bench`` measures it) and the ratio B/A pair by pair, with the median:
on a noisy machine quote the median ratio, never a single run.

    python benchmarks/ab_service.py --a /tmp/base --b . --pairs 10 --events 50000
    python benchmarks/ab_service.py --a /tmp/base --b . --format urlencoded
    python benchmarks/ab_service.py --a /tmp/base --b . --selected-fraction 0   # all filtered

A tree is a directory holding the ``stream_wfm`` package (a checkout, or
``git archive COMMIT stream_wfm | tar -x -C DIR``); it is put first on the service's
``PYTHONPATH``. The harness itself runs from this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from stream_wfm.bench import scenarios
from stream_wfm.bench.harness import BenchOptions, Harness
from stream_wfm.bench.workload import SIGNING_SECRETS, produce_events
from stream_wfm.kafka.admin import create_topics
from stream_wfm.terminal.progress import Phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, type=Path, help="tree A (the baseline)")
    parser.add_argument("--b", required=True, type=Path, help="tree B")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--format", choices=["json", "urlencoded"], default="json")
    parser.add_argument("--selected-fraction", type=float, default=1.0)
    parser.add_argument("--signed", action="store_true", help="sign with one secret")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    for tree in trees.values():
        if not (tree / "stream_wfm" / "__init__.py").is_file():
            parser.error(f"{tree} holds no stream_wfm package")
    options = BenchOptions(events=args.events, selected_fraction=args.selected_fraction)
    progress = Phases("ab", enabled=False)
    secrets = SIGNING_SECRETS[:1] if args.signed else ()
    pairs: list[dict[str, Any]] = []
    with Harness.started(options, progress) as h:
        topic = h.name("events")
        create_topics(h.settings("topics", topic))
        selected = produce_events(h.bootstrap, topic, args.events, args.selected_fraction,
                                  prefix="e")  # fmt: skip
        inherited = os.environ.get("PYTHONPATH")
        try:
            for i in range(args.pairs):
                pair: dict[str, Any] = {}
                for label, tree in trees.items():
                    os.environ["PYTHONPATH"] = os.pathsep.join(
                        [str(tree), *([inherited] if inherited else [])]
                    )
                    if selected:
                        result = scenarios.deliver(
                            h, args.format, topic, args.events, selected, secrets,
                            run=f"{label}{i}",
                        )  # fmt: skip
                        if result["missing"]:
                            raise SystemExit(f"run {label}{i}: {result['missing']} missing")
                    else:  # every event filtered out
                        result = scenarios.filtered_out(h, topic, args.events, f"{label}{i}")
                    cpu = result.get("cpu_us_per_event", 0.0)
                    if not cpu:  # CPU time is read in 10 ms ticks
                        raise SystemExit(f"run {label}{i}: no CPU measured; use more --events")
                    pair[label] = cpu
                pair["ratio"] = pair["B"] / pair["A"]
                pairs.append(pair)
                if not args.json:
                    print(f"pair {i + 1}: A {pair['A']:.2f} us  B {pair['B']:.2f} us  "
                          f"B/A {pair['ratio']:.3f}", flush=True)  # fmt: skip
        finally:
            if inherited is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = inherited
    summary = {
        "a": str(trees["A"]), "b": str(trees["B"]), "format": args.format,
        "signed": args.signed, "events": args.events,
        "selected_fraction": args.selected_fraction, "pairs": pairs,
        "median_a_us": statistics.median(p["A"] for p in pairs),
        "median_b_us": statistics.median(p["B"] for p in pairs),
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
    }  # fmt: skip
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print(f"median: A {summary['median_a_us']:.2f} us  B {summary['median_b_us']:.2f} us  "
              f"B/A {summary['median_ratio']:.3f} (pairs: "
              + " ".join(f"{p['ratio']:.3f}" for p in pairs) + ")")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
